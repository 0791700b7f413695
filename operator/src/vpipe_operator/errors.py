"""The exception hierarchy of `vpipe_operator`: one root, and one place that classifies API errors.

Invalid Pipelines and Routes are *not* exceptions here: they are data (issues) that become status
conditions and Events. Exceptions are for the operator's own trouble: bad settings, unreadable
credentials, and Kubernetes API failures. API failures are split the way the retry logic needs
them (crate-operator style): `TemporaryApiError` (409, 429, 5xx, network) carries the delay to
wait before retrying; `PermanentApiError` (other 4xx) will not heal by itself soon, so it is
retried slowly and logged loudly with what to fix (usually RBAC).

Messages truncate API payloads so a huge response never floods a log line (kopf's `APIError`).
"""

from __future__ import annotations

MAX_PAYLOAD = 300  # characters of an API response kept in an error message


class OperatorError(Exception):
    """Root of every error raised by `vpipe_operator`."""


class SettingsError(OperatorError, ValueError):
    """An environment variable or command-line flag has a value the operator cannot use."""


class CredentialsError(OperatorError):
    """Neither the in-cluster service account nor a kubeconfig gives usable API credentials."""


class ApiError(OperatorError):
    """A Kubernetes API request failed; `status` is the HTTP status (0 when none was received)."""

    def __init__(
        self, method: str, path: str, status: int, reason: str, message: str, hint: str = ""
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.api_message = truncate(message)
        text = f"{method} {path} failed: {status} {reason}: {self.api_message}"
        super().__init__(f"{text}; {hint}" if hint else text)


class TemporaryApiError(ApiError):
    """Worth retrying after `delay` seconds (None: use the caller's backoff)."""

    def __init__(
        self, method: str, path: str, status: int, reason: str, message: str, hint: str = "",
        *, delay: float | None = None,
    ) -> None:
        super().__init__(method, path, status, reason, message, hint)
        self.delay = delay


class PermanentApiError(ApiError):
    """Will fail the same way until someone changes the cluster (RBAC, CRDs, a bad request)."""


class Conflict(TemporaryApiError):
    """409: the object changed (or appeared) since it was read; read again and retry."""


class TooManyRequests(TemporaryApiError):
    """429: the API server asks to slow down, for `delay` seconds if it said so."""


class ServerError(TemporaryApiError):
    """5xx: the API server or etcd is in trouble; retry with backoff."""


class ApiUnreachable(TemporaryApiError):
    """No HTTP response at all: connection refused, reset, TLS failure or a timeout."""


class NotFound(PermanentApiError):
    """404: the object (or, when the CRDs are missing, the whole resource) does not exist."""


class Forbidden(PermanentApiError):
    """401/403: the operator's identity may not do this; the message names the verb to grant."""


def truncate(text: str, limit: int = MAX_PAYLOAD) -> str:
    """`text` cut to `limit` characters, marking the cut so nobody mistakes it for the whole."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more chars)"


class PrometheusError(OperatorError):
    """A Prometheus query for canary analysis failed; the message names the server and why."""
