"""RetraceError: every failure the client reports, with its gRPC status code."""

import grpc


class RetraceError(Exception):
    """A call failed. `code` is a grpc.StatusCode, `message` the server's (or the client's) text.

    Client-side validation raises InvalidArgument, a RetraceError with code INVALID_ARGUMENT that
    is also a ValueError, before anything is sent.
    """

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code.name, message))
        self.code = code
        self.message = message


class InvalidArgument(RetraceError, ValueError):
    """An argument failed the client's checks; the message names the field."""

    def __init__(self, message):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


def from_rpc_error(error):
    """The RetraceError for a grpc.RpcError (a call's failure, sync or asyncio)."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    details = error.details() if callable(getattr(error, "details", None)) else str(error)
    return RetraceError(code or grpc.StatusCode.UNKNOWN, details or "")
