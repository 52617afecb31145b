"""The evaluator service (see README.md beside this file)."""
