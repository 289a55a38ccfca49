"""`python -m activities`: list every tool with its version, description and JSON Schemas."""

from __future__ import annotations

import argparse
import json
import sys

from activities import default_registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activities", description=__doc__)
    parser.add_argument("--names", action="store_true", help="one `name@version` line per tool")
    parser.add_argument(
        "--no-entry-points", action="store_true", help="built-in tools only, skip plug-ins"
    )
    args = parser.parse_args(argv)
    registry = default_registry(entry_points=not args.no_entry_points)
    if args.names:
        for item in registry.listing():
            sys.stdout.write(f"{item['name']}@{item['version']}\t{item['description']}\n")
    else:
        json.dump(registry.listing(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
