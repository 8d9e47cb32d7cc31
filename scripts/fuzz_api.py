#!/usr/bin/env python3
"""Fuzz the service's HTTP API from its OpenAPI schema with a larger budget than the test suite's,
and print the cases and failures per operation and in total ("N cases, M failures").

    .venv/bin/python scripts/fuzz_api.py                 # 10x tests/test_api_fuzz.py's budget
    .venv/bin/python scripts/fuzz_api.py --examples 500  # per operation and generation mode

The run is tests/test_api_fuzz.py's (the app in-process on a migrated SQLite database in a tmp dir,
positive and negative generation, three callers, seeded records, a stateful run, the same checks);
it exits 1 when a case failed, and lists the failures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_api_fuzz as fuzzing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10 * fuzzing.EXAMPLES_PER_OPERATION,
                        help="cases per operation and generation mode (default: %(default)s)")
    parser.add_argument("--stateful", type=int, default=10 * fuzzing.STATEFUL_EXAMPLES,
                        help="stateful scenarios per caller (default: %(default)s)")
    args = parser.parse_args()
    tally = fuzzing.fuzz(args.examples, args.stateful)
    print(tally.report())
    print(tally.summary())
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
