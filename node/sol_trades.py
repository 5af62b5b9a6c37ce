"""The Solana half of a trade: a 2-of-3 SPL Token multisig escrow per trade,
the seller's funding transaction, payouts collected from partial signatures,
and the I3 policy (``wallets.solana.policy``) for the node's agent key.

How each party action maps on Solana (no program, so no on-chain "paid" or
"disputed" state):

* ``MARK_PAID`` and ``DISPUTE`` are off-chain facts. The party signs a short
  text naming the cluster, the escrow account and the action with their
  wallet's ed25519 key (Phantom ``signMessage``); the node verifies it and
  records it (the I3 policy reads it: a paid trade is not refunded after the
  deadline, a disputed one waits for the ruling).
* ``RELEASE`` (seller), ``CANCEL`` (buyer) and ``RECLAIM`` (seller, after the
  deadline, unpaid) are payouts: the node renders the payout intent as a
  transaction (``SolPayout`` row), the party signs it in their wallet and
  sends back either the partially signed transaction (base64, through
  ``/api/sol/...``) or just their signature (base58, through the seed's
  endpoints, whose ``signature`` field is short; ``expiry`` names the
  rendering). The node checks it (``check_payout_transaction``), co-signs with
  its agent key only if the policy allows (journal: ``node.signing.sign_once``),
  adds the fee payer's signature and submits.
* A ruling (``agent_rule``): the agent signs the ruled payout at once (under the
  journal); the party who receives the larger share co-signs it through
  ``/api/sol/orders/{id}/payout``.
* A human arbitrator (the escrow's arbitrator slot holds a person's wallet,
  ``sol.arbitrator_address``; the agent signs nothing for such an escrow): a
  ruling renders the ruled payout unsigned; the arbitrator fetches it
  (``GET /api/sol/orders/{id}/payout``) and posts their partial signature
  (``POST``, as traders do), then the party who receives the larger share
  co-signs. Cooperative payouts need both parties: release = seller + buyer,
  cancel = buyer + seller; the seller's reclaim = seller + arbitrator. A
  partially signed payout is kept until the last co-signer signs.

Blockhash expiry: a rendering is valid until its ``last_valid_block_height``.
A signature for an expired rendering is refused with 409 ``blockhash_expired``
and a fresh rendering of the same intent (same journal decision) to sign.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from solana.rpc.commitment import Commitment
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction
from spl.token.constants import WRAPPED_SOL_MINT
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session, sessionmaker

from node.chain_trades import SignRequest, Submitted
from node.chains.sol.client import BlockhashExpiredError, SolClient
from node.db.models import (
    CryptoCurrency,
    P2PDispute,
    P2PEscrow,
    P2POrder,
    SolEscrow,
    SolPayout,
    User,
)
from node.domain.escrow import Action, ChainState, EscrowView
from node.errors import EscrowStateError, PermissionDeniedError, SigningError, ValidationError
from node.signing import sign_once, signed_decision
from node.sol_sync import refresh_one, view_of
from wallets.errors import WalletError
from wallets.solana.errors import ActionNotAllowedError, PolicyViolationError
from wallets.solana.escrow import (
    MULTISIG_LEN,
    TOKEN_ACCOUNT_LEN,
    EscrowAccounts,
    EscrowParties,
    RentExemption,
    build_funding_transaction,
    derive_escrow_accounts,
    escrow_for_mint_account,
)
from wallets.solana.network import SolanaNetwork
from wallets.solana.payout import PayoutAction, PayoutIntent, build_payout_transaction
from wallets.solana.policy import EscrowPolicyState, Ruling, require_action_allowed
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    encode_transaction,
    missing_signers,
    require_complete,
    required_signers,
    sign_partially,
    verify_present_signatures,
)
from wallets.solana.txcheck import check_payout_transaction

SOL_DECIMALS = 9
_OFFCHAIN = (Action.MARK_PAID, Action.DISPUTE)
_NO_SIG = Signature.default()


@dataclass(frozen=True)
class SolToken:
    """An SPL token listed as a currency."""

    symbol: str
    name: str
    mint: str
    decimals: int


def wallet_error(exc: WalletError) -> ValidationError | EscrowStateError | SigningError:
    """A ``wallets.solana`` refusal as the node's error (clear 4xx with its code)."""
    if isinstance(exc, PolicyViolationError):
        return SigningError(exc.message, code=exc.code, **exc.fields)
    return ValidationError(exc.message, code=exc.code, **exc.fields)


