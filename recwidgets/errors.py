"""Exception and warning classes raised by recwidgets.

Every error names the offending value and says how to fix it, so the same text
works in a notebook traceback and on the command line.
"""

from __future__ import annotations


class RecwidgetsError(ValueError):
    """Base class for invalid input detected by recwidgets."""


class DataError(RecwidgetsError):
    """Invalid or unusable interaction data (missing columns, bad types, empty files)."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A named dataset or a data path could not be found or fetched."""


class ConfigError(RecwidgetsError):
    """Invalid configuration value, such as a cutoff k <= 0 or an unknown model name."""


class RecwidgetsWarning(UserWarning):
    """Base class for domain warnings, such as a sampled metric or an empty test user."""


class ProtocolWarning(RecwidgetsWarning):
    """An evaluation choice that makes numbers incomparable with full-ranking results."""
