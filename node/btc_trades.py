"""The Bitcoin half of a trade: a P2WSH 2-of-3 escrow per trade (buyer,
seller, the node's agent as arbitrator; or the seller's refund key alone
after ``csv_blocks``), payouts as PSBTs the parties sign in their own wallets.

- Traders bring their own public keys (the seller two: a multisig key and a
  refund key for the timelock branch; the buyer one). No private key of a
  trader ever reaches the node.
- Every party action returns the PSBT to sign; the signed PSBT comes back in
  ``signatures=[psbt_base64]``. The node checks it with the wallets/bitcoin
  policy (inputs = the confirmed escrow deposits, outputs = the ruling, fee
  under the cap, SIGHASH_ALL only, the acting party's signature present),
  co-signs with the agent key under the signing journal (I5), combines,
  finalizes, verifies the transaction with libbitcoinkernel and broadcasts.
- The agent signs only: a release the seller signed, a refund the buyer
  signed (the buyer cancels), and an arbitrator's ruling. A ruling's PSBT is
  stored agent-signed; the winning party co-signs it (``cosign``).
- The seller alone can take the coins back after the timelock
  (``timelock_psbt`` / ``submit_timelock_refund``), with no node signature;
  a signed timelock refund can be left with the node (``watchtower``), which
  broadcasts it at maturity if the trade is still unpaid and undisputed.
- Fees: estimatesmartfee, at least ``min_feerate_sat_vb``; a payout never
  pays more than ``max_fee_sat``. Every payout PSBT comes with a fee ladder
  (the same payout at rising fees) the party may sign in advance; a payout
  stuck for ``bump_after_blocks`` is replaced by the next signed rung
  automatically (``node.btc_bumps``). Without a ladder, a stuck payout is
  re-built with a BIP-125 replacement fee and re-signed (``bump_payout``).

All confirmed unspent deposits of the escrow are spent by a payout and follow
the ruling: an over-payment goes where the ruling sends the escrow.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from embit import bip32
from embit.script import address_to_scriptpubkey
from embit.transaction import Transaction
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session, sessionmaker

from node.chain_trades import SignRequest, Submitted
from node.chains.btc.adapter import BtcAdapter
from node.db.models import (
    BtcEscrow,
    BtcPartyKeys,
    CryptoCurrency,
    P2PDispute,
    P2PEscrow,
    P2POrder,
    User,
)
from node.domain.btc_escrow import chain_state_of
from node.domain.escrow import Action, EscrowView, TradeStatus, decision_of
from node.errors import EscrowdError, EscrowStateError, PermissionDeniedError, ValidationError
from node.signing import sign_once
from wallets.bitcoin import (
    MAINNET,
    BitcoinNetwork,
    ConsensusError,
    Escrow,
    EscrowScript,
    FundingOutput,
    PayoutKind,
    PayoutPsbt,
    Ruling,
    SoftwareSigner,
    build_payout_psbt,
    check_payout_psbt,
    finalize_payout,
    parse_party_key,
    payout_script_pubkey,
    psbt_for_signing,
    replacement_fee,
    verify_transaction,
)
from wallets.errors import KeyValidationError, WalletError

log = logging.getLogger("escrowd.btc")

DEV_AGENT_SEED = hashlib.sha256(b"escrowd dev bitcoin agent (never use for real coins)").digest()
FEE_TARGET_BLOCKS = 6
FEE_SLACK = 3  # a party's PSBT may pay up to 3x the fee the node proposes


class BtcPolicyError(EscrowdError):
    """A PSBT or key handed in was refused (the wallets/bitcoin policy's
    violation code is the problem's ``code``)."""

    code = "psbt_policy_violation"
    http_status = 422


def _wallet_error(exc: WalletError) -> EscrowdError:
    if isinstance(exc, KeyValidationError):
        return ValidationError(exc.message, code=exc.code, **exc.fields)
    return BtcPolicyError(exc.message, code=exc.code, **exc.fields)


def script_hex(address: str) -> str:
    """The scriptPubKey (hex) an address stands for."""
    return str(address_to_scriptpubkey(address).data.hex())


def agent_signer(seed: str | None, network: BitcoinNetwork) -> SoftwareSigner:
    """The node's agent key: a hex seed or an xprv/tprv; None: the dev seed."""
    if seed is None:
        return SoftwareSigner.from_seed(DEV_AGENT_SEED, network=network)
    s = seed.strip()
    if s[1:4] == "prv":
        return SoftwareSigner(bip32.HDKey.from_string(s), network=network)
    return SoftwareSigner.from_seed(bytes.fromhex(s), network=network)


class BtcTradeChain:
    """``TradeChain`` for one Bitcoin network."""

    family = "btc"

    def __init__(
        self,
        *,
        adapter: BtcAdapter,
        sessions: sessionmaker[Session],
        network: BitcoinNetwork,
        agent: SoftwareSigner,
        csv_blocks: int,
        min_feerate_sat_vb: int,
        max_fee_sat: int,
        payment_window_s: int = 1800,
        bump_after_blocks: int = 3,
        ladder_rungs: int = 3,
    ) -> None:
        self.adapter = adapter
        self.sessions = sessions
        self.network = network
        self.network_name = adapter.network
        self.chain_key = adapter.chain_key
        self._agent = agent
        self.csv_blocks = csv_blocks
        self.min_feerate_sat_vb = min_feerate_sat_vb
        self.max_fee_sat = max_fee_sat
        self.payment_window_s = payment_window_s
        self.bump_after_blocks = bump_after_blocks
        self.ladder_rungs = ladder_rungs
        coin = 0 if network is MAINNET else 1
        self.agent_account = f"m/84h/{coin}h/0h"
        # dev mode: the local regtest node this chain runs on (node.devchain.DevBtc)
        self.dev_node: Any = None

    # -- currencies / addresses ---------------------------------------------

    def currencies(self) -> list[dict[str, Any]]:
        return [{"name": "Bitcoin", "symbol": "BTC", "network": self.network_name,
                 "decimals": 8, "contract_address": None}]

    def validate_address(self, address: str, *, field: str) -> str:
        try:
            payout_script_pubkey(address, field=field, network=self.network)
        except WalletError as exc:
            raise ValidationError(f"{field} is not a {self.network_name} Bitcoin address",
                                  field=field) from exc
        return address

    def agent_key(self, index: int) -> str:
        """The agent's key expression for escrow ``index`` (its trade id)."""
        return self._agent.key_expression(self.agent_account, (0, index))

    # -- keys and opening -------------------------------------------------------

    def store_party_keys(self, session: Session, *, order: P2POrder, keys: dict[str, str]) -> None:
        """Keep the public keys a trader brought: the seller's two with the ad
        (``seller_pubkey``, ``seller_refund_pubkey``), the buyer's with the
        match (``buyer_pubkey``)."""
        wanted = ("seller_pubkey", "seller_refund_pubkey") if order.kind == "ad" else (
            "buyer_pubkey",)
        for name in keys:
            if name not in wanted:
                raise ValidationError(f"{name} is not used here", field=name)
        for name in wanted:
            if not keys.get(name):
                raise ValidationError(f"{name} is required for a Bitcoin "
                                      f"{'ad' if order.kind == 'ad' else 'trade'}", field=name)
            try:
                parse_party_key(keys[name], field=name, network=self.network)
            except WalletError as exc:
                raise _wallet_error(exc) from None
        row = BtcPartyKeys(p2p_order_id=order.id)
        if order.kind == "ad":
            if keys["seller_pubkey"] == keys["seller_refund_pubkey"]:
                raise ValidationError("the refund key must differ from the multisig key",
                                      field="seller_refund_pubkey")
            row.seller_key = keys["seller_pubkey"]
            row.seller_refund_key = keys["seller_refund_pubkey"]
        else:
            row.buyer_key = keys["buyer_pubkey"]
        session.add(row)
        session.flush()

    def _keys(self, session: Session, order_id: int | None) -> BtcPartyKeys | None:
        if order_id is None:
            return None
        return session.scalar(select(BtcPartyKeys).where(BtcPartyKeys.p2p_order_id == order_id))

    def open_escrow(
        self,
        session: Session,
        *,
        trade: P2POrder,
        currency: CryptoCurrency,  # noqa: ARG002 - one currency per network
        arbitrator_address: str | None,  # noqa: ARG002 - the agent arbitrates Bitcoin trades
        now: datetime,
    ) -> P2PEscrow:
        assert trade.seller_address and trade.buyer_address
        ad_keys, trade_keys = self._keys(session, trade.parent_id), self._keys(session, trade.id)
        if ad_keys is None or not ad_keys.seller_key or not ad_keys.seller_refund_key:
            raise ValidationError("the ad has no seller keys", field="seller_pubkey")
        if trade_keys is None or not trade_keys.buyer_key:
            raise ValidationError("buyer_pubkey is required", field="buyer_pubkey")
        agent_key = self.agent_key(trade.id)
        try:
            esc = Escrow.create(
                buyer_key=trade_keys.buyer_key, seller_key=ad_keys.seller_key,
                arbitrator_key=agent_key, seller_refund_key=ad_keys.seller_refund_key,
                csv_blocks=self.csv_blocks, network=self.network,
            )
        except WalletError as exc:
            raise _wallet_error(exc) from None
        if session.scalar(select(BtcEscrow.id).where(BtcEscrow.address == esc.address)):
            raise ValidationError("these keys already make an escrow address in use; "
                                  "bring a fresh key", code="escrow_address_reused",
                                  field="buyer_pubkey")
        escrow = P2PEscrow(
            p2p_order_id=trade.id,
            chain="btc",
            network=self.network_name,
            contract_address=None,
            ref="0x" + secrets.token_hex(32),
            escrow_key=esc.address,
            token_address=None,
            amount=trade.amount,
            seller_address=trade.seller_address,
            buyer_address=trade.buyer_address,
            arbitrator_address=esc.arbitrator.pubkey.hex(),
            fee_bps=0,
            payment_window_s=self.payment_window_s,
            deadline=int(now.timestamp()) + self.csv_blocks * 600,
            status="awaiting_funding",
        )
        session.add(escrow)
        session.flush()
        session.add(BtcEscrow(
            p2p_escrow_id=escrow.id,
            address=esc.address,
            script_pubkey=esc.script.script_pubkey.hex(),
            descriptor=esc.descriptor,
            witness_script=esc.script.witness_script.hex(),
            csv_blocks=self.csv_blocks,
            buyer_key=trade_keys.buyer_key,
            seller_key=ad_keys.seller_key,
            seller_refund_key=ad_keys.seller_refund_key,
            arbitrator_key=agent_key,
            buyer_payout_address=trade.buyer_address,
            seller_payout_address=trade.seller_address,
            deposits=[],
        ))
        session.flush()
        return escrow

    def btc_of(self, session: Session, escrow: P2PEscrow) -> BtcEscrow:
        btc = session.scalar(select(BtcEscrow).where(BtcEscrow.p2p_escrow_id == escrow.id))
        if btc is None:
            raise ValidationError("not a Bitcoin escrow", code="not_btc")
        return btc

    def funding_instructions(self, escrow: P2PEscrow, currency: CryptoCurrency) -> dict[str, Any]:  # noqa: ARG002
        session = object_session(escrow)
        assert session is not None
        btc = self.btc_of(session, escrow)
        amount = escrow.amount
        btc_amount = f"{amount // 100_000_000}.{amount % 100_000_000:08d}"
        return {
            "chain": "btc",
            "network": self.network_name,
            "address": btc.address,
            "descriptor": btc.descriptor,
            "witness_script": btc.witness_script,
            "csv_blocks": btc.csv_blocks,
            "amount": str(amount),
            "amount_btc": btc_amount,
            "bip21": f"bitcoin:{btc.address}?amount={btc_amount}",
            "keys": {"buyer": btc.buyer_key, "seller": btc.seller_key,
                     "seller_refund": btc.seller_refund_key, "arbitrator": btc.arbitrator_key},
            "note": "pay the amount to the address from the seller's own wallet; anyone can "
            "rebuild the address from the descriptor. The trade shows funded after the "
            "configured confirmations; under- and over-payments are shown, never lost.",
        }

    # -- state -------------------------------------------------------------------

    def escrow_view(self, escrow: P2PEscrow) -> EscrowView:
        order: P2POrder = escrow.order
        return EscrowView(
            state=chain_state_of(TradeStatus(order.status)),
            seller=escrow.seller_address,
            buyer=escrow.buyer_address,
            arbitrator=escrow.arbitrator_address,
            amount=escrow.amount,
        )

    def funding_outputs(self, btc: BtcEscrow) -> list[FundingOutput]:
        spk = bytes.fromhex(btc.script_pubkey)
        return [FundingOutput(d["txid"], int(d["vout"]), int(d["amount_sat"]), spk)
                for d in btc.deposits or [] if d.get("spent_by") is None]

    def script(self, btc: BtcEscrow) -> EscrowScript:
        return EscrowScript.from_descriptor(btc.descriptor, network=self.network)

    def ruling_for(self, btc: BtcEscrow, kind: PayoutKind, buyer_bps: int = 0) -> Ruling:
        n = self.network
        if kind is PayoutKind.RELEASE:
            return Ruling.release(btc.buyer_payout_address, network=n)
        if kind is PayoutKind.REFUND:
            return Ruling.refund(btc.seller_payout_address, network=n)
        if kind is PayoutKind.TIMELOCK_REFUND:
            return Ruling.timelock_refund(btc.seller_payout_address, network=n)
        return Ruling.split(btc.buyer_payout_address, btc.seller_payout_address, buyer_bps,
                            network=n)

    @staticmethod
    def kind_of(action: Action, buyer_bps: int) -> PayoutKind:
        if action is Action.RELEASE or (action is Action.RESOLVE and buyer_bps == 10_000):
            return PayoutKind.RELEASE
        if action in (Action.CANCEL, Action.RECLAIM) or (
                action is Action.RESOLVE and buyer_bps == 0):
            return PayoutKind.REFUND
        if action is Action.RESOLVE:
            return PayoutKind.SPLIT
        raise ValidationError(f"{action.name.lower()} moves no bitcoin", field="action")

    def feerate(self) -> int:
        return self.adapter.estimate_feerate(target_blocks=FEE_TARGET_BLOCKS,
                                             floor_sat_vb=self.min_feerate_sat_vb)

    def build(self, btc: BtcEscrow, ruling: Ruling, *, fee_sat: int | None = None) -> PayoutPsbt:
        funding = self.funding_outputs(btc)
        if not funding:
            raise EscrowStateError("the escrow holds no confirmed deposit", code="not_funded")
        try:
            if fee_sat is not None:
                return build_payout_psbt(self.script(btc), funding, ruling, fee_sat=fee_sat)
            return build_payout_psbt(self.script(btc), funding, ruling,
                                     feerate_sat_vb=self.feerate())
        except WalletError as exc:
            raise _wallet_error(exc) from None

    def _payload(self, btc: BtcEscrow, built: PayoutPsbt, ruling: Ruling) -> dict[str, Any]:
        from node.btc_bumps import ladder_payload

        ladder = ladder_payload(self, btc, built, ruling)
        return {
            "psbt": built.psbt,
            "kind": ruling.kind.value,
            "fee_sat": built.fee_sat,
            "vsize_max": built.vsize,
            "txid": built.txid,
            "outputs": [{"script": s.hex(), "amount_sat": a} for s, a in built.outputs],
            "descriptor": btc.descriptor,
            "fee_ladder": ladder,
            "note": "sign this PSBT in your wallet (SIGHASH_ALL) and send it back as "
            "{\"psbt\": \"<base64>\"}"
            + ("; sign the fee_ladder PSBTs too and POST them to "
               "/api/btc/orders/<id>/fee-ladder so the node can bump a stuck payout"
               if ladder else ""),
        }

    def _record_offchain(self, escrow: P2PEscrow, action: Action) -> SignRequest:
        """Marking paid and opening a dispute are off-chain facts on Bitcoin:
        recorded at once, nothing to sign."""
        order: P2POrder = escrow.order
        now = datetime.now(UTC)
        if action is Action.MARK_PAID:
            order.paid_at = order.paid_at or now
            if order.status == TradeStatus.FUNDED.value:
                order.status = TradeStatus.PAID.value
        elif order.status in (TradeStatus.FUNDED.value, TradeStatus.PAID.value):
            order.status = TradeStatus.DISPUTED.value
        return SignRequest(action=action, payload={"recorded": True, "nothing_to_sign": True,
                                                   "status": order.status},
                           digest="", expiry=0, nonce=0)

    def sign_request(self, escrow: P2PEscrow, action: Action, *, buyer_bps: int = 0) -> SignRequest:
        if action in (Action.MARK_PAID, Action.DISPUTE):
            return self._record_offchain(escrow, action)
        session = object_session(escrow)
        assert session is not None
        btc = self.btc_of(session, escrow)
        ruling = self.ruling_for(btc, self.kind_of(action, buyer_bps), buyer_bps)
        built = self.build(btc, ruling)
        return SignRequest(action=action, payload=self._payload(btc, built, ruling),
                           digest=built.txid, expiry=0, nonce=0)

    # -- submitting ------------------------------------------------------------------

    def _party_pubkey(self, btc: BtcEscrow, role: str) -> bytes:
        key = btc.seller_key if role == "seller" else btc.buyer_key
        return parse_party_key(key, field=role, network=self.network).pubkey

    def party_fee_cap(self, btc: BtcEscrow, ruling: Ruling) -> int:
        """The most fee a party-built payout may pay (out of the other
        party's coins, on a release): FEE_SLACK times what the node proposes
        now, and never above ``max_fee_sat``."""
        proposed = self.build(btc, ruling).fee_sat
        return min(self.max_fee_sat, proposed * FEE_SLACK)

    def _check(self, btc: BtcEscrow, psbt: str, ruling: Ruling, *, signer_role: str | None,
               max_fee_sat: int | None = None) -> Any:
        try:
            checked = check_payout_psbt(psbt, escrow=self.script(btc),
                                        funding=self.funding_outputs(btc), ruling=ruling,
                                        max_fee_sat=max_fee_sat or self.max_fee_sat)
        except WalletError as exc:
            raise _wallet_error(exc) from None
        if signer_role is not None:
            pub = self._party_pubkey(btc, signer_role)
            if not all(pub in s for s in checked.signers):
                raise BtcPolicyError(f"the PSBT lacks the {signer_role}'s signature",
                                     code="psbt_missing_party_signature", role=signer_role)
        return checked

    def _agent_sign(self, btc: BtcEscrow, psbt: str, ruling: Ruling, decision: str) -> str:
        """The agent's signature on a checked PSBT, under the signing journal."""
        try:
            clean = psbt_for_signing(psbt, escrow=self.script(btc),
                                     funding=self.funding_outputs(btc), ruling=ruling,
                                     max_fee_sat=self.max_fee_sat)
        except WalletError as exc:
            raise _wallet_error(exc) from None
        txid = _unsigned_txid(clean)
        entry = sign_once(
            self.sessions, chain=self.chain_key, escrow_key=btc.address, decision=decision,
            payload_hash=txid, sign=lambda: self._agent.sign_psbt(clean),
        )
        return entry.signature

    def _finalize_and_broadcast(self, btc: BtcEscrow, psbts: list[str], ruling: Ruling, *,
                                signed_by: str | None = None) -> str:
        funding = self.funding_outputs(btc)
        try:
            final = finalize_payout(psbts, escrow=self.script(btc), funding=funding,
                                    ruling=ruling, max_fee_sat=self.max_fee_sat)
            by_op = {f.outpoint: f for f in funding}
            tx = Transaction.parse(final.raw)
            spent = [by_op[(i.txid.hex(), i.vout)] for i in tx.vin]
            verify_transaction(final.raw, [(f.script_pubkey, f.amount_sat) for f in spent])
        except ConsensusError as exc:
            raise BtcPolicyError(f"the transaction does not verify: {exc.message}",
                                 code="script_verify_failed") from None
        except WalletError as exc:
            raise _wallet_error(exc) from None
        txid = self.adapter.broadcast(final.raw)
        total = sum(f.amount_sat for f in funding)
        btc.payout_kind = ruling.kind.value
        btc.payout_txid = txid
        btc.payout_raw = final.raw.hex()
        btc.payout_fee_sat = total - sum(o.value for o in tx.vout)
        btc.payout_vsize = final.vsize
        btc.payout_broadcast_at = datetime.now(UTC)
        btc.payout_psbt = None
        btc.payout_ladder = {**(btc.payout_ladder or {}), "broadcast_height": self.adapter.head(),
                             "signed_by": signed_by, "txid": txid}
        log.info("btc payout %s (%s) broadcast for %s", txid, ruling.kind.value, btc.address)
        return txid

    def submit_signed(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        action: Action,
        buyer_bps: int,
        expiry: int,  # noqa: ARG002 - PSBTs do not expire
        signatures: list[str],
        requested_by: User,  # noqa: ARG002 - the caller checked the role
    ) -> Submitted:
        """A party's signed PSBT for RELEASE (the seller) or CANCEL (the
        buyer): checked, co-signed by the agent, finalized, broadcast."""
        if len(signatures) != 1:
            raise ValidationError("send exactly one signed PSBT", field="psbt")
        if action in (Action.MARK_PAID, Action.DISPUTE):
            req = self._record_offchain(escrow, action)
            return Submitted(kind="recorded", ref="", status=str(req.payload["status"]))
        if action not in (Action.RELEASE, Action.CANCEL):
            raise ValidationError(f"{action.name.lower()} is not signed this way on Bitcoin",
                                  field="action")
        btc = self.btc_of(session, escrow)
        kind = self.kind_of(action, buyer_bps)
        ruling = self.ruling_for(btc, kind, buyer_bps)
        signer_role = "seller" if action is Action.RELEASE else "buyer"
        psbt = signatures[0]
        self._check(btc, psbt, ruling, signer_role=signer_role,
                    max_fee_sat=self.party_fee_cap(btc, ruling))
        agent_signed = self._agent_sign(btc, psbt, ruling, decision_of(action, buyer_bps))
        txid = self._finalize_and_broadcast(btc, [psbt, agent_signed], ruling,
                                            signed_by=signer_role)
        btc.payout_buyer_bps = 10_000 if kind is PayoutKind.RELEASE else 0
        return Submitted(kind="btc_tx", ref=txid, status="broadcast")

    def agent_rule(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        buyer_bps: int,
        requested_by: User,  # noqa: ARG002
    ) -> Submitted:
        """The agent signs the ruling's PSBT (under the journal) and keeps it
        for the winning party to co-sign (``cosign``)."""
        btc = self.btc_of(session, escrow)
        ruling = self.ruling_for(btc, self.kind_of(Action.RESOLVE, buyer_bps), buyer_bps)
        built = self.build(btc, ruling)
        signed = self._agent_sign(btc, built.psbt, ruling, decision_of(Action.RESOLVE, buyer_bps))
        btc.payout_kind = ruling.kind.value
        btc.payout_buyer_bps = buyer_bps
        btc.payout_psbt = signed
        return Submitted(kind="psbt", ref=built.txid, status="awaiting_party_signature")

    def pending_payout(self, btc: BtcEscrow) -> dict[str, Any]:
        if btc.payout_psbt is None or btc.payout_kind is None:
            raise EscrowStateError("no payout is waiting for a signature", code="no_pending_payout")
        ruling = self.ruling_for(btc, PayoutKind(btc.payout_kind), btc.payout_buyer_bps or 0)
        checked = self._check(btc, btc.payout_psbt, ruling, signer_role=None)
        from node.btc_bumps import ladder_payload

        return {"psbt": btc.payout_psbt, "kind": btc.payout_kind, "buyer_bps": btc.payout_buyer_bps,
                "fee_sat": checked.fee_sat, "txid": _unsigned_txid(btc.payout_psbt),
                "outputs": [{"script": s.hex(), "amount_sat": a} for s, a in checked.outputs],
                "fee_ladder": ladder_payload(self, btc, None, ruling, base_fee_sat=checked.fee_sat)}

    def cosign(self, session: Session, *, escrow: P2PEscrow, role: str, psbt: str) -> Submitted:
        """A party's signature on the agent-signed pending payout (a ruling or
        a fee bump): combined, finalized, verified, broadcast."""
        btc = self.btc_of(session, escrow)
        if btc.payout_psbt is None or btc.payout_kind is None:
            raise EscrowStateError("no payout is waiting for a signature", code="no_pending_payout")
        if role not in ("buyer", "seller"):
            raise PermissionDeniedError("only the trade's parties co-sign", code="wrong_party")
        ruling = self.ruling_for(btc, PayoutKind(btc.payout_kind), btc.payout_buyer_bps or 0)
        self._check(btc, psbt, ruling, signer_role=role)
        if _unsigned_txid(psbt) != _unsigned_txid(btc.payout_psbt):
            raise BtcPolicyError("this is not the pending payout's transaction",
                                 code="psbt_not_pending_payout")
        txid = self._finalize_and_broadcast(btc, [btc.payout_psbt, psbt], ruling, signed_by=role)
        return Submitted(kind="btc_tx", ref=txid, status="broadcast")

    # -- fee bumps (RBF) ------------------------------------------------------------

    def bump_payout(self, session: Session, *, escrow: P2PEscrow,
                    feerate_sat_vb: int | None = None) -> Submitted:
        """Re-build a broadcast, unconfirmed payout with a BIP-125 replacement
        fee, agent-sign it, and keep it for a party to co-sign (the party's
        old signature does not cover the new transaction)."""
        btc = self.btc_of(session, escrow)
        if btc.payout_txid is None or btc.payout_kind is None or btc.payout_fee_sat is None:
            raise EscrowStateError("no payout was broadcast", code="no_payout")
        if btc.spent_txid is not None:
            raise EscrowStateError("the payout is confirmed", code="payout_confirmed")
        kind = PayoutKind(btc.payout_kind)
        if kind is PayoutKind.TIMELOCK_REFUND:
            raise EscrowStateError("the seller bumps a timelock refund", code="not_agent_payout")
        ruling = self.ruling_for(btc, kind, btc.payout_buyer_bps or 0)
        rate = feerate_sat_vb or self.feerate()
        fee = replacement_fee(btc.payout_fee_sat, btc.payout_vsize or 0, rate)
        if fee > self.max_fee_sat:
            raise BtcPolicyError("the replacement fee would exceed the cap",
                                 code="psbt_fee_above_cap", fee_sat=fee)
        built = self.build(btc, ruling, fee_sat=fee)
        decision = ("release" if kind is PayoutKind.RELEASE else "refund"
                    if kind is PayoutKind.REFUND else f"split:{btc.payout_buyer_bps}")
        btc.payout_psbt = self._agent_sign(btc, built.psbt, ruling, decision)
        return Submitted(kind="psbt", ref=built.txid, status="awaiting_party_signature")

    # -- timelock refund and watchtower ---------------------------------------------

    def timelock_matured(self, btc: BtcEscrow) -> bool:
        funding = [d for d in btc.deposits or [] if d.get("spent_by") is None]
        if not funding:
            return False
        newest = max(int(d["block"]) for d in funding)
        return self.adapter.head() + 1 - newest >= btc.csv_blocks

    def timelock_psbt(self, session: Session, *, escrow: P2PEscrow) -> dict[str, Any]:
        btc = self.btc_of(session, escrow)
        ruling = self.ruling_for(btc, PayoutKind.TIMELOCK_REFUND)
        built = self.build(btc, ruling)
        payload = self._payload(btc, built, ruling)
        payload["matured"] = self.timelock_matured(btc)
        payload["csv_blocks"] = btc.csv_blocks
        return payload

    def _check_timelock(self, btc: BtcEscrow, psbt: str) -> Ruling:
        ruling = self.ruling_for(btc, PayoutKind.TIMELOCK_REFUND)
        checked = self._check(btc, psbt, ruling, signer_role=None)
        if not checked.complete:
            raise BtcPolicyError("the PSBT lacks the seller's refund-key signature",
                                 code="psbt_missing_party_signature", role="seller")
        return ruling

    def submit_timelock_refund(self, session: Session, *, escrow: P2PEscrow,
                               psbt: str) -> Submitted:
        """The seller's own signed timelock refund: checked, verified, broadcast
        (the node signs nothing)."""
        btc = self.btc_of(session, escrow)
        ruling = self._check_timelock(btc, psbt)
        if not self.timelock_matured(btc):
            raise EscrowStateError(f"the timelock of {btc.csv_blocks} blocks has not matured",
                                   code="too_early")
        txid = self._finalize_and_broadcast(btc, [psbt], ruling)
        return Submitted(kind="btc_tx", ref=txid, status="broadcast")

    def set_watchtower(self, session: Session, *, escrow: P2PEscrow, psbt: str) -> None:
        btc = self.btc_of(session, escrow)
        self._check_timelock(btc, psbt)
        btc.watchtower_psbt = psbt
        btc.watchtower_txid = None

    def watchtower_pass(self) -> list[str]:
        """Broadcast the stored timelock refunds that matured, for trades
        still funded, unpaid and undisputed. Returns the txids broadcast."""
        done: list[str] = []
        with self.sessions() as session, session.begin():
            rows = session.execute(
                select(BtcEscrow, P2PEscrow, P2POrder)
                .join(P2PEscrow, BtcEscrow.p2p_escrow_id == P2PEscrow.id)
                .join(P2POrder, P2PEscrow.p2p_order_id == P2POrder.id)
                .where(BtcEscrow.watchtower_psbt.is_not(None),
                       BtcEscrow.watchtower_txid.is_(None),
                       P2PEscrow.network == self.network_name,
                       P2POrder.status == TradeStatus.FUNDED.value)
            ).all()
            for btc, _escrow, order in rows:
                if order.paid_at is not None or session.scalar(
                        select(P2PDispute.id).where(P2PDispute.p2p_order_id == order.id)):
                    continue
                if not self.timelock_matured(btc):
                    continue
                try:
                    ruling = self._check_timelock(btc, btc.watchtower_psbt or "")
                    txid = self._finalize_and_broadcast(btc, [btc.watchtower_psbt or ""], ruling)
                except EscrowdError as exc:
                    log.warning("watchtower: cannot broadcast for %s: %s", btc.address,
                                exc.message)
                    continue
                btc.watchtower_txid = txid
                done.append(txid)
        return done


def _unsigned_txid(psbt_b64: str) -> str:
    from wallets.bitcoin.policy import parse_psbt

    try:
        return str(parse_psbt(psbt_b64).tx.txid().hex())
    except WalletError as exc:
        raise _wallet_error(exc) from None
