"""`compat_core.logs`: the JSON line format, and which loggers `COMPAT_LOG_LEVEL` quiets."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from compat_core.logs import PER_REQUEST_LOGGERS, JsonFormatter, configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put the root logger (pytest's handlers) and the quieted loggers back as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in PER_REQUEST_LOGGERS}
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_a_record_with_a_traceback_is_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "compat_core.engine", logging.ERROR, __file__, 1, "run %s failed", ("run_1",), None
        )
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "compat_core.engine"
    assert entry["message"] == "run run_1 failed"
    assert entry["time"].endswith("+00:00")
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: boom")


@pytest.mark.usefixtures("restored_logging")
def test_per_request_loggers_are_quiet_unless_debugging() -> None:
    configure_logging("INFO", "text")
    for name in PER_REQUEST_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
    assert logging.getLogger("compat_core.engine").isEnabledFor(logging.INFO)
    configure_logging("DEBUG", "json")
    for name in PER_REQUEST_LOGGERS:
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    configure_logging("ERROR", "text")
    assert not logging.getLogger("httpx2").isEnabledFor(logging.WARNING)
