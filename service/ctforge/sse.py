"""Reading server-sent events, as GET /api/v1/jobs/{id}/stream sends them: for clients of the API
(the tests' client, the benchmarks, and the CLI to come).

    for kind, data in sse_events(reply.iter_lines()):   # ("runner_on_ok", {...}), ..., ("end", {...})
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event type, decoded JSON data) of each event in a stream's lines; comments and pings skipped."""
    kind, data = "message", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""
        elif line == "":
            kind = "message"
