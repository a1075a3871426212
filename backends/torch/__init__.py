"""The PyTorch executor."""
