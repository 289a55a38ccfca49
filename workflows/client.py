"""The one way every Stepgate process (worker, API, CLI, tests, replayer) builds its Temporal client."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import time

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from activities.config import Settings, get_settings
from workflows.codec import EncryptionCodec


def make_data_converter(settings: Settings | None = None) -> DataConverter:
    """The pydantic converter, with the encryption codec when a key or keyring is configured."""
    settings = settings or get_settings()
    keyring = settings.encryption_keyring()
    if not keyring:
        return pydantic_data_converter
    codec = EncryptionCodec(keyring, settings.stepgate_encryption_key_id)
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def make_client(settings: Settings | None = None, *, wait_s: float | None = None) -> Client:
    """Connect to Temporal, retrying for up to `wait_s` seconds (default from settings)."""
    settings = settings or get_settings()
    deadline = time.monotonic() + (
        settings.temporal_connect_timeout_s if wait_s is None else wait_s
    )
    delay = 0.2
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=make_data_converter(settings),
            )
        except RuntimeError as err:
            if time.monotonic() + delay > deadline:
                raise TemporalUnreachable(settings.temporal_address, err) from err
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


class TemporalUnreachable(RuntimeError):
    """Temporal did not answer within the bounded wait."""

    def __init__(self, address: str, cause: BaseException) -> None:
        super().__init__(
            f"Temporal at {address} is unreachable ({cause}); start it with "
            "`scripts/dev-server` or set TEMPORAL_ADDRESS"
        )


def exit_now(code: int) -> None:
    """Exit without interpreter teardown, after flushing logs and streams.

    The Temporal SDK's native threads can outlive CPython's finalization and abort the process
    ("PyGILState_Release ... finalizing", temporalio/sdk-python#300); callers use it once they
    have stopped serving and drained, when everything worth keeping is flushed.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
