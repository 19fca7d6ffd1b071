"""Log lines as JSON, one object per line, for a log shipper to parse.

callvault's own messages never carry a phone number (numbers are pseudonymised
at intake and dead letters are redacted), so the formatter adds only what a
search needs: time, level, logger, message, and the exception's text.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), default=str)


def where_it_failed(exc: BaseException) -> str:
    """An exception's kind and the frames it passed through, without its message.

    For a failure while handling input: the message of an exception raised there
    may quote the input, phone numbers included, and a log must never hold one.
    """
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(exc).__name__}, raised at\n{frames}"


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for stdout in this format (faust's worker takes it as is)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonLineFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"callvault": formatter},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "callvault",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stdout"]},
    }
