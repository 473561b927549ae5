"""The one training loop, with checkpoints, distributed setup, monitoring and the per-epoch evaluation hook."""
