"""Errors of the replay tool: one base class so the CLI can print them without a traceback."""

from __future__ import annotations


class ReplayError(Exception):
    """Base class: a bag or a request that cannot be replayed, with a message that says why."""


class BagNotFoundError(ReplayError, FileNotFoundError):
    """The bag path does not exist."""


class CorruptBagError(ReplayError):
    """The bag exists but cannot be read (bad metadata, truncated or foreign storage file)."""


class MissingTopicError(ReplayError, KeyError):
    """A requested topic (to play, remap or record) is not there; the message lists the ones that are."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownTypeError(ReplayError):
    """A message type whose Python class or definition cannot be found."""
