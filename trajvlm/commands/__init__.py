"""Subcommands of the `trajvlm` console script (see trajvlm/cli.py)."""
