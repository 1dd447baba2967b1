"""A logging filter that keeps credentials out of every log line (request lines included)."""

import logging
import re

# authinfo=USER:PASSWORD, password=..., auth=SESSION, token=..., and Authorization headers.
SECRET = re.compile(
    r"(?P<name>\b(?:authinfo|password|passwd|auth|token|key|sessionid)=)[^&\s\"']*"
    r"|(?P<header>\b(?:Token|Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return SECRET.sub(lambda m: (m.group("name") or m.group("header")) + "***", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True
