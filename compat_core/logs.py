"""The server's logging: the root logger from `COMPAT_LOG_LEVEL` and `COMPAT_LOG_FORMAT`.

`text` is for a person at a terminal; `json` is one object per line for log shippers, which
would otherwise split a traceback into one event per line. Either way the libraries that log
one INFO line per upstream HTTP request (the `openai` SDK's HTTP client, httpx2) are held to
WARNING unless the level is DEBUG: at INFO a busy server would log more about its own
upstream calls than about anything an operator acts on.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Final, Literal

import orjson

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Loggers that report every HTTP request (or connection event) of a client library.
PER_REQUEST_LOGGERS: Final = ("httpx2", "httpcore2", "httpx", "httpcore", "openai")

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time (UTC, ISO 8601), level, logger, message, and
    `exception` (the formatted traceback) when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """Send every record at `level` or above to stderr, in `log_format`; replaces any handlers
    an import installed before (the `openai` SDK may call `basicConfig` when `OPENAI_LOG` is
    set)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.NOTSET if root.level <= logging.DEBUG else max(root.level, logging.WARNING)
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
