"""What a person watches: the tensorboard logger, videos, notebook display."""
