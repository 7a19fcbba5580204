"""The ``diffgrasp`` command line."""
