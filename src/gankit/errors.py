"""Errors a user can cause: the command line turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class GankitError(Exception):
    """Bad input from the user (files, options, data): reported as one line, exit code 2."""


class ConfigError(GankitError):
    """An unknown, missing or invalid configuration value."""


class DataError(GankitError):
    """Data that is missing, unreadable, or of the wrong shape or type."""


class RunError(GankitError):
    """A run directory or checkpoint that is missing, foreign or damaged."""


class UnsafeFileError(GankitError):
    """A file gankit refuses to open because loading it could run code (a pickle)."""


class DivergedError(GankitError):
    """Training diverged and did not recover within ``guard.max_retries`` rollbacks."""
