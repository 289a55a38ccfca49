"""Failures a tool raises never carry a resolved secret, in any of the forms a message quotes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from activities.masking import mask, mask_text


def _quoted_forms(secret: str) -> set[str]:
    """The secret as it appears inside a longer string that `repr` or JSON quoted."""
    # repr of one character never escapes a quote; a whole string's repr escapes `'` only when
    # the string holds both quote kinds, so both spellings of the quotes are masked.
    plain = "".join(repr(c)[1:-1] for c in secret)
    return {
        secret,
        plain,
        plain.replace("'", "\\'"),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


@contextmanager
def masked_failures(secrets: set[str]) -> Iterator[None]:
    """Re-raise a failure from the block with every secret value masked.

    The message goes to history and to viewer-readable status, so `shell.run` argv, a JMESPath
    expression or an artifact name that held `${secret.X}` must not show it. The original
    exception is dropped (`from None`): Temporal would serialise it as the failure's cause.
    """
    try:
        yield
    except ApplicationError as err:
        if not secrets:
            raise
        forms = set().union(*(_quoted_forms(s) for s in secrets))
        raise ApplicationError(
            mask_text(err.message, forms),
            *(mask(d, forms) for d in err.details),
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
            category=err.category,
        ) from None
    except Exception as err:
        if not secrets:
            raise
        # Unexpected errors stay retryable, as Temporal would have made them, but masked.
        forms = set().union(*(_quoted_forms(s) for s in secrets))
        raise ApplicationError(
            mask_text(f"{type(err).__name__}: {err}", forms), type=type(err).__name__
        ) from None
