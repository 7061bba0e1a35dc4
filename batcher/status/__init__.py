"""``batcher status``: where the jobs a report, a manifest or a query names are now."""
