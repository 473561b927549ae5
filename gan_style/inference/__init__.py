"""Inference and export: load weights safely, translate (tiled when large), export. Imports nothing from training."""
