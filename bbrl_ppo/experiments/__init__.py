"""Experiments over many runs: seeds side by side, learning curves, reports, search."""
