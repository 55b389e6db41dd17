"""User-facing errors. Each message says what is wrong, where, and how to fix it.

The CLI turns any :class:`SvqcastError` into one line on stderr and exit status 2.
"""

from __future__ import annotations


class SvqcastError(Exception):
    """Base of all errors caused by user input (config, data, files, checkpoints)."""


class ConfigError(SvqcastError, ValueError):
    """A bad option, name or combination of options."""


class DataError(SvqcastError, ValueError):
    """Data that is missing, malformed, too short or not finite."""


class DataNotFoundError(DataError, FileNotFoundError):
    """An expected file or folder does not exist; the message names the expected layout."""


class CheckpointError(SvqcastError, ValueError):
    """A checkpoint that is unreadable or does not match the model or the data."""


def choices_error(kind: str, name: object, choices: list[str] | tuple[str, ...]) -> ConfigError:
    """The standard error for an unknown name in a registry."""
    return ConfigError(f"unknown {kind} {name!r}; valid choices: {', '.join(sorted(choices))}")


def one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception's message on one line (at most ``limit`` characters), for stderr."""
    text = " ".join(str(exc).split())
    return text[:limit] if text else type(exc).__name__
