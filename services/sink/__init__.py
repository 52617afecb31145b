"""The sink service (see README.md beside this file)."""
