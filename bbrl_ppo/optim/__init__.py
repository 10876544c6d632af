"""Optimizers: the one a config names, and flat parameter buffers for fast steps."""
