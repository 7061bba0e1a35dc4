"""batcher: run MetaStudio training-job commands in bulk, politely, with an honest report."""

__version__ = "0.1.0"
