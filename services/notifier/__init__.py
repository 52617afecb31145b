"""The notifier service (see README.md beside this file)."""
