"""The payload converter every process uses: pydantic models round-trip, and the type adapters
are built once per process, not once per converter the SDK makes for each serialization context."""

from __future__ import annotations

from workflows.client import _TYPE_ADAPTERS, DATA_CONVERTER, PayloadConverter
from workflows.models import Decision


def test_models_round_trip_and_converters_share_their_adapters() -> None:
    decision = Decision(gate="deploy", action="approve", actor="olga", roles=["ops"])
    first, second = PayloadConverter(), PayloadConverter()
    payload = first.to_payloads([decision])
    assert first.from_payloads(payload, [Decision]) == [decision]
    hits = _TYPE_ADAPTERS.cache_info().hits
    # A second converter (as the SDK makes for another context) finds the adapter already built.
    assert second.from_payloads(payload, [Decision]) == [decision]
    assert _TYPE_ADAPTERS.cache_info().hits == hits + 1


def test_the_data_converter_uses_it() -> None:
    assert DATA_CONVERTER.payload_converter_class is PayloadConverter
