"""dualrun's user surface: the CLI, the spec, the local stack, the batch and streaming jobs."""

__version__ = "0.1.0"
