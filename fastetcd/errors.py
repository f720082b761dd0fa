"""The errors fastetcd raises, one tree rooted at :class:`EtcdError`.

A server error is mapped from etcd's exact status message first (the table etcd's Go client
keeps in ``api/v3rpc/rpctypes``), then from the gRPC status code alone. Errors detected on
the client before anything is sent (an empty key, a wrong type, an oversized request) are
raised from the same tree, so one ``except`` clause serves both.

Note that a missing key is not an error in etcd: ``get`` returns ``None``.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "StatusCode",
    "EtcdError",
    "ClientError",
    "InvalidArgumentError",
    "InvalidRequestError",
    "ArgumentTypeError",
    "EmptyKeyError",
    "DecodeError",
    "ServerError",
    "KeyNotFoundError",
    "ValueProvidedError",
    "LeaseProvidedError",
    "TooManyOpsError",
    "DuplicateKeyError",
    "InvalidSortOptionError",
    "RequestTooLargeError",
    "CompactedError",
    "FutureRevisionError",
    "ResourceExhaustedError",
    "NoSpaceError",
    "TooManyRequestsError",
    "LeaseNotFoundError",
    "LeaseExistsError",
    "LeaseTTLTooLargeError",
    "MemberError",
    "AuthError",
    "AuthFailedError",
    "InvalidAuthTokenError",
    "AuthOldRevisionError",
    "AuthNotEnabledError",
    "PermissionDeniedError",
    "UnavailableError",
    "NoLeaderError",
    "LeaderChangedError",
    "NotLeaderError",
    "StoppedError",
    "TimeoutError",
    "UnhealthyError",
    "NotSupportedForLearnerError",
    "CorruptError",
    "DeadlineExceededError",
    "CancelledError",
    "InternalError",
    "UnknownError",
    "from_status",
]


class StatusCode(enum.IntEnum):
    """gRPC status codes (the numbers are the wire values)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class EtcdError(Exception):
    """Base of every error fastetcd raises.

    ``code`` is the gRPC status code the server (or transport) reported, ``details`` the
    status message as received; both are ``None``/empty for errors found on the client.
    """

    #: The status code this class stands for when raised without one.
    default_code: ClassVar[StatusCode | None] = None

    def __init__(
        self, message: str = "", *, code: StatusCode | int | None = None, details: str = ""
    ) -> None:
        super().__init__(message or details or type(self).__name__)
        self.code: StatusCode | None = (
            StatusCode(code) if code is not None else type(self).default_code
        )
        self.details: str = details or message

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), str(self), self.code, self.details))


def _rebuild(
    cls: type[EtcdError], message: str, code: StatusCode | None, details: str
) -> EtcdError:
    return cls(message, code=code, details=details)


# --------------------------------------------------------------------------- client side


class ClientError(EtcdError):
    """An error detected by the client itself, before or after talking to the server."""


class InvalidArgumentError(ClientError, ValueError):
    """A bad argument: wrong type, out of range, or a combination etcd would reject."""


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type (e.g. a key that is neither bytes nor str)."""


class EmptyKeyError(InvalidArgumentError):
    """A key must not be empty (etcd: "key is not provided")."""


class DecodeError(ClientError):
    """Bytes received from the server are not a valid message of the expected type."""


# --------------------------------------------------------------------------- server side


class ServerError(EtcdError):
    """An error status returned by the server (or by the gRPC layer on its behalf)."""


class InvalidRequestError(ServerError, ValueError):
    """The server rejected the request's content (gRPC INVALID_ARGUMENT)."""

    default_code = StatusCode.INVALID_ARGUMENT


class KeyNotFoundError(InvalidRequestError):
    """``ignore_value``/``ignore_lease`` was used on a key that does not exist."""


class ValueProvidedError(InvalidRequestError):
    """A value was given together with ``ignore_value``."""


class LeaseProvidedError(InvalidRequestError):
    """A lease was given together with ``ignore_lease``."""


class TooManyOpsError(InvalidRequestError):
    """A txn has more operations than the server's ``--max-txn-ops``."""


class DuplicateKeyError(InvalidRequestError):
    """A txn writes the same key twice."""


class InvalidSortOptionError(InvalidRequestError):
    """The sort options of a range request are not valid."""


class RequestTooLargeError(InvalidRequestError, InvalidArgumentError):
    """The request exceeds the server's ``--max-request-bytes`` or the client's send limit."""


