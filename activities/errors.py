"""How tools report failure: raise, and say whether Temporal should retry."""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ApplicationError


def fatal(message: str, error_type: str = "ToolError", **details: Any) -> ApplicationError:
    """A failure that another attempt cannot fix (bad input, 4xx, missing executable)."""
    return ApplicationError(
        message, *([details] if details else []), type=error_type, non_retryable=True
    )


def transient(
    message: str, error_type: str = "ToolTransientError", **details: Any
) -> ApplicationError:
    """A failure worth retrying under the step's retry policy (timeouts, 5xx, connection errors)."""
    return ApplicationError(
        message, *([details] if details else []), type=error_type, non_retryable=False
    )


def http_status_is_retryable(status: int) -> bool:
    """4xx means the request itself is wrong, except timeouts and rate limits."""
    return status >= 500 or status in (408, 425, 429)
