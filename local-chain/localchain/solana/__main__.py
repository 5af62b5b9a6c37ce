"""``python -m localchain.solana --port P [--slot-ms 400] [--finality-slots 32]``"""

from __future__ import annotations

import argparse
import logging

from localchain.solana.chain import DEFAULT_FINALITY_SLOTS
from localchain.solana.server import DEFAULT_PORT, DEFAULT_SLOT_MS, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m localchain.solana",
        description="A local Solana chain: LiteSVM behind Solana's JSON-RPC.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--ws-port", type=int, help="PubSub (websocket) port; default: port + 1")
    parser.add_argument(
        "--slot-ms",
        type=int,
        default=DEFAULT_SLOT_MS,
        help="milliseconds per slot; 0 = slots advance only on escrowd_warpSlots",
    )
    parser.add_argument(
        "--finality-slots",
        type=int,
        default=DEFAULT_FINALITY_SLOTS,
        help="slots after which a slot is finalized (Solana: 32)",
    )
    parser.add_argument("--seed", help="hex seed: same seed, same blockhashes and faucet")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.finality_slots < 1:
        parser.error("--finality-slots must be at least 1")
    if args.slot_ms < 0:
        parser.error("--slot-ms must be 0 or more")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(
        host=args.host,
        port=args.port,
        slot_ms=args.slot_ms,
        finality_slots=args.finality_slots,
        seed=bytes.fromhex(args.seed) if args.seed else None,
        ws_port=args.ws_port,
    )


if __name__ == "__main__":
    main()
