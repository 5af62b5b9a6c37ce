"""Withdrawal requests on real PostgreSQL: the global daily limit holds when
several users request at the same moment (the limit check is serialized per
asset), each accepted request holds its funds, and a request cancelled
before it is signed releases them and no longer counts against the limits."""

from __future__ import annotations

import threading
import time

import pyotp
from sqlalchemy.orm import Session, sessionmaker

from node.accounts.keys import TotpCipher, install_cipher
from node.accounts.totp import enable_totp, setup_totp
from node.custody.errors import WithdrawalRefusedError
from node.custody.ledger import NODE_DEPOSIT, Leg, post_entry, user_account, user_balances
from node.custody.settings import CustodySettings
from node.custody.withdrawals import add_allowed, request_withdrawal
from node.db.models import utcnow
from node.db.session import transaction
from node.trades import CurrencySpec, create_user, upsert_currency
from wallets.bitcoin.network import REGTEST

ETH = 10**18
PAYEE = "0x" + "ab" * 20


def test_global_limit_holds_under_concurrent_requests(sessions: sessionmaker[Session]) -> None:
    install_cipher(sessions, TotpCipher(b"k" * 32))
    cfg = CustodySettings(new_address_delay_s=0, global_daily_limit={"ETH": ETH})
    codes: dict[int, str] = {}
    with transaction(sessions) as s:
        upsert_currency(s, CurrencySpec("Ether", "ETH", "evm", "31337", 18))
        for n in range(4):
            u, _token = create_user(s, username=f"w{n}")
            s.flush()
            setup = setup_totp(s, user_id=u.id, account=u.username, issuer="escrowd")
            totp = pyotp.TOTP(setup.secret)
            enable_totp(s, user_id=u.id, code=totp.now(), count=1)
            codes[u.id] = totp.at(time.time() + 30)
            post_entry(
                s,
                ref=f"dep:{u.id}",
                kind="deposit",
                legs=[
                    Leg(user_account(u.id, "available"), "ETH", ETH),
                    Leg(NODE_DEPOSIT, "ETH", -ETH),
                ],
            )
            add_allowed(
                s,
                user_id=u.id,
                chain="evm",
                address=PAYEE,
                label=None,
                now=utcnow(),
                delay_s=0,
                btc_network=REGTEST,
            )
    accepted: list[int] = []
    refused: list[str] = []
    gate = threading.Barrier(len(codes))

    def request(user_id: int) -> None:
        gate.wait()
        try:
            with transaction(sessions) as s:
                request_withdrawal(
                    s,
                    cfg=cfg,
                    supported_chains={"evm"},
                    btc_network=REGTEST,
                    user_id=user_id,
                    asset="ETH",
                    address=PAYEE,
                    amount=4 * 10**17,
                    totp_code=codes[user_id],
                    request_key="r1",
                )
            accepted.append(user_id)
        except WithdrawalRefusedError as exc:
            refused.append(exc.code)

    threads = [threading.Thread(target=request, args=(uid,)) for uid in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 2 and refused == ["global_daily_limit"] * 2
    with sessions() as s:
        for uid in codes:
            held = user_balances(s, uid)["ETH"]["held"]
            assert held == (4 * 10**17 if uid in accepted else 0)


def test_cancel_releases_the_hold_and_the_limit(sessions: sessionmaker[Session]) -> None:
    from datetime import timedelta

    from node.custody.withdrawals import cancel_withdrawal
    from node.errors import NotFoundError

    install_cipher(sessions, TotpCipher(b"k" * 32))
    cfg = CustodySettings(new_address_delay_s=0, user_daily_limit={"ETH": ETH // 2})
    t0 = utcnow()
    with transaction(sessions) as s:
        upsert_currency(s, CurrencySpec("Ether", "ETH", "evm", "31337", 18))
        u, _token = create_user(s, username="c")
        s.flush()
        uid = u.id
        setup = setup_totp(s, user_id=uid, account="c", issuer="escrowd")
        totp = pyotp.TOTP(setup.secret)
        enable_totp(s, user_id=uid, code=totp.at(t0), count=1, now=t0)
        post_entry(
            s,
            ref="dep",
            kind="deposit",
            legs=[Leg(user_account(uid, "available"), "ETH", ETH), Leg(NODE_DEPOSIT, "ETH", -ETH)],
        )
        add_allowed(
            s,
            user_id=uid,
            chain="evm",
            address=PAYEE,
            label=None,
            now=t0,
            delay_s=0,
            btc_network=REGTEST,
        )

    def req(key: str, minutes: int) -> int:
        at = t0 + timedelta(minutes=minutes)
        with transaction(sessions) as s:
            w, _new = request_withdrawal(
                s,
                cfg=cfg,
                supported_chains={"evm"},
                btc_network=REGTEST,
                user_id=uid,
                asset="ETH",
                address=PAYEE,
                amount=4 * 10**17,
                totp_code=totp.at(at),
                request_key=key,
                now=at,
            )
            return w.id

    first = req("a", 1)
    try:
        req("b", 2)
        raise AssertionError("the user's daily limit should refuse a second request")
    except WithdrawalRefusedError as exc:
        assert exc.code == "user_daily_limit"
    with transaction(sessions) as s:
        w = cancel_withdrawal(s, user_id=uid, withdrawal_id=first)
        assert w.status == "cancelled"
        try:
            cancel_withdrawal(s, user_id=uid + 1, withdrawal_id=first)
            raise AssertionError("another user cannot cancel it")
        except NotFoundError:
            pass
    with sessions() as s:
        assert user_balances(s, uid)["ETH"] == {"available": ETH, "held": 0, "debt": 0}
    req("c", 3)  # the cancelled one no longer counts against the limit
    with sessions() as s:
        assert user_balances(s, uid)["ETH"]["held"] == 4 * 10**17
