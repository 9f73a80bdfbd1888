"""Python client of the agentcloud HTTP API, on the standard library alone.

Every route of the daemon is reachable through Client.op(operation_id, ...)
(the route table in _routes.py is generated from the daemon's OpenAPI
document, and a test fails when it drifts); the common tasks have methods
of their own: deploying an agent from a directory, calling sessions (also
streaming), sandboxes (create, exec with streaming output, files, pause and
resume), tools over REST and MCP, and tokens.
"""

from .client import APIError, Client, ExecResult, Response

__all__ = ["APIError", "Client", "ExecResult", "Response"]