class CompactedError(ServerError):
    """The requested revision has been compacted away.

    ``compact_revision`` is the compaction revision when the server told it (watch), else 0.
    """

    default_code = StatusCode.OUT_OF_RANGE

    def __init__(
        self,
        message: str = "",
        *,
        code: StatusCode | int | None = None,
        details: str = "",
        compact_revision: int = 0,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.compact_revision = compact_revision


class FutureRevisionError(ServerError):
    """The requested revision is newer than the store's current revision."""

    default_code = StatusCode.OUT_OF_RANGE


class ResourceExhaustedError(ServerError):
    """A limit was hit (gRPC RESOURCE_EXHAUSTED), e.g. a message larger than gRPC accepts."""

    default_code = StatusCode.RESOURCE_EXHAUSTED


class NoSpaceError(ResourceExhaustedError):
    """The database is full (NOSPACE alarm raised); free space and disarm the alarm."""

    default_code = StatusCode.RESOURCE_EXHAUSTED


class TooManyRequestsError(ResourceExhaustedError):
    """The server is overloaded with proposals (gRPC RESOURCE_EXHAUSTED)."""

    default_code = StatusCode.RESOURCE_EXHAUSTED


class LeaseNotFoundError(ServerError):
    """The lease does not exist (never granted, expired or revoked)."""

    default_code = StatusCode.NOT_FOUND


class LeaseExistsError(ServerError):
    """A lease with that id already exists."""

    default_code = StatusCode.FAILED_PRECONDITION


class LeaseTTLTooLargeError(ServerError):
    """The requested lease TTL is larger than the server allows."""

    default_code = StatusCode.OUT_OF_RANGE


class MemberError(ServerError):
    """A cluster membership request was rejected (see the message for which rule)."""


class AuthError(ServerError):
    """Base of authentication and authorization errors."""


class AuthFailedError(AuthError):
    """Wrong user name or password."""

    default_code = StatusCode.INVALID_ARGUMENT


class InvalidAuthTokenError(AuthError):
    """The auth token is invalid or expired (a client with credentials re-authenticates)."""

    default_code = StatusCode.UNAUTHENTICATED


class AuthOldRevisionError(AuthError):
    """The auth store changed since the token was issued (a client re-authenticates)."""

    default_code = StatusCode.INVALID_ARGUMENT


class AuthNotEnabledError(AuthError):
    """Authentication is not enabled on the server."""

    default_code = StatusCode.FAILED_PRECONDITION


class PermissionDeniedError(AuthError):
    """The user's roles do not permit this request."""

    default_code = StatusCode.PERMISSION_DENIED


class UnavailableError(ServerError):
    """The server or connection is unavailable (gRPC UNAVAILABLE): the request may be retried
    if it is safe to repeat.

    ``sent`` is False when the transport knows the request never left the client (no
    connection could be made), so even a write may be retried; None when unknown.
    """

    default_code = StatusCode.UNAVAILABLE
    sent: bool | None = None


class NoLeaderError(UnavailableError):
    """The member has no leader (only reported to requests that require one)."""


class LeaderChangedError(UnavailableError):
    """The leader changed while the request was in flight."""


class NotLeaderError(ServerError):
    """The request must be sent to the leader."""

    default_code = StatusCode.FAILED_PRECONDITION


class StoppedError(UnavailableError):
    """The server is stopping."""


class TimeoutError(UnavailableError):
    """The server timed out the request (it may or may not have been applied)."""


class UnhealthyError(UnavailableError):
    """The cluster is unhealthy."""


class NotSupportedForLearnerError(UnavailableError):
    """The member is a learner, which does not serve this RPC."""


class CorruptError(ServerError):
    """The cluster reports data corruption."""

    default_code = StatusCode.DATA_LOSS


class DeadlineExceededError(EtcdError):
    """The caller's deadline passed before a response arrived."""

    default_code = StatusCode.DEADLINE_EXCEEDED


#: The details of a call whose deadline passed, as grpcio gives them (the native transport
#: gives the same).
DEADLINE_MESSAGE = "Deadline Exceeded"


class CancelledError(EtcdError):
    """The call was cancelled (by the caller, or because the client was closed)."""

    default_code = StatusCode.CANCELLED


class InternalError(ServerError):
    """An internal error in the server or the gRPC layer."""

    default_code = StatusCode.INTERNAL


class UnknownError(ServerError):
    """A status the table does not know; ``code`` and ``details`` say what was received."""


# etcd's exact status messages (api/v3rpc/rpctypes/error.go) -> error class.
_BY_MESSAGE: dict[str, type[EtcdError]] = {
    "etcdserver: key is not provided": EmptyKeyError,
    "etcdserver: key not found": KeyNotFoundError,
    "etcdserver: value is provided": ValueProvidedError,
    "etcdserver: lease is provided": LeaseProvidedError,
    "etcdserver: too many operations in txn request": TooManyOpsError,
    "etcdserver: duplicate key given in txn request": DuplicateKeyError,
    "etcdserver: invalid sort option": InvalidSortOptionError,
    "etcdserver: mvcc: required revision has been compacted": CompactedError,
    "etcdserver: mvcc: required revision is a future revision": FutureRevisionError,
    "etcdserver: mvcc: database space exceeded": NoSpaceError,
    "etcdserver: requested lease not found": LeaseNotFoundError,
    "etcdserver: lease already exists": LeaseExistsError,
    "etcdserver: too large lease TTL": LeaseTTLTooLargeError,
    "etcdserver: member ID already exist": MemberError,
    "etcdserver: Peer URLs already exists": MemberError,
    "etcdserver: re-configuration failed due to not enough started members": MemberError,
    "etcdserver: given member URLs are invalid": MemberError,
    "etcdserver: member not found": MemberError,
    "etcdserver: can only promote a learner member": MemberError,
    "etcdserver: can only promote a learner member which is in sync with leader": MemberError,
    "etcdserver: too many learner members in cluster": MemberError,
    "etcdserver: request is too large": RequestTooLargeError,
    "etcdserver: too many requests": TooManyRequestsError,
    "etcdserver: root user does not exist": AuthError,
    "etcdserver: root user does not have root role": AuthError,
    "etcdserver: user name already exists": AuthError,
    "etcdserver: user name is empty": AuthError,
    "etcdserver: user name not found": AuthError,
    "etcdserver: role name already exists": AuthError,
    "etcdserver: role name not found": AuthError,
    "etcdserver: role name is empty": AuthError,
    "etcdserver: authentication failed, invalid user ID or password": AuthFailedError,
    "etcdserver: permission denied": PermissionDeniedError,
    "etcdserver: role is not granted to the user": AuthError,
    "etcdserver: permission is not granted to the role": AuthError,
    "etcdserver: authentication is not enabled": AuthNotEnabledError,
    "etcdserver: invalid auth token": InvalidAuthTokenError,
    "etcdserver: invalid auth management": AuthError,
    "etcdserver: revision of auth store is old": AuthOldRevisionError,
    "etcdserver: no leader": NoLeaderError,
    "etcdserver: not leader": NotLeaderError,
    "etcdserver: leader changed": LeaderChangedError,
    "etcdserver: not capable": UnavailableError,
    "etcdserver: server stopped": StoppedError,
    "etcdserver: request timed out": TimeoutError,
    "etcdserver: request timed out, possibly due to previous leader failure": TimeoutError,
    "etcdserver: request timed out, possibly due to connection lost": TimeoutError,
    "etcdserver: request timed out, waiting for the applied index took too long": TimeoutError,
    "etcdserver: unhealthy cluster": UnhealthyError,
    "etcdserver: corrupt cluster": CorruptError,
    "etcdserver: rpc not supported for learner": NotSupportedForLearnerError,
    "etcdserver: bad leader transferee": ServerError,
    "etcdserver: request canceled": CancelledError,
    "etcdserver: context deadline exceeded": DeadlineExceededError,
}

# gRPC status code -> error class, when the message is not one of etcd's.
_BY_CODE: dict[StatusCode, type[EtcdError]] = {
    StatusCode.CANCELLED: CancelledError,
    StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    StatusCode.NOT_FOUND: ServerError,
    StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    StatusCode.FAILED_PRECONDITION: ServerError,
    StatusCode.OUT_OF_RANGE: ServerError,
    StatusCode.UNAUTHENTICATED: InvalidAuthTokenError,
    StatusCode.UNAVAILABLE: UnavailableError,
    StatusCode.INTERNAL: InternalError,
    StatusCode.DATA_LOSS: CorruptError,
}


def from_status(code: int, details: str) -> EtcdError:
    """Build the error for a gRPC status: by etcd's exact message first, then by code.

    ``code`` is the numeric gRPC status code, ``details`` the status message.
    """
    try:
        status = StatusCode(code)
    except ValueError:
        status = StatusCode.UNKNOWN
    cls = _BY_MESSAGE.get(details) or _BY_CODE.get(status, UnknownError)
    return cls(details, code=status, details=details)
