"""What the API's own stack can do on this machine, as a floor for
``load_api.py``: the same two uvicorn processes and wrk connections, with
FastAPI apps that do (almost) nothing:

- ``get_constant``: a GET answering a constant JSON body;
- ``get_raw_asgi``: the same without FastAPI (a bare ASGI callable);
- ``create_insert``: a POST of the ad body (pydantic-validated) that INSERTs
  one row with SQLAlchemy Core and commits (a synchronous handler, as
  escrowd's are), answering 201 with the row.

Prints one JSON line. If even these miss a target of ``load_api.py``, no
handler doing real work on this stack can meet it on this machine.

    .venv/bin/python benchmarks/api_floor.py [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

APP = textwrap.dedent('''
    import os
    from fastapi import FastAPI
    from pydantic import BaseModel
    from sqlalchemy import create_engine, text
    from starlette.responses import Response

    BODY = b'{"data": [], "total": 0, "limit": 20, "offset": 0}'
    engine = create_engine(os.environ["FLOOR_DB"], pool_size=24, max_overflow=6)
    app = FastAPI()

    class Ad(BaseModel):
        crypto_currency_id: int
        amount: str
        price_per_unit: str
        fiat_currency: str
        payment_methods: list[str]
        seller_address: str

    @app.get("/api/p2p-crypto/orders")
    async def constant() -> Response:
        return Response(BODY, media_type="application/json")

    @app.post("/api/p2p-crypto/orders", status_code=201)
    def create(ad: Ad) -> dict:
        with engine.begin() as c:
            row_id = c.execute(text(
                "INSERT INTO floor_ads (amount, price, fiat) VALUES (:a, :p, :f) RETURNING id"),
                {"a": ad.amount, "p": ad.price_per_unit, "f": ad.fiat_currency}).scalar()
        return {"id": row_id, **ad.model_dump()}

    async def raw(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": BODY})
''')


def main() -> int:
    import httpx
    import psycopg
    from load_api import _collect, _ensure_wrk, _free_port, _loads, _wrk

    from tests import pg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    _ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="escrowd-floor-"))
    (tmp / "floor_app.py").write_text(APP, encoding="utf-8")
    loads = _loads(["t"], 1, "0x" + "11" * 20)
    out: dict[str, object] = {"benchmark": "api_floor", "connections": args.connections,
                              "duration_s": args.duration, "api_processes": 2}
    with pg.server() as server_url:
        name = f"escrowd_floor_{os.getpid()}"
        db = pg.create_database(server_url, name)
        try:
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("CREATE TABLE floor_ads (id bigserial PRIMARY KEY, amount numeric, "
                             "price numeric, fiat text)")
            env = {**os.environ, "FLOOR_DB": db.replace("postgresql://", "postgresql+psycopg://"),
                   "PYTHONPATH": str(tmp)}
            for phase, target, load in (("get_constant", "floor_app:app", loads["book"]),
                                        ("get_raw_asgi", "floor_app:raw", loads["book"]),
                                        ("create_insert", "floor_app:app", loads["create"])):
                ports = [_free_port(), _free_port()]
                procs = [subprocess.Popen(  # noqa: S603 - uvicorn of this venv
                    [str(ROOT / ".venv" / "bin" / "uvicorn"), target, "--port", str(p),
                     "--log-level", "warning", "--no-access-log"],
                    env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for p in ports]
                urls = [f"http://127.0.0.1:{p}" for p in ports]
                try:
                    for u in urls:
                        deadline = time.monotonic() + 30
                        while True:
                            try:
                                httpx.get(u + "/api/p2p-crypto/orders", timeout=1)
                                break
                            except httpx.HTTPError:
                                if time.monotonic() > deadline:
                                    raise SystemExit(f"{target} did not start") from None
                                time.sleep(0.1)
                    _collect(_wrk(urls, args.connections, 2, load))
                    out[phase] = _collect(_wrk(urls, args.connections, args.duration, load))
                finally:
                    for p in procs:
                        p.terminate()
                        p.wait(10)
        finally:
            pg.drop_database(server_url, name)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
