"""Produce `event.json` with the real sentry-sdk from the demo app's real crash.

    python examples/demo/capture_event.py DEPLOY_ROOT OUT.json

Copies the app to DEPLOY_ROOT (as a deployment would: `/srv/shop/releases/1.4.0`), imports it
from there, triggers the bug, and writes the event the SDK would send (ingestion shape), taken from
the envelope by a transport that stores instead of sending. Needs `pip install sentry-sdk`.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

FRAMEWORK = '''"""tinyweb: calls a handler, reports its crash to Sentry, answers 500."""

import sentry_sdk


def dispatch(handler, *args):
    try:
        handler(*args)
    except Exception:
        sentry_sdk.capture_exception()
        return 500
    return 200
'''


def capture(deploy_root: Path, release: str = "shop@1.4.0") -> dict[str, Any]:
    import sentry_sdk
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.transport import Transport

    app = Path(__file__).resolve().parent / "app"
    if deploy_root.exists():
        shutil.rmtree(deploy_root)
    shutil.copytree(app / "shop", deploy_root / "shop", ignore=shutil.ignore_patterns("__pycache__"))
    # A stand-in web framework, installed where frameworks live, so the event carries library
    # frames (in_app false) around the app's own, as a real deployment's would.
    site = deploy_root / "venv" / "lib" / "python3.11" / "site-packages" / "tinyweb"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(FRAMEWORK)
    events: list[dict[str, Any]] = []

    class StoringTransport(Transport):
        def capture_envelope(self, envelope: Envelope) -> None:
            for item in envelope.items:
                if item.type == "event" and item.payload.json is not None:
                    events.append(item.payload.json)

    sys.path.insert(0, str(deploy_root))
    sys.path.insert(0, str(site.parent))
    for name in [m for m in sys.modules if m.startswith(("shop", "tinyweb"))]:
        del sys.modules[name]
    client_opts: dict[str, Any] = {
        "dsn": "https://public@o0.ingest.sentry.invalid/0",
        "transport": StoringTransport,
        "release": release,
        "environment": "production",
        "server_name": "web-1",
        "default_integrations": True,
    }
    sentry_sdk.init(**client_opts)
    try:
        from shop.cart import Cart
        from shop.views import cart_summary

        log = logging.getLogger("shop.http")
        log.setLevel(logging.INFO)
        log.info("GET /cart/summary")
        sentry_sdk.set_tag("route", "/cart/summary")
        sentry_sdk.set_user({"id": "4711"})
        import tinyweb

        status = tinyweb.dispatch(cart_summary, Cart())
        log.info("responded %s", status)
        sentry_sdk.flush()
    finally:
        sys.path.remove(str(deploy_root))
        sys.path.remove(str(site.parent))
        sentry_sdk.get_client().close()
    if not events:
        raise RuntimeError("sentry-sdk produced no event")
    return events[0]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    event = capture(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(event, indent=2, sort_keys=True) + "\n")
    print(f"wrote {sys.argv[2]}", file=sys.stderr)
