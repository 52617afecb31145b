"""The ingest service (see README.md beside this file)."""
