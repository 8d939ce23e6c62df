"""GitHub Actions runner UX: outputs, job summary, log groups, annotations, masks.

The runner parses workflow commands on both stdout and stderr of a step (actions/runner's
ScriptHandler feeds both to the command manager). Commands and progress share one stream —
stderr by default — so a log line always lands inside its `::group::`, and stdout keeps only the
machine-readable result (the final `status:` line, SPEC §11). Both streams are
`neutral.NeutralStream`s: no line of text can start a workflow command, and only `_command` writes
one (SPEC §10). Anything we did not write ourselves (Sentry data, model output) is also echoed
inside `::stop-commands::<token>` (defence in depth); every secret is masked before anything else
is printed.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from sentry_autofix import neutral

SUMMARY_LIMIT = 1024 * 1024
"""GitHub refuses a step summary over 1 MiB (SPEC §10); we truncate well before."""


def _escape_data(value: str) -> str:
    # The runner's own escaping for command data (toolkit/core/src/command.ts escapeData).
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def scrub(text: str, secret_values: Sequence[str]) -> str:
    """Replace every configured secret (and nothing else) with `***`."""
    for value in sorted({v for v in secret_values if len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


class Runner:
    """Talks to the Actions runner; outside Actions (`enabled=False`) it only logs plain text.

    `output_path`/`summary_path` are the files named by GITHUB_OUTPUT/GITHUB_STEP_SUMMARY.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        output_path: str | None = None,
        summary_path: str | None = None,
        secret_values: Sequence[str] = (),
        stream: TextIO | None = None,
        log: TextIO | None = None,
    ) -> None:
        self.enabled = enabled
        self.output_path = Path(output_path) if output_path else None
        self.summary_path = Path(summary_path) if summary_path else None
        self.secret_values = [v for v in secret_values if v]
        self.log_stream = neutral.stream(log if log is not None else sys.stderr)
        self.stream = self.log_stream if stream is None or stream is log else neutral.stream(stream)
        self._summary_written = 0

    # -- logging ---------------------------------------------------------------------------------
    def _command(self, line: str) -> None:
        if self.enabled:
            self.stream.command(line)

    def mask_secrets(self) -> None:
        """`::add-mask::` each secret, so the runner hides it even if some library logs it."""
        for value in self.secret_values:
            for line in value.splitlines() or [value]:
                if line.strip():
                    self._command(f"::add-mask::{_escape_data(line)}")

    def log(self, message: str) -> None:
        self.log_stream.write(scrub(message, self.secret_values) + "\n")
        self.log_stream.flush()

    def log_untrusted(self, title: str, text: str) -> None:
        """Echo text from Sentry or the model: neutralised like every line, and inside stop-commands."""
        text = scrub(text, self.secret_values)
        if not self.enabled:
            self.log(f"{title}\n{text}")
            return
        token = secrets.token_hex(16)
        # Runner commands must be on the same stream as the text they guard.
        self.stream.write(f"{title}\n")
        self.stream.command(f"::stop-commands::{token}")
        self.stream.write(f"{text}\n")
        self.stream.command(f"::{token}::")

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        self._command(f"::group::{_escape_data(title)}")
        if not self.enabled:
            self.log(f"== {title}")
        try:
            yield
        finally:
            self._command("::endgroup::")

    def error(
        self, message: str, *, file: str | None = None, line: int | None = None, title: str | None = None
    ) -> None:
        message = scrub(message, self.secret_values)
        if not self.enabled:
            where = f"{file}:{line}: " if file else ""
            self.log(f"error: {where}{message}")
            return
        props = []
        if file:
            props.append(f"file={_escape_property(file)}")
            if line:
                props.append(f"line={line}")
        if title:
            props.append(f"title={_escape_property(title)}")
        sep = " " + ",".join(props) if props else ""
        self._command(f"::error{sep}::{_escape_data(message)}")

    def annotate(self, message: str, *, file: str, line: int | None, title: str) -> None:
        """Point at a line of the checkout (the Sentry crash): an error annotation on Actions."""
        self.error(message, file=file, line=line, title=title)

    def warning(self, message: str) -> None:
        message = scrub(message, self.secret_values)
        if self.enabled:
            self._command(f"::warning::{_escape_data(message)}")
        else:
            self.log(f"warning: {message}")

    # -- files -----------------------------------------------------------------------------------
    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        """Append `name<<DELIM … DELIM` blocks: safe for multi-line values and any content."""
        if self.output_path is None:
            return
        chunks = []
        for name, value in outputs.items():
            value = scrub(value, self.secret_values)
            delim = f"ghadelimiter_{secrets.token_hex(12)}"
            while delim in value:  # pragma: no cover - 96 random bits
                delim = f"ghadelimiter_{secrets.token_hex(12)}"
            chunks.append(f"{name}<<{delim}\n{value}\n{delim}\n")
        with self.output_path.open("a", encoding="utf-8") as fh:
            fh.write("".join(chunks))

    def add_summary(self, markdown: str) -> None:
        """Append to the job summary, never exceeding the runner's 1 MiB per step."""
        if self.summary_path is None:
            return
        text = neutral.clean(scrub(markdown, self.secret_values))
        if not text.endswith("\n"):
            text += "\n"
        room = SUMMARY_LIMIT - 1024 - self._summary_written
        data = text.encode("utf-8")
        if len(data) > room:
            note = b"\n\n_(summary truncated: GitHub limits a step summary to 1 MiB)_\n"
            data = data[: max(0, room - len(note))].decode("utf-8", "ignore").encode("utf-8") + note
        with self.summary_path.open("ab") as fh:
            fh.write(data)
        self._summary_written += len(data)
