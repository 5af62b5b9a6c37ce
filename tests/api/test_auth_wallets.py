"""Wallet sign-in by signature over the real API: Sign-In with Ethereum
(EIP-4361) with its nonce, domain, expiry and chain id checked; a Bitcoin
signed message; a Solana signed message; one user linking several wallets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from solders.keypair import Keypair

from tests.api.auth_fixtures import *  # noqa: F403
from tests.api.auth_fixtures import (
    AUTH,
    Api,
    bearer,
    btc_body,
    btc_key,
    new_eth_account,
    nonce,
    siwe_message,
    siwe_sign,
    sol_body,
    wallet_sign_in,
)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_siwe_sign_in_once_per_nonce(auth_api: Api) -> None:
    acct = new_eth_account()
    n = nonce(auth_api, "evm")
    assert n["chain_id"] == auth_api.chain.deployment.chain_id
    msg = siwe_message(acct, n)
    body = {"chain": "evm", "message": msg, "signature": siwe_sign(acct, msg)}
    r = wallet_sign_in(auth_api, body)
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    me = auth_api.client.get(f"{AUTH}/me", headers=bearer(r.json()["access_token"])).json()
    assert [(w["chain"], w["address"]) for w in me["wallets"]] == [("evm", acct.address.lower())]
    # the same signed message again: the nonce is spent
    r = wallet_sign_in(auth_api, body)
    assert r.status_code == 401 and r.json()["code"] == "nonce_reused"
    # a fresh nonce signs the same wallet into the same account
    msg = siwe_message(acct, nonce(auth_api, "evm"))
    r = wallet_sign_in(auth_api, {"chain": "evm", "message": msg,
                                  "signature": siwe_sign(acct, msg)})
    assert r.status_code == 200 and r.json()["user"]["id"] == user["id"]


def test_siwe_refused(auth_api: Api) -> None:
    """Each refused: wrong domain, wrong URI, wrong chain id, expired, unknown nonce."""
    past = datetime.now(UTC)
    cases: list[tuple[dict[str, object], str]] = [
        ({"domain": "evil.example"}, "domain_mismatch"),
        ({"uri": "https://evil.example/login"}, "uri_mismatch"),
        ({"chain_id": 1}, "chain_mismatch"),
        ({"issued_at": _iso(past - timedelta(hours=2)),
          "expiration_time": _iso(past - timedelta(hours=1))}, "message_expired"),
        ({"nonce": "abcdefgh12345678"}, "nonce_invalid"),
    ]
    for over, code in cases:
        acct = new_eth_account()
        msg = siwe_message(acct, nonce(auth_api, "evm"), **over)
        r = wallet_sign_in(auth_api, {"chain": "evm", "message": msg,
                                      "signature": siwe_sign(acct, msg)})
        assert r.status_code == 401, (over, r.text)
        assert r.json()["code"] == code, over


def test_siwe_signature_of_another_key_is_refused(auth_api: Api) -> None:
    acct, other = new_eth_account(), new_eth_account()
    n = nonce(auth_api, "evm")
    msg = siwe_message(acct, n)
    r = wallet_sign_in(auth_api, {"chain": "evm", "message": msg,
                                  "signature": siwe_sign(other, msg)})
    assert r.status_code == 401 and r.json()["code"] == "invalid_signature"
    # the nonce was not spent by the failed attempt
    r = wallet_sign_in(auth_api, {"chain": "evm", "message": msg,
                                  "signature": siwe_sign(acct, msg)})
    assert r.status_code == 200
    r = wallet_sign_in(auth_api, {"chain": "evm", "message": "hello", "signature": "0x00"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_message"


def test_solana_and_bitcoin_sign_in(auth_api: Api) -> None:
    kp = Keypair()
    body = sol_body(auth_api, kp)
    r = wallet_sign_in(auth_api, body)
    assert r.status_code == 200, r.text
    assert wallet_sign_in(auth_api, body).json()["code"] == "nonce_reused"
    forged = sol_body(auth_api, kp) | {"signature": str(Keypair().sign_message(b"x"))}
    r = wallet_sign_in(auth_api, forged)
    assert r.status_code == 401 and r.json()["code"] == "invalid_signature"
    # a message naming another address than the one claimed
    other = sol_body(auth_api, Keypair()) | {"address": str(kp.pubkey())}
    r = wallet_sign_in(auth_api, other)
    assert r.status_code == 401 and r.json()["code"] == "address_mismatch"

    key = btc_key()
    r = wallet_sign_in(auth_api, btc_body(auth_api, key))
    assert r.status_code == 200, r.text
    forged = btc_body(auth_api, key)
    forged["signature"] = btc_key().sign_message(forged["message"].encode()).as_base64()
    r = wallet_sign_in(auth_api, forged)
    assert r.status_code == 401 and r.json()["code"] == "invalid_signature"
    bad_net = btc_body(auth_api, key) | {"address": "bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l"}
    r = wallet_sign_in(auth_api, bad_net)
    assert r.status_code in (401, 422)


def test_one_user_links_several_wallets(auth_api: Api) -> None:
    acct, kp, key = new_eth_account(), Keypair(), btc_key()
    msg = siwe_message(acct, nonce(auth_api, "evm"))
    pair = wallet_sign_in(auth_api, {"chain": "evm", "message": msg,
                                     "signature": siwe_sign(acct, msg)}).json()
    h = bearer(pair["access_token"])
    r = auth_api.client.post(f"{AUTH}/wallets", headers=h, json=sol_body(auth_api, kp))
    assert r.status_code == 201, r.text
    r = auth_api.client.post(f"{AUTH}/wallets", headers=h, json=btc_body(auth_api, key))
    assert r.status_code == 201, r.text
    wallets = auth_api.client.get(f"{AUTH}/wallets", headers=h).json()
    assert sorted(w["chain"] for w in wallets) == ["btc", "evm", "sol"]
    # signing in with the Solana wallet reaches the same account
    r = wallet_sign_in(auth_api, sol_body(auth_api, kp))
    assert r.json()["user"]["id"] == pair["user"]["id"]
    # another user cannot take a linked wallet
    r = auth_api.post(f"{AUTH}/wallets", "outsider", json=sol_body(auth_api, kp))
    assert r.status_code == 403 and r.json()["code"] == "wallet_taken"
    # nor unlink it; the owner can (not the last sign-in method)
    sol_id = next(w["id"] for w in wallets if w["chain"] == "sol")
    assert auth_api.delete(f"{AUTH}/wallets/{sol_id}", "outsider").status_code == 404
    assert auth_api.client.delete(f"{AUTH}/wallets/{sol_id}", headers=h).status_code == 204
