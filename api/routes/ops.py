"""Operations: Prometheus metrics (``GET /metrics``, text exposition format).

Served to the monitoring network only (the nginx example keeps it off the
public listener). Gauges that describe the database are sampled at most once
a second per process, so a scrape costs a few indexed counts.
"""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from node.ops.metrics import sample_db

router = APIRouter(tags=["operations"])

_lock = threading.Lock()
_last_sample = 0.0


@router.get("/metrics", response_class=Response, include_in_schema=True,
            summary="Prometheus metrics of this process")
def metrics(request: Request) -> Response:
    global _last_sample
    with _lock:
        if time.monotonic() - _last_sample >= 1.0:
            settings = request.app.state.settings
            sample_db(request.app.state.sessions,
                      {"evm": settings.evm.confirmations, "btc": settings.btc.confirmations})
            _last_sample = time.monotonic()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
