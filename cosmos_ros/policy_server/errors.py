"""Errors of the policy-server client, importable without gRPC or protobuf.

Why a module of their own: the planner node tells a lost server apart from a model error (its own
diagnostics counter) by the exception type, and it must be able to import that type even when the server
backend is not the one configured (and so gRPC may not be installed).
"""

from __future__ import annotations


class ServerError(RuntimeError):
    """Base class: something about the policy server, not about the request or the model."""


class ServerUnavailableError(ServerError):
    """The server did not answer (not running, restarted, network down, deadline passed).

    Mid-run this is a counted error: no plan is made from the call; the client checks the server again
    (handshake) before the next call and so reconnects by itself when the server is back.
    """


class IncompatibleServerError(ServerError):
    """The server answered but serves another model/profile or speaks another protocol/package version."""
