"""Redaction of secret-looking values in attacker-influenced text (Sentry data, model output).

Applied when an event is parsed, so nothing downstream (prompt, PR, issue, Sentry comment, log)
ever holds the raw values.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

_SECRET_HEADER = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|x-auth-token|"
    r"x-csrf-token|x-xsrf-token|x-amz-security-token|x-access-token|x-refresh-token|x-session-id|"
    r"x-sentry-auth|x-hub-signature.*|sentry-hook-signature|.*(token|secret|password|passwd|apikey|"
    r"api[-_]key|session|signature|credential).*)$",
    re.IGNORECASE,
)

_TOKEN_PATTERNS = [
    # Bearer / Basic credentials inside free text
    re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # Vendor token formats (GitHub, Slack, Anthropic/OpenAI, AWS, Sentry, Stripe, Google)
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"\bsk-(ant-)?[A-Za-z0-9_-]{16,}\b"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"\bsntr[ysu]_[A-Za-z0-9_=+/-]{20,}"),
    re.compile(r"\b[rsp]k_(live|test)_[A-Za-z0-9]{10,}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    # JWTs
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),
    # PEM private keys
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"),
    # key=value pairs whose key says secret (query strings, log lines)
    re.compile(
        r"(?i)\b((?:access_|refresh_|id_|api_|auth_|session_)?(?:token|secret|password|passwd|pwd|apikey|"
        r"api_key|client_secret|sessionid))=([^&\s\"']+)"
    ),
    # credentials in URLs: scheme://user:pass@host
    re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"),
]


def is_secret_header(name: str) -> bool:
    return bool(_SECRET_HEADER.match(name.strip()))


def redact_text(text: str) -> str:
    """Replace token-shaped substrings with a marker; keeps the rest readable."""
    for pattern in _TOKEN_PATTERNS:
        if pattern.groups >= 2 and "=" in pattern.pattern:
            text = pattern.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
        elif pattern.pattern.startswith("(?i)\\b([a-z]"):
            text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def redact_known(text: str, secrets: list[str]) -> str:
    """Remove exact configured secret values (tokens we hold) from text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text
