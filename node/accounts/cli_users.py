"""``escrowd users set-password NAME`` and ``escrowd users role NAME ROLE``:
account administration from the command line (``node.cli`` wires them)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.accounts.audit import record_audit
from node.accounts.passwords import set_password
from node.accounts.tokens import Tokens
from node.db.models import User
from node.errors import NotFoundError
from node.trades import ROLES


def add_user_commands(usub: Any) -> None:
    sp = usub.add_parser("set-password", help="set a user's password (read from stdin or a prompt)")
    sp.add_argument("username")
    role = usub.add_parser("role", help="make a user a trader, arbitrator or admin")
    role.add_argument("username")
    role.add_argument("role", choices=list(ROLES))


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    return user


def read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("new password: ")
    return sys.stdin.readline().rstrip("\n")


def run_user_command(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    user = _user(session, args.username)
    if args.users_command == "set-password":
        set_password(session, user_id=user.id, password=read_password())
        record_audit(session, actor_id=None, action="auth.password_set",
                     subject=f"user:{user.id}", details={"by": "cli"})
        return {"id": user.id, "username": user.username, "password": "set"}
    old = user.role
    user.role = args.role
    Tokens.revoke_user_sessions(session, user.id, reason="role_changed")
    record_audit(session, actor_id=None, action="admin.role_changed", subject=f"user:{user.id}",
                 details={"from": old, "to": args.role, "by": "cli"})
    return {"id": user.id, "username": user.username, "role": user.role}
