"""Run a real crash under the real sentry-sdk and store the event it would send.

    python sdk_capture.py OUT.json MODULE:FUNCTION PATH [PATH …]

PATHs go on sys.path (a deployment root, a site-packages folder). Used by the tests to produce
events from real exceptions in deployment layouts that differ from the repo's.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

EVENTS: list[dict[str, Any]] = []


class StoringTransport(Transport):
    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event" and item.payload.json is not None:
                EVENTS.append(item.payload.json)


def main() -> None:
    out, target, *paths = sys.argv[1:]
    sys.path[:0] = paths
    sentry_sdk.init(
        dsn="https://public@o0.ingest.sentry.invalid/0",
        transport=StoringTransport,
        release="app@2.0.0",
        environment="production",
    )
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        func()
    except Exception:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()
    if not EVENTS:
        sys.exit("no event captured")
    with open(out, "w") as fh:
        json.dump(EVENTS[0], fh, indent=1)


if __name__ == "__main__":
    main()
