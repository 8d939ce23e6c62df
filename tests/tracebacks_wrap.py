"""Wrap a captured traceback the way log pipelines and chat deliver it (see
tests/fixtures/tracebacks/PROVENANCE.md for where each format comes from).

Each wrapper takes the raw text a program printed and returns what a user would paste or what an
API would hand over: per-line prefixes (CloudWatch `aws logs tail`, Docker `--timestamps`,
Kubernetes CRI, journald, docker compose), a whole event with embedded newlines (Lambda), JSON log
records (Docker's json-file driver per line, one record with the stack in a field), Slack markup
and ANSI colour. Unrelated log lines surround the traceback, as in a real log.
"""

from __future__ import annotations

import json
from collections.abc import Callable

TS = "2026-05-04T10:15:02.{ms:03d}Z"
NOISE_BEFORE = ["GET /health 200 1ms", "worker 3 picked job 8812"]
NOISE_AFTER = ["GET /health 200 2ms"]


def _lines(raw: str) -> list[str]:
    return raw.rstrip("\n").split("\n")


def _with_noise(lines: list[str]) -> list[str]:
    return [*NOISE_BEFORE, *lines, *NOISE_AFTER]


def raw(text: str) -> str:
    return text


def cloudwatch_tail(text: str) -> str:
    """`aws logs tail GROUP --format detailed`: `<timestamp> <stream> <message>` per log event (one line each,
    as the awslogs driver of ECS sends every stderr line as its own event)."""
    stream = "web/app/5b1c3e0f9d2a4c7e8f10a2b3c4d5e6f7"
    return "\n".join(
        f"2026-05-04T10:15:02.{i:06d}+00:00 {stream} {line}" for i, line in enumerate(_with_noise(_lines(text)))
    )


def aws_cli_json(text: str) -> str:
    """`aws logs filter-log-events` (JSON output, the CLI's documented shape): one event per line
    (empty lines are no CloudWatch events), messages JSON-escaped."""
    lines = [line for line in _with_noise(_lines(text)) if line]
    events = [
        {
            "logStreamName": "web/app/5b1c3e0f",
            "timestamp": 1780000000000 + i,
            "message": line,
            "ingestionTime": 1780000000995 + i,
            "eventId": f"{i:056d}",
        }
        for i, line in enumerate(lines)
    ]
    return json.dumps({"events": events}, indent=4)


def aws_cli_text(text: str) -> str:
    """`aws logs filter-log-events --output text`: EVENTS, eventId, ingestionTime, stream, message, timestamp."""
    lines = [line for line in _with_noise(_lines(text)) if line]
    return "\n".join(
        f"EVENTS\t{i:056d}\t{1780000000995 + i}\tweb/app/5b1c3e0f\t{line}\t{1780000000000 + i}"
        for i, line in enumerate(lines)
    )


def cloudwatch_lambda(text: str) -> str:
    """A Lambda function's `console.error(err.stack)` / `logging.exception`: one event, the request id and
    level after the timestamp, the rest of the traceback on the following lines without a prefix."""
    request = "c0f5a1d2-3b4e-4f60-9a7b-8c9d0e1f2a3b"
    first, *rest = _lines(text)
    head = [f"2026-05-04T10:15:01.{i:03d}Z\t{request}\tINFO\t{line}" for i, line in enumerate(NOISE_BEFORE)]
    return "\n".join(
        [*head, f"2026-05-04T10:15:02.120Z\t{request}\tERROR\t{first}", *rest, "END RequestId: " + request]
    )


def docker_timestamps(text: str) -> str:
    """`docker logs --timestamps`: RFC 3339 nanosecond time, one space, the line."""
    return "\n".join(f"2026-05-04T10:15:02.{i:09d}Z {line}" for i, line in enumerate(_with_noise(_lines(text)), 1))


def kubernetes_cri(text: str) -> str:
    """`/var/log/containers/*.log` (CRI): time, stream, full/partial flag, the line."""
    return "\n".join(
        f"2026-05-04T10:15:02.{i:09d}Z stderr F {line}" for i, line in enumerate(_with_noise(_lines(text)))
    )


def journald(text: str) -> str:
    """`journalctl -u shop` short format: `Mon DD HH:MM:SS host unit[pid]: line`."""
    return "\n".join(
        f"May 04 10:15:{i % 60:02d} web-1 shop[4123]: {line}" for i, line in enumerate(_with_noise(_lines(text)))
    )


def docker_compose(text: str) -> str:
    """`docker compose logs`: service name padded, a bar, the line."""
    return "\n".join(f"web-1  | {line}" for line in _with_noise(_lines(text)))


def docker_json_file(text: str) -> str:
    """Docker's json-file driver: one JSON object per line, the text in `log` with its newline."""
    return "\n".join(
        json.dumps({"log": line + "\n", "stream": "stderr", "time": f"2026-05-04T10:15:02.{i:09d}Z"})
        for i, line in enumerate(_with_noise(_lines(text)))
    )


def json_record(text: str) -> str:
    """One structured log record (logback's LogstashEncoder / python-json-logger / pino style) with the
    whole traceback in a string field, between ordinary records."""
    records = [{"@timestamp": "2026-05-04T10:15:01Z", "level": "INFO", "message": m} for m in NOISE_BEFORE]
    records.append(
        {
            "@timestamp": "2026-05-04T10:15:02.120Z",
            "level": "ERROR",
            "logger_name": "shop",
            "message": "unhandled error",
            "stack_trace": text.rstrip("\n"),
        }
    )
    return "\n".join(json.dumps(r) for r in records)


def cloudwatch_json(text: str) -> str:
    """`aws logs tail` over a group whose events are JSON records with the trace in `error.stack`
    (dd-trace / Datadog's convention)."""
    stream = "2026/05/04/[$LATEST]0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    record = {"level": "error", "message": "request failed", "error": {"kind": "Error", "stack": text.rstrip("\n")}}
    return "\n".join(
        [f"2026-05-04T10:15:01.000000+00:00 {stream} {m}" for m in NOISE_BEFORE]
        + [f"2026-05-04T10:15:02.120000+00:00 {stream} {json.dumps(record)}"]
    )


def slack(text: str) -> str:
    """A Slack message's `text` as the Events API delivers it: `&lt;`, `&gt;`, `&amp;` escaped, a code block,
    a link with a label."""
    escaped = text.rstrip("\n").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        ":rotating_light: *Unhandled error in production* "
        "(<https://logs.example.com/q?id=1|open logs>)\n```" + escaped + "```"
    )


def ansi(text: str) -> str:
    """A colouring logger / terminal capture: every line wrapped in SGR codes."""
    return "\n".join(f"\x1b[31m{line}\x1b[0m" for line in _with_noise(_lines(text)))


WRAPPERS: dict[str, Callable[[str], str]] = {
    "raw": raw,
    "cloudwatch_tail": cloudwatch_tail,
    "aws_cli_json": aws_cli_json,
    "aws_cli_text": aws_cli_text,
    "cloudwatch_lambda": cloudwatch_lambda,
    "cloudwatch_json": cloudwatch_json,
    "docker_timestamps": docker_timestamps,
    "kubernetes_cri": kubernetes_cri,
    "journald": journald,
    "docker_compose": docker_compose,
    "docker_json_file": docker_json_file,
    "json_record": json_record,
    "slack": slack,
    "ansi": ansi,
}
