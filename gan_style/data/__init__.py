"""Training data: the unpaired dataset and sampler, dataset download, toy data."""