def fact_message(cluster: str, escrow_token_account: str, action: Action) -> str:
    """The text a party signs for an off-chain fact: one action, one escrow,
    one cluster (a signature cannot be replayed elsewhere)."""
    return f"escrowd:{cluster}:{escrow_token_account}:{action.name.lower()}"


def sign_message_b58(signer: SoftwareSigner, message: str) -> str:
    """What a wallet's ``signMessage`` does (used by the demo and tests)."""
    return str(signer.sign_message(message.encode()))


def _digest(tx: Transaction) -> str:
    return "0x" + hashlib.sha256(bytes(tx.message_data())).hexdigest()


def _action_name(intent_action: PayoutAction, buyer_bps: int | None) -> str:
    if intent_action is PayoutAction.SPLIT:
        return f"split:{buyer_bps}"
    return intent_action.value


class SolTradeChain:
    """``TradeChain`` for one Solana cluster."""

    family = "sol"

    def __init__(
        self,
        *,
        client: SolClient,
        sessions: sessionmaker[Session],
        network: SolanaNetwork,
        agent: SoftwareSigner,
        fee_payer: SoftwareSigner,
        tokens: tuple[SolToken, ...] = (),
        payment_window_s: int = 1800,
        release_window_s: int = 86_400,
        commitment: str = "finalized",
        arbitrator: str | None = None,
    ) -> None:
        self.client = client
        self.sessions = sessions
        self.network = network
        self.cluster = network.name
        self.chain_key = f"sol:{network.name}"
        self._agent = agent
        self._fee_payer = fee_payer
        self.tokens = tokens
        self.payment_window_s = payment_window_s
        self.release_window_s = release_window_s
        self.commitment = Commitment(commitment)
        # a human arbitrator's wallet for new escrows (None: the agent arbitrates)
        self.default_arbitrator = arbitrator

    @property
    def agent_address(self) -> str:
        return str(self._agent.pubkey())

    @property
    def fee_payer_address(self) -> str:
        return str(self._fee_payer.pubkey())

    # -- currencies ----------------------------------------------------------

    def currencies(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"name": "Solana", "symbol": "SOL", "network": self.cluster,
             "decimals": SOL_DECIMALS, "contract_address": None}
        ]
        for t in self.tokens:
            out.append({"name": t.name, "symbol": t.symbol, "network": self.cluster,
                        "decimals": t.decimals, "contract_address": t.mint})
        return out

    def validate_address(self, address: str, *, field: str) -> str:
        """A wallet's public key: base58, 32 bytes, on the ed25519 curve (it
        must be able to sign; a program-derived address cannot)."""
        try:
            key = Pubkey.from_string(address)
        except (ValueError, TypeError):
            raise ValidationError(f"{field} is not a Solana address (base58 public key)",
                                  field=field) from None
        if str(key) != address or not key.is_on_curve():
            raise ValidationError(f"{field} is not a wallet's public key", field=field)
        return address

    # -- opening -------------------------------------------------------------

    def open_escrow(
        self,
        session: Session,
        *,
        trade: P2POrder,
        currency: CryptoCurrency,
        arbitrator_address: str | None,
        now: datetime,
    ) -> P2PEscrow:
        assert trade.seller_address and trade.buyer_address
        seller = self.validate_address(trade.seller_address, field="seller_address")
        buyer = self.validate_address(trade.buyer_address, field="buyer_address")
        arbitrator = arbitrator_address or self.default_arbitrator or self.agent_address
        if len({seller, buyer, arbitrator}) != 3:
            raise ValidationError("seller, buyer and arbitrator keys must all differ",
                                  field="buyer_address")
        mint = Pubkey.from_string(currency.contract_address or str(WRAPPED_SOL_MINT))
        acct = self.client.account(mint, Commitment("confirmed"))
        if acct is None:
            raise ValidationError(f"mint {mint} does not exist on {self.cluster}",
                                  code="mint_not_found")
        ref = secrets.token_hex(32)
        parties = EscrowParties(buyer=Pubkey.from_string(buyer), seller=Pubkey.from_string(seller),
                                arbitrator=Pubkey.from_string(arbitrator))
        try:
            accounts = escrow_for_mint_account(
                network=self.network, trade_ref=ref, parties=parties, mint=mint,
                mint_account_data=acct.data, mint_account_owner=acct.owner,
            )
        except WalletError as exc:
            raise wallet_error(exc) from exc
        deadline = int(now.timestamp()) + self.payment_window_s + self.release_window_s
        escrow = P2PEscrow(
            p2p_order_id=trade.id,
            chain="sol",
            network=self.cluster,
            contract_address=str(accounts.multisig),
            ref=ref,
            escrow_key=str(accounts.escrow_token_account),
            token_address=str(mint),
            amount=trade.amount,
            seller_address=seller,
            buyer_address=buyer,
            arbitrator_address=arbitrator,
            fee_bps=0,
            payment_window_s=self.payment_window_s,
            deadline=deadline,
            payment_deadline=deadline,
            status="awaiting_funding",
        )
        session.add(escrow)
        session.flush()
        session.add(SolEscrow(
            p2p_escrow_id=escrow.id,
            chain=self.chain_key,
            genesis_hash=str(self.network.genesis_hash),
            trade_ref=ref,
            mint=str(mint),
            decimals=accounts.decimals,
            token_program=str(accounts.token_program),
            multisig=str(accounts.multisig),
            escrow_token_account=str(accounts.escrow_token_account),
            multisig_seed=accounts.multisig_seed,
            escrow_seed=accounts.escrow_seed,
            observed_amount=0,
            observed_exists=False,
        ))
        session.flush()
        return escrow

    def _sol(self, session: Session, escrow: P2PEscrow) -> SolEscrow:
        sol = session.scalar(select(SolEscrow).where(SolEscrow.p2p_escrow_id == escrow.id))
        if sol is None:
            raise EscrowStateError("not a Solana escrow", code="not_sol_escrow")
        return sol

    def accounts_of(self, sol: SolEscrow, escrow: P2PEscrow) -> EscrowAccounts:
        """The escrow's addresses, recomputed from the stored seeds' inputs."""
        accounts = derive_escrow_accounts(
            network=self.network,
            trade_ref=sol.trade_ref,
            parties=EscrowParties(
                buyer=Pubkey.from_string(escrow.buyer_address),
                seller=Pubkey.from_string(escrow.seller_address),
                arbitrator=Pubkey.from_string(escrow.arbitrator_address),
            ),
            mint=Pubkey.from_string(sol.mint),
            decimals=sol.decimals,
            token_program=Pubkey.from_string(sol.token_program),
        )
        if str(accounts.escrow_token_account) != sol.escrow_token_account:
            raise EscrowStateError("stored escrow does not match its derivation "
                                   "(another cluster?)", code="escrow_mismatch")
        return accounts

    def funding_instructions(self, escrow: P2PEscrow, currency: CryptoCurrency) -> dict[str, Any]:
        """The seller's funding transaction (unsigned, base64, fee payer = the
        seller, the only signer) at a fresh blockhash, for their own wallet."""
        session = object_session(escrow)
        assert session is not None
        sol = self._sol(session, escrow)
        accounts = self.accounts_of(sol, escrow)
        blockhash, last_valid = self.client.latest_blockhash(Commitment("confirmed"))
        rent = RentExemption(multisig=self.client.rent_exemption(MULTISIG_LEN),
                             token_account=self.client.rent_exemption(TOKEN_ACCOUNT_LEN))
        funding = build_funding_transaction(accounts, escrow.amount, recent_blockhash=blockhash,
                                            rent=rent)
        req = funding.wallet_request()
        req["amount"] = str(escrow.amount)
        return {
            "chain": "sol",
            "cluster": self.cluster,
            "escrow_id": escrow.escrow_key,
            "currency": currency.symbol,
            "deadline": escrow.deadline,
            "last_valid_block_height": last_valid,
            **req,
            "note": "sign this transaction in the seller's own wallet and send it "
            "(Phantom signAndSendTransaction); if its blockhash expires, GET "
            f"/api/p2p-crypto/orders/{escrow.p2p_order_id}/funding for a fresh one. "
            f"The trade shows funded once the deposit is {self.commitment}.",
        }

    # -- reading the escrow --------------------------------------------------

    def escrow_view(self, escrow: P2PEscrow) -> EscrowView:
        """The committed fold (what the watcher saw at the commitment) plus the
        signed off-chain facts."""
        session = object_session(escrow)
        assert session is not None
        return view_of(session, self._sol(session, escrow), escrow).view

    # -- payouts -------------------------------------------------------------

    def _intent(self, sol: SolEscrow, escrow: P2PEscrow, action: PayoutAction,
                cosigners: tuple[str, str], buyer_bps: int | None = None) -> PayoutIntent:
        # The escrow account's whole balance at the commitment: a surplus someone
        # sent follows the payout (the account must be empty to be closed).
        return PayoutIntent(
            escrow=self.accounts_of(sol, escrow),
            action=action,
            amount=max(escrow.amount, sol.observed_amount),
            signers=(Pubkey.from_string(cosigners[0]), Pubkey.from_string(cosigners[1])),
            fee_payer=self._fee_payer.pubkey(),
            buyer_bps=buyer_bps,
        )

    def _intent_of(self, sol: SolEscrow, escrow: P2PEscrow, payout: SolPayout) -> PayoutIntent:
        a, b = payout.cosigners.split(",")
        return self._intent(sol, escrow, PayoutAction(payout.action), (a, b), payout.buyer_bps)

    def human_arbitrated(self, escrow: P2PEscrow) -> bool:
        """The arbitrator slot holds a person's wallet, not the node's agent."""
        return escrow.arbitrator_address != self.agent_address

    def _party_intent(self, sol: SolEscrow, escrow: P2PEscrow, action: Action) -> PayoutIntent:
        if self.human_arbitrated(escrow) and action in (Action.RELEASE, Action.CANCEL):
            # no agent to co-sign: the other party does (the arbitrator rules disputes)
            return self._intent(
                sol, escrow,
                PayoutAction.RELEASE if action is Action.RELEASE else PayoutAction.REFUND,
                (escrow.seller_address, escrow.buyer_address) if action is Action.RELEASE
                else (escrow.buyer_address, escrow.seller_address))
        if action is Action.RELEASE:
            return self._intent(sol, escrow, PayoutAction.RELEASE,
                                (escrow.seller_address, escrow.arbitrator_address))
        if action is Action.CANCEL:
            return self._intent(sol, escrow, PayoutAction.REFUND,
                                (escrow.buyer_address, escrow.arbitrator_address))
        if action is Action.RECLAIM:
            return self._intent(sol, escrow, PayoutAction.REFUND,
                                (escrow.seller_address, escrow.arbitrator_address))
        raise ValidationError(f"{action.name.lower()} is not a payout on Solana",
                              code="not_supported_on_sol")

    def _build(self, intent: PayoutIntent) -> tuple[Transaction, str, int]:
        """The intent rendered at the latest blockhash: (tx, blockhash, last valid height)."""
        blockhash, last_valid = self.client.latest_blockhash(Commitment("confirmed"))
        return build_payout_transaction(intent, recent_blockhash=blockhash), str(blockhash), \
            last_valid

    def _new_payout(self, session: Session, sol: SolEscrow, intent: PayoutIntent,
                    tx: Transaction, blockhash: str, last_valid: int) -> SolPayout:
        payout = SolPayout(
            sol_escrow_id=sol.id,
            action=intent.action.value,
            buyer_bps=intent.buyer_bps,
            cosigners=",".join(str(k) for k in intent.signers),
            blockhash=blockhash,
            last_valid_block_height=last_valid,
            transaction=encode_transaction(tx),
            status="collecting",
        )
        session.add(payout)
        session.flush()
        return payout

    def _render(self, session: Session, sol: SolEscrow, intent: PayoutIntent) -> SolPayout:
        tx, blockhash, last_valid = self._build(intent)
        return self._new_payout(session, sol, intent, tx, blockhash, last_valid)

    def _expired(self, payout: SolPayout) -> bool:
        return self.client.block_height(Commitment("confirmed")) > payout.last_valid_block_height

    def _valid_rendering(self, session: Session, sol: SolEscrow,
                         intent: PayoutIntent) -> SolPayout | None:
        """The newest collecting rendering of ``intent`` whose blockhash is still
        valid (read only)."""
        payout = session.scalar(
            select(SolPayout)
            .where(SolPayout.sol_escrow_id == sol.id, SolPayout.status == "collecting",
                   SolPayout.action == intent.action.value,
                   SolPayout.cosigners == ",".join(str(k) for k in intent.signers))
            .order_by(SolPayout.id.desc())
            .limit(1)
        )
        if payout is None or payout.buyer_bps != intent.buyer_bps or self._expired(payout):
            return None
        return payout

    def _current_rendering(self, session: Session, sol: SolEscrow,
                           intent: PayoutIntent) -> SolPayout:
        """The valid collecting rendering of ``intent``, else a new one."""
        return self._valid_rendering(session, sol, intent) or self._render(session, sol, intent)

    def payout_request(self, payout: SolPayout) -> dict[str, Any]:
        tx = decode_transaction(payout.transaction)
        return {
            "kind": "transaction",
            "payout_id": payout.id,
            "action": payout.action,
            "buyer_bps": payout.buyer_bps,
            "transaction": payout.transaction,
            "encoding": "base64",
            "required_signers": [str(k) for k in required_signers(tx)],
            "missing_signers": [str(k) for k in missing_signers(tx)],
            "recent_blockhash": payout.blockhash,
            "last_valid_block_height": payout.last_valid_block_height,
            "status": payout.status,
        }

    def _policy_state(self, session: Session, sol: SolEscrow, escrow: P2PEscrow, *,
                      confirmed_release: bool = False, buyer_cancelled: bool = False,
                      ruling: Ruling | None = None) -> EscrowPolicyState:
        view = view_of(session, sol, escrow).view
        signed = signed_decision(session, chain=self.chain_key,
                                 escrow_key=self._journal_escrow(sol))
        signed_action: PayoutAction | None = None
        signed_bps: int | None = None
        if signed is not None:
            name, _, bps = signed.partition(":")
            signed_action = PayoutAction(name)
            signed_bps = int(bps) if bps else None
        if ruling is None:
            d = session.scalar(
                select(P2PDispute)
                .where(P2PDispute.p2p_order_id == escrow.p2p_order_id,
                       P2PDispute.status == "resolved")
                .order_by(P2PDispute.id.desc()).limit(1)
            )
            if d is not None and d.buyer_bps is not None:
                ruling = _ruling(d.buyer_bps)
        open_dispute = session.scalar(
            select(P2PDispute.id).where(P2PDispute.p2p_order_id == escrow.p2p_order_id,
                                        P2PDispute.status == "open").limit(1)
        )
        return EscrowPolicyState(
            funded=view.state in (ChainState.FUNDED, ChainState.PAID, ChainState.DISPUTED),
            deadline=escrow.deadline,
            dispute_open=open_dispute is not None or sol.dispute_signature is not None,
            buyer_marked_paid=sol.buyer_paid_signature is not None,
            seller_confirmed_release=confirmed_release,
            buyer_cancelled=buyer_cancelled,
            ruling=ruling,
            paid_out=view.state.final,
            signed_action=signed_action,
            signed_buyer_bps=signed_bps,
        )

    def _journal_escrow(self, sol: SolEscrow) -> str:
        # intent.journal_key() without its ":<action>" suffix: the journal keys
        # the escrow and records the action as the decision, so a second,
        # different action on the same escrow conflicts (I5).
        return f"solana:{sol.genesis_hash}:{sol.escrow_token_account}"

    def _agent_sign(self, sol: SolEscrow, intent: PayoutIntent, tx: Transaction,
                    state: EscrowPolicyState) -> Transaction:
        """Policy, transaction check, journal (its own committed transaction:
        call this before writing anything in the request's session, SQLite has
        one writer), then the agent's signature added to ``tx``."""
        try:
            require_action_allowed(state, intent, int(datetime.now(UTC).timestamp()))
            check_payout_transaction(tx, intent, self._agent.pubkey())
            verify_present_signatures(tx)
        except WalletError as exc:
            raise wallet_error(exc) from exc
        message = bytes(tx.message_data())
        entry = sign_once(
            self.sessions,
            chain=self.chain_key,
            escrow_key=self._journal_escrow(sol),
            decision=_action_name(intent.action, intent.buyer_bps),
            payload_hash=_digest(tx),
            sign=lambda: str(self._agent.sign_message(message)),
        )
        keys = required_signers(tx)
        sigs = list(tx.signatures)
        sigs[keys.index(self._agent.pubkey())] = Signature.from_string(entry.signature)
        return Transaction.populate(tx.message, sigs)

    def _submit(self, payout: SolPayout, tx: Transaction) -> Submitted:
        """Fee payer signs last; complete; broadcast."""
        tx = sign_partially(tx, self._fee_payer)
        try:
            require_complete(tx)
        except WalletError as exc:
            raise wallet_error(exc) from exc
        payout.transaction = encode_transaction(tx)
        txid = str(tx.signatures[0])
        try:
            # idempotent: a transaction the chain already has is not sent again
            if self.client.statuses([txid])[0] is None:
                txid = self.client.send(bytes(tx), preflight_commitment=Commitment("confirmed"))
        except BlockhashExpiredError:
            self._expire_and_raise(payout)
        payout.status = "submitted"
        payout.tx_signature = txid
        return Submitted(kind="sol_transaction", ref=txid, status="submitted")

    def _expire_and_raise(self, payout: SolPayout) -> None:
        """The rendering's blockhash expired: 409 ``blockhash_expired``. Asking
        again (the action without a signature, or GET /api/sol/orders/{id}/payout)
        renders the same intent at a fresh blockhash (the agent re-signs it under
        the same journal decision when it had signed) to be signed again."""
        raise EscrowStateError(
            "the transaction's blockhash expired before it was complete: ask for the "
            "rebuilt transaction (same payout, fresh blockhash) and sign it again",
            code="blockhash_expired",
            payout_id=payout.id,
            last_valid_block_height=payout.last_valid_block_height,
        )

    def sign_request(self, escrow: P2PEscrow, action: Action, *, buyer_bps: int = 0) -> SignRequest:  # noqa: ARG002
        session = object_session(escrow)
        assert session is not None
        sol = self._sol(session, escrow)
        if action in _OFFCHAIN:
            msg = fact_message(self.cluster, sol.escrow_token_account, action)
            return SignRequest(
                action=action,
                payload={"kind": "message", "message": msg, "encoding": "utf-8",
                         "note": "sign this text with your wallet (signMessage) and send "
                         "the base58 signature"},
                digest="0x" + hashlib.sha256(msg.encode()).hexdigest(),
                expiry=escrow.deadline,
                nonce=0,
            )
        intent = self._party_intent(sol, escrow, action)
        self._precheck(session, sol, escrow, action, intent)
        payout = self._current_rendering(session, sol, intent)
        tx = decode_transaction(payout.transaction)
        return SignRequest(action=action, payload=self.payout_request(payout),
                           digest=_digest(tx), expiry=payout.last_valid_block_height,
                           nonce=payout.id)

    def _precheck(self, session: Session, sol: SolEscrow, escrow: P2PEscrow, action: Action,
                  intent: PayoutIntent) -> None:
        """Would the agent co-sign once the party has signed? Say no before they sign."""
        if self.human_arbitrated(escrow):
            return  # the agent signs nothing here: the co-signers decide
        state = self._policy_state(session, sol, escrow,
                                   confirmed_release=action is Action.RELEASE,
                                   buyer_cancelled=action is Action.CANCEL)
        try:
            require_action_allowed(state, intent, int(datetime.now(UTC).timestamp()))
        except ActionNotAllowedError as exc:
            raise wallet_error(exc) from exc

    def submit_signed(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        action: Action,
        buyer_bps: int,  # noqa: ARG002
        expiry: int,
        signatures: list[str],
        requested_by: User,
    ) -> Submitted:
        if len(signatures) != 1:
            raise ValidationError("exactly one signature or transaction", field="signatures")
        sol = self._sol(session, escrow)
        party = self._party_key(escrow, requested_by)
        if action in _OFFCHAIN:
            return self._record_fact(session, sol, escrow, action, party, signatures[0])
        intent = self._party_intent(sol, escrow, action)
        payout = self._find_rendering(session, sol, intent, expiry, signatures[0])
        return self.submit_payout(session, escrow=escrow, payout=payout,
                                  signed=signatures[0], requested_by=requested_by)

    def _party_key(self, escrow: P2PEscrow, user: User) -> Pubkey:
        order = escrow.order
        if user.id == order.seller_id:
            return Pubkey.from_string(escrow.seller_address)
        if user.id == order.buyer_id:
            return Pubkey.from_string(escrow.buyer_address)
        if user.role == "arbitrator" and self.human_arbitrated(escrow):
            # the arbitrator's wallet: only its key's signature verifies
            return Pubkey.from_string(escrow.arbitrator_address)
        raise PermissionDeniedError("only the trade's parties sign for it", code="wrong_party")

    def _record_fact(self, session: Session, sol: SolEscrow, escrow: P2PEscrow, action: Action,
                     party: Pubkey, signature: str) -> Submitted:
        msg = fact_message(self.cluster, sol.escrow_token_account, action).encode()
        try:
            sig = Signature.from_string(signature)
        except ValueError:
            raise ValidationError("a signature is 64 bytes in base58",
                                  field="signature") from None
        if not sig.verify(party, msg):
            raise SigningError("the signature is not the party's over the message",
                               code="bad_signature")
        now = datetime.now(UTC)
        if action is Action.MARK_PAID:
            sol.buyer_paid_signature = sol.buyer_paid_signature or signature
            sol.buyer_paid_at = sol.buyer_paid_at or now
        else:
            sol.dispute_signature = sol.dispute_signature or signature
            sol.disputed_at = sol.disputed_at or now
        session.flush()
        refresh_one(session, sol)
        return Submitted(kind="signed_message", ref=escrow.escrow_key, status="recorded")

    def _find_rendering(self, session: Session, sol: SolEscrow, intent: PayoutIntent,
                        expiry: int, signed: str) -> SolPayout:
        q = select(SolPayout).where(SolPayout.sol_escrow_id == sol.id,
                                    SolPayout.action == intent.action.value,
                                    SolPayout.cosigners == ",".join(str(k) for k in intent.signers))
        if len(signed) > 100:  # a whole transaction: find its rendering by blockhash
            try:
                tx = decode_transaction(signed)
            except WalletError as exc:
                raise wallet_error(exc) from exc
            q = q.where(SolPayout.blockhash == str(tx.message.recent_blockhash))
        else:
            q = q.where(SolPayout.last_valid_block_height == expiry)
        payout = session.scalar(q.order_by(SolPayout.id.desc()).limit(1))
        if payout is None:
            raise ValidationError("no payout transaction of this escrow matches; ask for one "
                                  "first (call without a signature)", code="unknown_payout")
        return payout

    def pending_payout(self, session: Session, escrow: P2PEscrow) -> SolPayout | None:
        """The newest payout still collecting signatures, re-rendered (and
        re-signed by the agent if it had signed) when its blockhash expired."""
        sol = self._sol(session, escrow)
        payout = session.scalar(
            select(SolPayout).where(SolPayout.sol_escrow_id == sol.id,
                                    SolPayout.status.in_(("collecting", "submitted")))
            .order_by(SolPayout.id.desc()).limit(1)
        )
        if payout is None:
            return None
        if payout.status == "submitted":
            # sent, but dropped before landing (its blockhash expired unseen):
            # the same payout is due again, at a fresh blockhash
            assert payout.tx_signature is not None
            landed = self.client.statuses([payout.tx_signature])[0] is not None
            if landed or not self._expired(payout):
                return None
        elif not self._expired(payout):
            return payout
        old = decode_transaction(payout.transaction)
        had_agent = (self._agent.pubkey() in required_signers(old)
                     and self._agent.pubkey() not in missing_signers(old))
        intent = self._intent_of(sol, escrow, payout)
        tx, blockhash, last_valid = self._build(intent)
        if had_agent:
            tx = self._agent_sign(sol, intent, tx, self._policy_state(session, sol, escrow))
        payout.status = "expired"
        return self._new_payout(session, sol, intent, tx, blockhash, last_valid)

    def submit_payout(self, session: Session, *, escrow: P2PEscrow, payout: SolPayout,
                      signed: str, requested_by: User) -> Submitted:
        """A party's signature (base58) or partially signed transaction (base64)
        for ``payout``: merged, checked, co-signed by the agent if the policy
        allows, completed by the fee payer and sent."""
        sol = self._sol(session, escrow)
        party = self._party_key(escrow, requested_by)
        if payout.status != "collecting":
            raise EscrowStateError(f"this payout transaction is {payout.status}",
                                   code=f"payout_{payout.status}", payout_id=payout.id)
        stored = decode_transaction(payout.transaction)
        keys = required_signers(stored)
        if party not in keys:
            raise PermissionDeniedError("you are not a signer of this payout",
                                        code="not_a_signer")
        if self._expired(payout):
            self._expire_and_raise(payout)
        message = bytes(stored.message_data())
        if len(signed) > 100:
            try:
                theirs = decode_transaction(signed)
            except WalletError as exc:
                raise wallet_error(exc) from exc
            if bytes(theirs.message_data()) != message:
                if theirs.message.recent_blockhash != stored.message.recent_blockhash:
                    raise EscrowStateError("this transaction is an older rendering",
                                           code="stale_transaction")
                raise SigningError("the transaction differs from the payout the node built",
                                   code="policy_instruction_mismatch")
            sig = theirs.signatures[keys.index(party)]
        else:
            try:
                sig = Signature.from_string(signed)
            except ValueError:
                raise ValidationError("a signature is 64 bytes in base58",
                                      field="signature") from None
        if sig == _NO_SIG or not sig.verify(party, message):
            raise SigningError("your signature is missing or does not match the transaction",
                               code="bad_signature")
        sigs = list(stored.signatures)
        sigs[keys.index(party)] = sig
        tx = Transaction.populate(stored.message, sigs)
        action = PayoutAction(payout.action)
        if self._agent.pubkey() in missing_signers(tx):
            seller_signed = action is PayoutAction.RELEASE and party == Pubkey.from_string(
                escrow.seller_address)
            buyer_cancelled = (action is PayoutAction.REFUND
                               and party == Pubkey.from_string(escrow.buyer_address))
            state = self._policy_state(session, sol, escrow, confirmed_release=seller_signed,
                                       buyer_cancelled=buyer_cancelled)
            tx = self._agent_sign(sol, self._intent_of(sol, escrow, payout), tx, state)
        waiting = [k for k in missing_signers(tx) if k != self._fee_payer.pubkey()]
        if waiting:
            # a co-signer other than the agent has yet to sign (human arbitrator,
            # or the other party): keep the partially signed payout for them
            payout.transaction = encode_transaction(tx)
            return Submitted(kind="sol_payout", ref=str(payout.id),
                             status="awaiting_party_signature")
        return self._submit(payout, tx)

    def agent_rule(
        self,
        session: Session,
        *,
        escrow: P2PEscrow,
        buyer_bps: int,
        requested_by: User,  # noqa: ARG002
    ) -> Submitted:
        """The agent signs the ruled payout now (journal); the party receiving
        the larger share co-signs it (``/api/sol/orders/{id}/payout``)."""
        sol = self._sol(session, escrow)
        ruling = _ruling(buyer_bps)
        party = escrow.buyer_address if buyer_bps >= 5000 else escrow.seller_address
        if self.human_arbitrated(escrow):
            return self._render_ruling(session, sol, escrow, ruling, party)
        intent = self._intent(sol, escrow, ruling.action, (party, self.agent_address),
                              ruling.buyer_bps)
        state = self._policy_state(session, sol, escrow, ruling=ruling)
        try:
            require_action_allowed(state, intent, int(datetime.now(UTC).timestamp()))
        except WalletError as exc:
            raise wallet_error(exc) from exc
        payout = self._valid_rendering(session, sol, intent)
        if payout is None:
            tx, blockhash, last_valid = self._build(intent)
            tx = self._agent_sign(sol, intent, tx, state)
            payout = self._new_payout(session, sol, intent, tx, blockhash, last_valid)
        else:
            tx = self._agent_sign(sol, intent, decode_transaction(payout.transaction), state)
            payout.transaction = encode_transaction(tx)
        return Submitted(kind="sol_payout", ref=str(payout.id), status="awaiting_party_signature")


    def _render_ruling(self, session: Session, sol: SolEscrow, escrow: P2PEscrow,
                       ruling: Ruling, party: str) -> Submitted:
        """A human arbitrator's ruling: the ruled payout, unsigned, co-signed by
        the arbitrator's own wallet and the party receiving the larger share
        (``/api/sol/orders/{id}/payout``). The agent signs nothing."""
        intent = self._intent(sol, escrow, ruling.action, (escrow.arbitrator_address, party),
                              ruling.buyer_bps)
        payout = self._current_rendering(session, sol, intent)
        return Submitted(kind="sol_payout", ref=str(payout.id),
                         status="awaiting_arbitrator_signature")


def _ruling(buyer_bps: int) -> Ruling:
    if buyer_bps >= 10_000:
        return Ruling(PayoutAction.RELEASE)
    if buyer_bps <= 0:
        return Ruling(PayoutAction.REFUND)
    return Ruling(PayoutAction.SPLIT, buyer_bps)


__all__ = ["SolToken", "SolTradeChain", "fact_message", "sign_message_b58"]
