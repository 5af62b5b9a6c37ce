"""Wallet sign-in proofs without I/O: the Bitcoin/Solana message format
round-trips and its fields are checked; SIWE messages are checked for domain,
URI, chain id, expiry and signer; Bitcoin BIP-322 (the BIP's own test
vector) and legacy signatures; Solana ed25519 signatures."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from solders.keypair import Keypair

from node.accounts.signin_messages import SignInMessage, check_fields, parse_message
from node.accounts.wallet_proofs import check_btc_address, verify_btc, verify_siwe, verify_sol
from node.errors import AuthenticationError, ValidationError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# BIP-322 test vector: "Hello World" signed by this P2WPKH address
BIP322 = ("bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l", "Hello World",
          "AkcwRAIgZRfIY3p7/DoVTty6YZbWS71bc5Vct9p9Fia83eRmw2QCICK/ENGfwLtptFluMGs2KsqoNSk89pO7"
          "F29zJLUx9a/sASECx/EgAxlkQpQ9hYjgGu6EBCPMVPwVIVJqO4XCsMvViHI=")


def _msg(**over: object) -> SignInMessage:
    fields: dict[str, object] = {
        "chain": "sol", "domain": "localhost", "address": str(Keypair().pubkey()),
        "uri": "http://localhost", "nonce": "abcDEF123456789xy",
        "issued_at": NOW - timedelta(minutes=1), "expires_at": NOW + timedelta(minutes=9)}
    fields.update(over)
    return SignInMessage(**fields)  # type: ignore[arg-type]


def test_message_round_trip_and_field_checks() -> None:
    m = _msg()
    assert parse_message(m.text()) == m
    ok = {"chain": "sol", "address": m.address, "domain": "localhost",
          "uri": "http://localhost", "now": NOW}
    check_fields(m, **ok)  # type: ignore[arg-type]
    for over, code in [({"domain": "evil.example"}, "domain_mismatch"),
                       ({"uri": "http://evil"}, "uri_mismatch"),
                       ({"address": "x" * 44}, "address_mismatch"),
                       ({"now": NOW + timedelta(hours=1)}, "message_expired"),
                       ({"now": NOW - timedelta(hours=1)}, "message_not_yet_valid")]:
        with pytest.raises(AuthenticationError) as e:
            check_fields(m, **(ok | over))  # type: ignore[arg-type]
        assert e.value.code == code
    for bad in ("", m.text() + "\nextra", m.text().replace("Nonce: ", "Nonce:"),
                m.text().replace("Solana", "Dogecoin")):
        with pytest.raises(ValidationError):
            parse_message(bad)


def _siwe(acct: object, **over: object) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from siwe import SiweMessage
    fields: dict[str, object] = {
        "domain": "localhost", "address": acct.address, "uri": "http://localhost",  # type: ignore[attr-defined]
        "version": "1", "chain_id": 31337, "nonce": "abcdefgh12345678",
        "issued_at": "2026-06-01T11:59:00Z", "expiration_time": "2026-06-01T12:05:00Z"}
    fields.update(over)
    return str(SiweMessage(**fields).prepare_message())


def _sign(acct: object, text: str) -> str:
    return "0x" + acct.sign_message(encode_defunct(text=text)).signature.hex()  # type: ignore[attr-defined]


def test_siwe_checks() -> None:
    acct = Account.create()
    kw = {"domain": "localhost", "uri": "http://localhost", "chain_ids": {31337}, "now": NOW}
    text = _siwe(acct)
    proof = verify_siwe(text, _sign(acct, text), **kw)  # type: ignore[arg-type]
    assert proof.address == acct.address and proof.nonce == "abcdefgh12345678"
    cases = [(_siwe(acct, domain="evil.example"), "domain_mismatch"),
             (_siwe(acct, uri="http://evil"), "uri_mismatch"),
             (_siwe(acct, chain_id=1), "chain_mismatch"),
             (_siwe(acct, expiration_time="2026-06-01T11:59:30Z"), "message_expired")]
    for text, code in cases:
        with pytest.raises(AuthenticationError) as e:
            verify_siwe(text, _sign(acct, text), **kw)  # type: ignore[arg-type]
        assert e.value.code == code
    text = _siwe(acct)
    for sig in (_sign(Account.create(), text), "0x" + "00" * 65, "0x12"):
        with pytest.raises(AuthenticationError) as e:
            verify_siwe(text, sig, **kw)  # type: ignore[arg-type]
        assert e.value.code == "invalid_signature"


def test_bitcoin_bip322_vector_and_legacy() -> None:
    address, message, sig = BIP322
    assert verify_btc(address, message, sig, network="mainnet") == "bip322"
    with pytest.raises(AuthenticationError):
        verify_btc(address, "Hello World!", sig, network="mainnet")
    with pytest.raises(ValidationError):
        verify_btc(address, message, sig, network="regtest")  # a mainnet address
    from bitcoinlib.keys import HDKey

    key = HDKey(network="regtest", witness_type="segwit")
    legacy = key.sign_message(b"sign in please").as_base64()
    assert verify_btc(key.address(), "sign in please", legacy, network="regtest") == "legacy"
    with pytest.raises(AuthenticationError):
        verify_btc(key.address(), "sign in, please", legacy, network="regtest")
    for addr, net in (("bcrt1qxyz", "regtest"), ("tb1qxyz", "testnet"), ("3abc", "mainnet")):
        check_btc_address(addr, net)
    with pytest.raises(ValidationError):
        check_btc_address("tb1qxyz", "regtest")


def test_solana_signature() -> None:
    kp = Keypair()
    sig = str(kp.sign_message(b"hello"))
    verify_sol(str(kp.pubkey()), "hello", sig)
    with pytest.raises(AuthenticationError):
        verify_sol(str(kp.pubkey()), "hellO", sig)
    with pytest.raises(AuthenticationError):
        verify_sol(str(Keypair().pubkey()), "hello", sig)
    with pytest.raises(AuthenticationError):
        verify_sol(str(kp.pubkey()), "hello", "not-base58!")
    with pytest.raises(ValidationError):
        verify_sol("nope", "hello", sig)
