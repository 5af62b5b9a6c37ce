"""``python -m localchain.bitcoin --datadir D --port P [--rpcuser U --rpcpassword W]``

Runs the local regtest node until ``stop`` (RPC), SIGTERM or SIGINT. Without
--rpcuser/--rpcpassword it writes a ``.cookie`` in the data dir, as bitcoind."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from localchain.bitcoin.node import Node
from localchain.bitcoin.rpc import RPC
from localchain.bitcoin.server import RPCServer


def _sat_per_kvb(text: str) -> int:
    from decimal import Decimal

    return int(Decimal(text) * 100_000_000)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localchain.bitcoin", description=__doc__)
    p.add_argument("--datadir", required=True, type=Path)
    p.add_argument("--port", type=int, default=18443)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--rpcuser")
    p.add_argument("--rpcpassword")
    p.add_argument("--minrelaytxfee", default="0.00001", help="BTC/kvB (Core v29 default)")
    p.add_argument("--incrementalrelayfee", default="0.00001", help="BTC/kvB")
    p.add_argument("--blockmintxfee", default="0",
                   help="BTC/kvB a tx package must pay to be mined (test knob; 0: all)")
    p.add_argument("--debug", action="store_true", help="log every request and kernel message")
    args = p.parse_args(argv)
    if (args.rpcuser is None) != (args.rpcpassword is None):
        p.error("give both --rpcuser and --rpcpassword, or neither (cookie auth)")

    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("localchain.bitcoin")
    node = Node(
        args.datadir,
        min_relay_fee=_sat_per_kvb(args.minrelaytxfee),
        incremental_fee=_sat_per_kvb(args.incrementalrelayfee),
        block_min_fee=_sat_per_kvb(args.blockmintxfee),
    )
    server: RPCServer | None = None

    def stop() -> None:
        if server is not None:
            server.stop_soon()

    rpc = RPC(node, on_stop=stop)
    cookie = None if args.rpcuser else args.datadir / ".cookie"
    server = RPCServer(
        (args.bind, args.port),
        rpc,
        user=args.rpcuser,
        password=args.rpcpassword,
        cookie_path=cookie,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("JSON-RPC on http://%s:%d (datadir %s)", args.bind, args.port, args.datadir)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        node.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
