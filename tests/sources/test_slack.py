"""Slack alert messages → ErrorEvent (pure; what a relay route calls after verifying the signature)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sentry_autofix.errors import InputError
from sentry_autofix.sources.slack import event_from_slack

from ..tracebacks_wrap import slack

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def envelope() -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIX / "slack" / "event_callback_message.json").read_text()))


def test_event_from_slack__escaped_text_with_code_fence() -> None:
    body = envelope()
    body["event"]["text"] = slack((FIX / "tracebacks" / "raw" / "python_chained.txt").read_text())
    event = event_from_slack(body)
    assert [e.type for e in event.exceptions] == ["KeyError", "shop.views.PricingError"]
    assert event.exceptions[-1].frames[0].function == "<module>", "&lt;module&gt; unescaped"
    assert ("slack_message", "C123ABC456/1355517523.000005") in event.tags


def test_event_from_slack__rich_text_preformatted_block() -> None:
    body = envelope()
    trace = (FIX / "tracebacks" / "raw" / "java_cause.txt").read_text()
    body["event"]["text"] = "checkout is down"
    body["event"]["blocks"] = [
        {
            "type": "rich_text",
            "block_id": "b1",
            "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": "checkout is down"}]},
                {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": trace}]},
            ],
        }
    ]
    event = event_from_slack(body)
    assert event.platform == "java" and event.exceptions[0].frames[-1].function == "averagePrice"


def test_event_from_slack__plain_chat_is_no_error() -> None:
    with pytest.raises(InputError, match="no stack trace found in the Slack message"):
        event_from_slack(envelope())
