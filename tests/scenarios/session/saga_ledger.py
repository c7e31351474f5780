"""A tiny append-only ledger file the saga test steps write to, so tests can see what was undone.

The file is named by the WFE_TEST_LEDGER environment variable; each line is one JSON event.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def write(event: str, **fields: Any) -> None:
    path = os.environ.get("WFE_TEST_LEDGER")
    if not path:
        return
    with open(path, "a") as handle:
        handle.write(json.dumps({"event": event, "at": time.time(), **fields}) + "\n")


def read() -> list[dict[str, Any]]:
    path = os.environ.get("WFE_TEST_LEDGER")
    if not path or not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
