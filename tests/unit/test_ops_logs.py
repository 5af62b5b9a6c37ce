"""JSON logs carry the trade (and job) being worked on; the API finds the
trade id in request paths; metric labels stay bounded; job scheduling math."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

from api.observability import trade_id_of
from node.ops.jobs import next_run_after
from node.ops.logs import ContextFilter, current_context, json_formatter, log_context
from node.ops.metrics import decision_label


def _json_logger() -> tuple[logging.Logger, io.StringIO]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(ContextFilter(role="sign"))
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("test.ops.logs")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, buf


def test_json_records_carry_trade_id_and_role() -> None:
    logger, buf = _json_logger()
    with log_context(trade_id="42", escrow_key="0xabc"):
        logger.info("released %s", "x", extra={"http_status": 200})
    logger.info("outside")
    inside, outside = (json.loads(line) for line in buf.getvalue().splitlines())
    assert inside["message"] == "released x"
    assert inside["trade_id"] == "42" and inside["escrow_key"] == "0xabc"
    assert inside["role"] == "sign" and inside["level"] == "INFO"
    assert inside["http_status"] == 200 and isinstance(inside["pid"], int)
    assert outside["trade_id"] is None
    assert current_context() == {}


def test_nested_contexts_restore() -> None:
    with log_context(trade_id="1"):
        with log_context(trade_id="2", job_id="relay:7"):
            assert current_context() == {"trade_id": "2", "job_id": "relay:7"}
        assert current_context() == {"trade_id": "1"}


def test_trade_id_of_paths() -> None:
    assert trade_id_of("/api/p2p-crypto/orders/17/release-escrow") == "17"
    assert trade_id_of("/api/p2p-crypto/orders/17") == "17"
    assert trade_id_of("/api/p2p-crypto/orders") is None
    assert trade_id_of("/api/p2p-crypto/orders/abc") is None
    assert trade_id_of("/healthz") is None


def test_decision_label_is_bounded() -> None:
    assert decision_label("split:3000") == "split"
    assert decision_label("release") == "release"


def test_next_run_after() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_run_after(t, 30) == t + timedelta(seconds=30)
