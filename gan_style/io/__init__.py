"""Bottom layer: atomic writes, safe checkpoint reads, downloads and image decoding, used by training and inference alike."""
