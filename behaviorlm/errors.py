"""Errors a user can act on. The CLI prints their message (which names the table, column, key or value) and exits 2
instead of showing a traceback; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class BehaviorLMError(Exception):
    """Base of every error caused by configuration or input rather than by a bug."""


class ConfigError(BehaviorLMError, ValueError):
    """A configuration file or override is invalid; the message names the key."""


class InputContractError(BehaviorLMError, ValueError):
    """An input table lacks a required column, has an unusable type, or holds nothing to work on."""


class TableNotFoundError(BehaviorLMError, LookupError):
    """A table or source a job reads does not exist."""
