"""``escrowd``: the one command-line entry point.

    escrowd run                 the whole node (API + watchers + signers + jobs)
    escrowd api                 the API alone (stateless; run many)
    escrowd watch --chain evm   the chain watcher(s) (one active per chain: leadership)
    escrowd sign                the relayer and other signers (one active per chain)
    escrowd jobs                the periodic jobs (each run claimed: SKIP LOCKED)
    escrowd db upgrade          bring the database to the newest migration
    escrowd db current          print the database's migration
    escrowd users add NAME      create a user and print their bearer token
    escrowd users set-password NAME / users role NAME ROLE   (accounts)
    escrowd config              print the effective configuration (secrets hidden)
    escrowd demo evm            a released and a disputed trade on a local chain

Configuration: environment variables ESCROWD_* (nested with ``__``, e.g.
ESCROWD_EVM__RPC_URL) over an optional TOML file (ESCROWD_CONFIG, default
./escrowd.toml) over defaults that need nothing: dev mode, a SQLite file in
.escrowd/, local chains started by the node.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from node.config import Settings, load_settings
from node.errors import ConfigError, EscrowdError

ROLES = ("api", "watch", "sign", "jobs")
CHAINS = ("evm", "btc", "sol")

# Set by SIGTERM/SIGINT in the roles without an API: stop gracefully.
STOP = threading.Event()


def install_stop_signals() -> None:
    """SIGTERM and SIGINT set STOP instead of killing the process."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: STOP.set())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="escrowd",
        description="Blockchain-native escrow node for a P2P crypto marketplace.",
        epilog="Start with `escrowd run` (dev mode: local chains, SQLite, API on 127.0.0.1:8000).",
    )
    p.add_argument("--log-format", choices=["text", "json"],
                   help="log lines as text or JSON objects (default from config: text)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the whole node: API, chain watchers, signers, jobs")
    run.add_argument("--host", help="API bind address (default from config: 127.0.0.1)")
    run.add_argument("--port", type=int, help="API port (default from config: 8000)")
    run.add_argument("--roles", default=",".join(ROLES),
                     help=f"comma-separated roles of this process (default: {','.join(ROLES)})")
    run.add_argument("--chain", action="append", choices=CHAINS,
                     help="limit watch/sign to this chain (repeatable; default: all enabled)")

    api = sub.add_parser("api", help="run the API only (no watchers, no relayer)")
    api.add_argument("--host")
    api.add_argument("--port", type=int)

    watch = sub.add_parser("watch", help="follow chains (one active watcher per chain)")
    watch.add_argument("--chain", action="append", choices=CHAINS,
                       help="chain to watch (repeatable; default: all enabled)")
    sign = sub.add_parser("sign", help="relay and sign payouts (one active signer per chain)")
    sign.add_argument("--chain", action="append", choices=CHAINS)
    sub.add_parser("jobs", help="run the periodic jobs (each run claimed by one process)")

    db = sub.add_parser("db", help="database migrations")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dbsub.add_parser("upgrade", help="migrate to the newest schema (safe to repeat)")
    dbsub.add_parser("current", help="print the current migration")

    users = sub.add_parser("users", help="manage users")
    usub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = usub.add_parser("add", help="create a user; prints their bearer token once")
    add.add_argument("username")
    add.add_argument("--role", choices=["trader", "arbitrator", "admin"], default="trader")
    add.add_argument("--evm-address")
    from node.accounts.cli_users import add_user_commands

    add_user_commands(usub)

    sub.add_parser("config", help="print the effective configuration, secrets hidden")

    demo = sub.add_parser("demo", help="run a scripted demo against local chains")
    demo.add_argument("chain", choices=["evm", "sol", "btc"], help="which chain's demo")
    demo.add_argument("--quiet", action="store_true", help="print only the final JSON line")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("watch", "sign", "jobs") or (
        args.command == "run" and "api" not in args.roles.split(",")
    ):
        install_stop_signals()
    try:
        settings = load_settings()
        from node.ops.logs import setup_logging

        setup_logging(settings.log_level, args.log_format or settings.ops.log_format,
                      role=args.command)
        return _dispatch(args, settings)
    except EscrowdError as exc:
        print(f"escrowd: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "config":
        print(json.dumps(settings.model_dump(mode="json"), indent=2))
        return 0
    if args.command == "db":
        from node.db.migrate import current, upgrade
        from node.db.session import make_engine

        engine = make_engine(settings.resolved_database_url)
        if args.db_command == "upgrade":
            upgrade(engine)
        print(f"database at migration {current(engine)} ({engine.url.render_as_string()})")
        return 0
    if args.command == "users":
        from node.db.migrate import upgrade
        from node.db.session import make_engine, make_sessionmaker, transaction
        from node.trades import create_user

        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        with transaction(make_sessionmaker(engine)) as session:
            if args.users_command != "add":
                from node.accounts.cli_users import run_user_command

                print(json.dumps(run_user_command(session, args)))
                return 0
            user, token = create_user(
                session, username=args.username, role=args.role, evm_address=args.evm_address
            )
            print(json.dumps({"id": user.id, "username": user.username, "role": user.role,
                              "token": token}))
        return 0
    if args.command == "run":
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
        bad = sorted(set(roles) - set(ROLES))
        if bad or not roles:
            raise ConfigError(f"--roles: unknown role(s) {bad}; roles are {','.join(ROLES)}")
        return _serve(args, settings, roles=roles, chains=args.chain)
    if args.command == "api":
        return _serve(args, settings, roles=["api"], chains=None)
    if args.command in ("watch", "sign", "jobs"):
        return _serve(args, settings, roles=[args.command], chains=getattr(args, "chain", None))
    if args.command == "demo":
        if args.chain == "btc":
            from node.demo_btc import run_demo_btc

            return run_demo_btc(quiet=args.quiet)
        if args.chain == "sol":
            from node.demo_sol import run_demo_sol

            return run_demo_sol(quiet=args.quiet)
        from node.demo import run_demo

        return run_demo(args.chain, quiet=args.quiet)
    raise AssertionError(args.command)


def _serve(
    args: argparse.Namespace, settings: Settings, *, roles: list[str], chains: list[str] | None
) -> int:
    """Run the roles until SIGTERM/SIGINT; then stop taking work, let the
    current unit of work finish, release leadership and exit 0."""
    from node.runtime import build_node

    # The watcher and relayer threads are I/O-bound and share the GIL with the
    # API's event loop, which shares it with the API's worker threads: a
    # thread that gives the GIL up for a system call waits up to the switch
    # interval to get it back from a busy one. The default (5 ms) would add
    # that to every round trip of the watcher, and to every response the
    # event loop sends while a handler thread computes.
    sys.setswitchinterval(0.0005)
    log = logging.getLogger("escrowd")
    stop = STOP
    if "api" not in roles:
        # from the start: a SIGTERM while the node is being built stops it
        # as soon as it is built, still gracefully
        install_stop_signals()
    node = build_node(settings)
    background = [r for r in roles if r != "api"]
    try:
        if background:
            node.start_background(roles=background, chains=chains)
        if "api" in roles:
            import uvicorn

            host = args.host or settings.api.host
            port = args.port or settings.api.port
            log.info("API on http://%s:%s (docs at /docs)", host, port)
            # uvicorn stops accepting on SIGTERM and lets requests finish;
            # then it re-raises the signal, which our handler takes, so the
            # node below stops gracefully too
            install_stop_signals()
            app = node.app()
            # what is alive now (modules, the node, the app, the ORM's mappers)
            # lives as long as the process: out of the collector's full passes,
            # which would otherwise walk it again and again under load
            gc.collect()
            gc.freeze()
            uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off",
                        timeout_graceful_shutdown=int(settings.ops.shutdown_grace_s))
        else:
            if settings.ops.metrics_port:
                from prometheus_client import start_http_server

                start_http_server(settings.ops.metrics_port, settings.ops.metrics_host)
            log.info("running %s%s", ",".join(roles),
                     f" for {','.join(chains)}" if chains else "")
            while not stop.wait(0.5):
                pass
            log.info("stopping: finishing the current work")
    finally:
        node.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
