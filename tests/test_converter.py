"""The payload converter every process uses: pydantic models round-trip, and the type adapters
are built once per process, not once per converter the SDK makes for each serialization context."""

from __future__ import annotations

from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, PydanticPayloadConverter

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


def test_converters_share_one_set_of_encodings_in_the_pydantic_converters_order() -> None:
    """Every converter the SDK builds reuses the same encoding converters (building them per
    activation showed in worker profiles), in the order and with the encodings of Temporal's
    own pydantic converter, so payloads are written and read exactly as before."""
    first, second = PayloadConverter(), PayloadConverter()
    assert list(first.converters) == list(PydanticPayloadConverter().converters)
    assert all(
        a is b for a, b in zip(first.converters.values(), second.converters.values(), strict=True)
    )
    json_plain = first.converters[b"json/plain"]
    assert isinstance(json_plain, PydanticJSONPlainPayloadConverter)
    assert json_plain._type_adapter is _TYPE_ADAPTERS
    for value in (None, b"raw", {"a": [1, "b"]}):
        (payload,) = first.to_payloads([value])
        assert payload == PydanticPayloadConverter().to_payloads([value])[0]
        assert second.from_payloads([payload]) == [value]
