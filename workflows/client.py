"""The one way every Stepgate process (worker, API, CLI, tests, replayer) builds its Temporal client."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, PydanticPayloadConverter
from temporalio.converter import CompositePayloadConverter, DataConverter, EncodingPayloadConverter
from temporalio.runtime import Runtime

from activities.config import Settings, get_settings
from workflows.codec import EncryptionCodec

# One cache of pydantic type adapters per process. The SDK makes a fresh payload converter for
# each serialization context (each activity a run calls, for one), and the converter's own cache
# starts empty: every payload then built its adapter again, which is schema generation (worker
# profiles showed it beside the workflow code itself). Adapters are immutable once built.
_TYPE_ADAPTERS: functools._lru_cache_wrapper[TypeAdapter[Any]] = functools.lru_cache(maxsize=1024)(
    TypeAdapter
)


@functools.cache
def _encoding_converters() -> tuple[EncodingPayloadConverter, ...]:
    """Temporal's pydantic converters, built once, the JSON one sharing _TYPE_ADAPTERS. None
    of them holds per-payload state, so every PayloadConverter can share them."""
    base = PydanticPayloadConverter()
    for converter in base.converters.values():
        if isinstance(converter, PydanticJSONPlainPayloadConverter):
            converter._type_adapter = _TYPE_ADAPTERS
    return tuple(base.converters.values())


class PayloadConverter(CompositePayloadConverter):
    """Temporal's pydantic payload converter, over one shared set of encoding converters. The
    SDK builds a payload converter for every workflow activation (and each serialization
    context); building the pydantic one from scratch each time showed in worker profiles."""

    def __init__(self) -> None:
        super().__init__(*_encoding_converters())


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


def make_data_converter(settings: Settings | None = None) -> DataConverter:
    """The pydantic converter, with the encryption codec when a key or keyring is configured."""
    settings = settings or get_settings()
    keyring = settings.encryption_keyring()
    if not keyring:
        return DATA_CONVERTER
    codec = EncryptionCodec(keyring, settings.stepgate_encryption_key_id)
    return dataclasses.replace(DATA_CONVERTER, payload_codec=codec)


async def make_client(
    settings: Settings | None = None,
    *,
    wait_s: float | None = None,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """Connect to Temporal, retrying for up to `wait_s` seconds (default from settings);
    `runtime`: the SDK runtime (make_runtime), else the default one; `interceptors`: the
    client's, which a worker built on it takes too (workflows.tracing.interceptors)."""
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
                runtime=runtime,
                interceptors=interceptors,
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
