"""A logging filter that keeps credentials out of every log line (request lines included)."""

import logging
import re
from urllib.parse import unquote_plus

# Parameters whose values are credentials: authinfo=USER:PASSWORD, password=..., auth=SESSION...
SECRET_NAMES = {"authinfo", "password", "passwd", "auth", "token", "key", "sessionid"}

# A parameter NAME=VALUE where a parameter may start (line start, blank, ?, &, ;, quotes). The name
# and its `=` may be percent-encoded (`auth%69nfo=`, `password%3D`): Django decodes names, so the
# door would accept them, and the log must not show their values either.
PARAMETER = re.compile(
    r"(?<![^\s?&;\"'])(?P<name>[A-Za-z0-9_.%+-]+?)(?P<eq>=|%3[dD])(?P<value>[^&\s\"']*)"
)
HEADER = re.compile(r"(?P<header>\b(?:Token|Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def _plain_name(name: str) -> str:
    """The name as a server decodes it, however often it was encoded."""
    for _ in range(3):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().lower()


def _mask_parameter(match: re.Match) -> str:
    if _plain_name(match.group("name")) not in SECRET_NAMES:
        return match.group(0)
    return f"{match.group('name')}{match.group('eq')}***"


def redact(text: str) -> str:
    text = PARAMETER.sub(_mask_parameter, text)
    return HEADER.sub(lambda m: m.group("header") + "***", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True
