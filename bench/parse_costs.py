"""`python -m bench.parse_costs`: the CPU one request document costs, by shape, as SECURITY.md
states them: the best of three runs of each step (`time.process_time`, this process alone),
printed as JSON with the load average.

Shapes: the starvation finding's bodies (1 MiB of YAML holding 520,000 values; 1 MiB of JSON
holding as many), the costliest documents under the bound of 100,000 values, the costliest
4 KiB JSON body (what is parsed on the API's event loop), and a decision. For the 1 MiB YAML,
`pyyaml_*` is what reading and validating it in full costs (PyYAML's C loader, as the API did
before the bound), next to what refusing it costs now.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from activities import default_registry
from activities.documents import DocumentError, parse_document, parse_json
from bench.flood import json_body, yaml_body
from workflows.language.validation import validate_definition

RUNS = 3


def cpu_ms(fn: Callable[..., Any], *args: Any) -> float:
    """Milliseconds of CPU for `fn(*args)`, the best of RUNS (a refusal counts as done)."""
    best = float("inf")
    for _ in range(RUNS):
        started = time.process_time()
        try:
            fn(*args)
        except DocumentError:
            pass
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def json_of(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def measure() -> dict[str, Any]:
    tools = default_registry(entry_points=False)
    flat, bound = yaml_body("flat"), yaml_body("bound")
    flat_text, bound_text = flat.decode(), bound.decode()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    flat_data = yaml.load(flat_text, Loader=loader)
    bound_data = parse_document(bound_text)
    containers = json_of([[0]] * 49_000)
    small = json_of([[0]] * 1_020)  # 4 KiB of one-item lists: the most values a small body holds
    medium = json_of([[0]] * 16_300)  # the same in 64 KiB, checked in a validation thread
    decision = json_of({"action": "approve", "comment": "ship it", "digest": "sha256:" + "0" * 64})
    return {
        "yaml_1mib_520k_values": {
            "bytes": len(flat),
            "pyyaml_read_ms": cpu_ms(lambda: yaml.load(flat_text, Loader=loader)),
            "pyyaml_validate_ms": cpu_ms(validate_definition, flat_data, tools),
            "refused_at_bound_ms": cpu_ms(parse_document, flat_text),
        },
        "yaml_99900_values": {
            "bytes": len(bound),
            "read_ms": cpu_ms(parse_document, bound_text),
            "validate_ms": cpu_ms(validate_definition, bound_data, tools),
        },
        "json_1mib_520k_values": {
            "bytes": len(json_body()),
            "strict_refused_ms": cpu_ms(parse_json, json_body()),
            "c_decoder_ms": cpu_ms(json.loads, json_body()),
        },
        "json_98k_values_in_lists": {
            "bytes": len(containers),
            "strict_ms": cpu_ms(parse_json, containers),
            "c_decoder_ms": cpu_ms(json.loads, containers),
        },
        "json_64kib_worst": {"bytes": len(medium), "strict_ms": cpu_ms(parse_json, medium)},
        "json_4kib_worst": {"bytes": len(small), "strict_ms": cpu_ms(parse_json, small)},
        "decision": {"bytes": len(decision), "strict_ms": cpu_ms(parse_json, decision)},
    }


def main() -> int:
    before = [round(x, 2) for x in os.getloadavg()]
    result = {"costs": measure(), "load_average": before}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
