"""What signing in and being protected costs per request, in process (the
app on real PostgreSQL; no chain needed for these endpoints):

- ``GET /auth/me`` with an API token and with a JWT access token (middleware:
  rate limits + principal; dependency: token check + session-revocation read);
- a replayed ``POST`` with the same Idempotency-Key (the stored response);
- argon2id password verification and JWT decoding alone.

Prints one JSON line (milliseconds, medians and p99 over N requests).

    .venv/bin/python benchmarks/auth_overhead.py [--requests 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "local-chain")]


def _timed(fn: Callable[[], object], n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 3),
            "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    from api.app import create_app
    from node.accounts.passwords import hash_password, verify_hash
    from node.accounts.tokens import decode_access_token, issue_access_token
    from node.chain_trades import ChainRegistry
    from node.config import load_settings
    from node.db.migrate import upgrade
    from node.db.session import make_engine, make_sessionmaker, transaction
    from node.trades import create_user
    from tests import pg

    n = args.requests
    with pg.server() as server, tempfile.TemporaryDirectory() as tmp:
        url = pg.create_database(server, "escrowd_bench_auth")
        try:
            engine = make_engine(url)
            upgrade(engine)
            sessions = make_sessionmaker(engine)
            limits = {"rate_limit_ip": "1000000/minute", "rate_limit_user": "1000000/minute",
                      "rate_limit_signin": "1000000/minute"}
            settings = load_settings(data_dir=Path(tmp), database_url=url, auth=limits)
            app = create_app(sessions=sessions, chains=ChainRegistry(), settings=settings)
            client = TestClient(app)
            with transaction(sessions) as s:
                _u, api_token = create_user(s, username="bench")
            pair = client.post("/api/p2p-crypto/auth/register",
                               json={"username": "bench-jwt", "password": "a long bench pw"}).json()
            h_api = {"Authorization": f"Bearer {api_token}"}
            h_jwt = {"Authorization": f"Bearer {pair['access_token']}"}
            for h in (h_api, h_jwt):  # warm up
                assert client.get("/api/p2p-crypto/auth/me", headers=h).status_code == 200
            me_api = _timed(lambda: client.get("/api/p2p-crypto/auth/me", headers=h_api), n)
            me_jwt = _timed(lambda: client.get("/api/p2p-crypto/auth/me", headers=h_jwt), n)
            health = _timed(lambda: client.get("/healthz"), n)
            idem = h_jwt | {"Idempotency-Key": "bench-1"}
            body = {"chain": "evm"}
            assert client.post("/api/p2p-crypto/auth/nonce", json=body,
                               headers=idem).status_code == 201
            replay = _timed(lambda: client.post("/api/p2p-crypto/auth/nonce", json=body,
                                                headers=idem), n)
            stored = hash_password("a long bench pw")
            argon = _timed(lambda: verify_hash(stored, "a long bench pw"), 20)
            secret = b"k" * 48
            tok = issue_access_token(secret, user_id=1, session_id="s", role="trader",
                                     issuer="escrowd", ttl_s=900)
            jwt_decode = _timed(lambda: decode_access_token(secret, tok, issuer="escrowd"), n)
            client.close()
            engine.dispose()
        finally:
            pg.drop_database(server, "escrowd_bench_auth")
    print(json.dumps({
        "benchmark": "auth_overhead", "requests": n,
        "me_api_token": me_api, "me_jwt": me_jwt, "healthz": health,
        "idempotent_replay": replay, "argon2_verify": argon, "jwt_decode": jwt_decode,
    }))


if __name__ == "__main__":
    main()
