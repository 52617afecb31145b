"""Errors RDMT reports to its users.

Each error names the input it is about (a file, a config file, a store URL) and
says what is wrong in one line, so the CLI and the services can print or
dead-letter it as it is.
"""

from __future__ import annotations


class RdmtError(Exception):
    """Base class of every error RDMT raises on purpose."""


class InputError(RdmtError):
    """A file cannot be monitored: missing, unreadable, not Roman, wrong arrays."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class UnsupportedInput(InputError):
    """A readable Roman file of a kind no registered monitor handles (skipped, not failed)."""


class ConfigError(RdmtError):
    """A configuration file or value is invalid."""


class StoreError(RdmtError):
    """The metric store cannot be reached or refused a write."""
