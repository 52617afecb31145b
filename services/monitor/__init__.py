"""The monitor service (see README.md beside this file)."""
