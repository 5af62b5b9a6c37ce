"""Per-trade escrow accounts and the seller's funding transaction (pure builders).

Layout of one escrow (see README.md):

* a **multisig** account of the token program (SPL Token or Token-2022),
  m = 2 of (buyer, seller, arbitrator);
* an **escrow token account** for the traded mint, owned by the multisig.

Both addresses are derived with ``create_account_with_seed`` from the seller's
key (the base), a seed computed from (cluster genesis hash, trade ref) and the
token program id. So:

* the node recomputes the addresses from values it already has (seller key,
  trade ref, cluster, token program) — nothing to store, nothing to trust from
  the client;
* the seller is the only signer of the funding transaction (no fresh keypairs
  to generate, sign with and throw away; Phantom signs it alone);
* only the base key (the seller) can create accounts at those addresses, and
  ``initialize_multisig2`` is in the same transaction as the account's
  creation, so nobody can front-run and take the multisig.

The seller pays the fees and the rent of both accounts. The escrow token
account's rent comes back to the seller when a payout closes it; the multisig
account cannot be closed by the SPL Token program, so its rent (~0.0034 SOL)
stays locked: that is the cost of an escrow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import (
    CreateAccountWithSeedParams,
    TransferParams,
    create_account_with_seed,
)
from solders.system_program import (
    transfer as system_transfer,
)
from solders.transaction import Transaction
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, WRAPPED_SOL_MINT
from spl.token.instructions import (
    get_associated_token_address,
    initialize_account3,
    initialize_multisig2,
    sync_native,
    transfer_checked,
)
from spl.token.models import (
    InitializeAccount3Params,
    InitializeMultisig2Params,
    SyncNativeParams,
    TransferCheckedParams,
)

from wallets.solana.errors import InvalidEscrowParamsError
from wallets.solana.mint import require_supported_mint
from wallets.solana.network import SolanaNetwork
from wallets.solana.signer import encode_transaction

MULTISIG_LEN = 355
"""Size of an SPL Token / Token-2022 ``Multisig`` account."""
TOKEN_ACCOUNT_LEN = 165
"""Size of a token account without extensions (both token programs)."""
MULTISIG_M = 2
TOKEN_PROGRAMS = frozenset({TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID})
_SEED_DOMAIN = b"escrowd/solana/escrow/v1\x00"


@dataclass(frozen=True, slots=True)
class RentExemption:
    """Rent-exempt minimums in lamports, as the cluster reports them
    (``getMinimumBalanceForRentExemption(355)`` and ``(165)``)."""

    multisig: int
    token_account: int

    @classmethod
    def standard(cls) -> RentExemption:
        """The values of today's clusters (3480 lamports/byte-year, 2-year threshold)."""
        return cls(
            multisig=(128 + MULTISIG_LEN) * 3480 * 2,
            token_account=(128 + TOKEN_ACCOUNT_LEN) * 3480 * 2,
        )


@dataclass(frozen=True, slots=True)
class EscrowParties:
    """The three keys of the 2-of-3 multisig. All three must differ (I1)."""

    buyer: Pubkey
    seller: Pubkey
    arbitrator: Pubkey

    def __post_init__(self) -> None:
        if len({self.buyer, self.seller, self.arbitrator}) != 3:
            raise InvalidEscrowParamsError(
                "buyer, seller and arbitrator must be three different keys",
                code="duplicate_party_key",
            )

    def signers(self) -> tuple[Pubkey, Pubkey, Pubkey]:
        """Signer order stored in the multisig account."""
        return (self.buyer, self.seller, self.arbitrator)


@dataclass(frozen=True, slots=True)
class EscrowAccounts:
    """Everything needed to address one escrow on chain; recomputable with
    :func:`derive_escrow_accounts`."""

    network: SolanaNetwork
    trade_ref: str
    parties: EscrowParties
    mint: Pubkey
    decimals: int
    token_program: Pubkey
    multisig: Pubkey
    escrow_token_account: Pubkey
    multisig_seed: str
    escrow_seed: str

    @property
    def is_native(self) -> bool:
        """True for wrapped SOL (the native mint of the SPL Token program)."""
        return self.mint == WRAPPED_SOL_MINT and self.token_program == TOKEN_PROGRAM_ID

    def associated_token_account(self, wallet: Pubkey) -> Pubkey:
        """``wallet``'s associated token account for this escrow's mint and program."""
        return get_associated_token_address(wallet, self.mint, self.token_program)


def escrow_seeds(network: SolanaNetwork, trade_ref: str) -> tuple[str, str]:
    """The two ``create_account_with_seed`` seeds (multisig, escrow token account).

    32 ASCII characters each (Solana's maximum): a 1-letter role + 31 hex digits of
    SHA-256(domain || genesis hash || trade ref) = 124 bits.
    """
    if not trade_ref:
        raise InvalidEscrowParamsError("trade ref must not be empty", code="empty_trade_ref")
    digest = hashlib.sha256(
        _SEED_DOMAIN + bytes(network.genesis_hash) + trade_ref.encode("utf-8")
    ).hexdigest()
    return "m" + digest[:31], "e" + digest[:31]


def derive_escrow_accounts(
    *,
    network: SolanaNetwork,
    trade_ref: str,
    parties: EscrowParties,
    mint: Pubkey,
    decimals: int,
    token_program: Pubkey = TOKEN_PROGRAM_ID,
) -> EscrowAccounts:
    """Compute the escrow's addresses (no I/O). ``decimals`` is the mint's; check the
    mint first with :func:`wallets.solana.mint.require_supported_mint`."""
    if token_program not in TOKEN_PROGRAMS:
        raise InvalidEscrowParamsError(
            "token program must be SPL Token or Token-2022",
            code="unknown_token_program",
            token_program=str(token_program),
        )
    if mint == WRAPPED_SOL_MINT and token_program != TOKEN_PROGRAM_ID:
        raise InvalidEscrowParamsError(
            "wrapped SOL uses the SPL Token program", code="unknown_token_program"
        )
    if not 0 <= decimals <= 255:
        raise InvalidEscrowParamsError("decimals out of range", code="bad_decimals")
    multisig_seed, escrow_seed = escrow_seeds(network, trade_ref)
    return EscrowAccounts(
        network=network,
        trade_ref=trade_ref,
        parties=parties,
        mint=mint,
        decimals=decimals,
        token_program=token_program,
        multisig=Pubkey.create_with_seed(parties.seller, multisig_seed, token_program),
        escrow_token_account=Pubkey.create_with_seed(parties.seller, escrow_seed, token_program),
        multisig_seed=multisig_seed,
        escrow_seed=escrow_seed,
    )


def escrow_for_mint_account(
    *,
    network: SolanaNetwork,
    trade_ref: str,
    parties: EscrowParties,
    mint: Pubkey,
    mint_account_data: bytes,
    mint_account_owner: Pubkey,
    refuse_freeze_authority: bool = False,
) -> EscrowAccounts:
    """The one path the node should use: check the mint account (as ``getAccountInfo``
    returned it; raises :class:`~wallets.solana.errors.UnsupportedMintError`), then
    derive the escrow with the mint's own token program and decimals."""
    verdict = require_supported_mint(
        mint_account_data, mint_account_owner, refuse_freeze_authority=refuse_freeze_authority
    )
    assert verdict.token_program is not None and verdict.decimals is not None
    return derive_escrow_accounts(
        network=network,
        trade_ref=trade_ref,
        parties=parties,
        mint=mint,
        decimals=verdict.decimals,
        token_program=verdict.token_program,
    )


@dataclass(frozen=True, slots=True)
class FundingTransaction:
    """What the seller's wallet needs: the unsigned transaction (base64) and the addresses."""

    transaction: Transaction
    transaction_base64: str
    escrow: EscrowAccounts
    amount: int
    source_token_account: Pubkey | None
    """The seller's token account debited (``None`` for SOL: lamports come from the wallet)."""
    required_signers: tuple[Pubkey, ...]
    rent_lamports: int
    """Rent the seller deposits: multisig (locked) + escrow token account (refunded on close)."""

    @property
    def multisig(self) -> Pubkey:
        return self.escrow.multisig

    @property
    def escrow_token_account(self) -> Pubkey:
        return self.escrow.escrow_token_account

    def wallet_request(self) -> dict[str, object]:
        """JSON-ready payload for the seller's wallet (Phantom ``signTransaction``)."""
        return {
            "transaction": self.transaction_base64,
            "encoding": "base64",
            "required_signers": [str(k) for k in self.required_signers],
            "multisig": str(self.escrow.multisig),
            "escrow_token_account": str(self.escrow.escrow_token_account),
            "mint": str(self.escrow.mint),
            "token_program": str(self.escrow.token_program),
            "decimals": self.escrow.decimals,
            "amount": self.amount,
            "rent_lamports": self.rent_lamports,
            "recent_blockhash": str(self.transaction.message.recent_blockhash),
        }


def funding_instructions(
    escrow: EscrowAccounts,
    amount: int,
    *,
    rent: RentExemption,
    source_token_account: Pubkey | None = None,
) -> list[Instruction]:
    """The instructions of the funding transaction (see :func:`build_funding_transaction`)."""
    if amount <= 0:
        raise InvalidEscrowParamsError("amount must be positive", code="bad_amount")
    seller = escrow.parties.seller
    program = escrow.token_program
    ixs = [
        create_account_with_seed(
            CreateAccountWithSeedParams(
                from_pubkey=seller,
                to_pubkey=escrow.multisig,
                base=seller,
                seed=escrow.multisig_seed,
                lamports=rent.multisig,
                space=MULTISIG_LEN,
                owner=program,
            )
        ),
        initialize_multisig2(
            InitializeMultisig2Params(
                program_id=program,
                multisig=escrow.multisig,
                m=MULTISIG_M,
                signers=list(escrow.parties.signers()),
            )
        ),
        create_account_with_seed(
            CreateAccountWithSeedParams(
                from_pubkey=seller,
                to_pubkey=escrow.escrow_token_account,
                base=seller,
                seed=escrow.escrow_seed,
                lamports=rent.token_account,
                space=TOKEN_ACCOUNT_LEN,
                owner=program,
            )
        ),
        initialize_account3(
            InitializeAccount3Params(
                program_id=program,
                account=escrow.escrow_token_account,
                mint=escrow.mint,
                owner=escrow.multisig,
            )
        ),
    ]
    if escrow.is_native:
        ixs.append(
            system_transfer(
                TransferParams(
                    from_pubkey=seller, to_pubkey=escrow.escrow_token_account, lamports=amount
                )
            )
        )
        ixs.append(
            sync_native(SyncNativeParams(program_id=program, account=escrow.escrow_token_account))
        )
    else:
        source = source_token_account or escrow.associated_token_account(seller)
        ixs.append(
            transfer_checked(
                TransferCheckedParams(
                    program_id=program,
                    source=source,
                    mint=escrow.mint,
                    dest=escrow.escrow_token_account,
                    owner=seller,
                    amount=amount,
                    decimals=escrow.decimals,
                )
            )
        )
    return ixs


def build_funding_transaction(
    escrow: EscrowAccounts,
    amount: int,
    *,
    recent_blockhash: Hash,
    rent: RentExemption,
    source_token_account: Pubkey | None = None,
) -> FundingTransaction:
    """The seller's funding transaction, unsigned, fee payer = seller.

    One atomic transaction: create + initialize the multisig (m=2), create +
    initialize the escrow token account owned by it, move ``amount`` base units in
    (``transfer_checked`` from ``source_token_account``, default the seller's ATA; for
    wrapped SOL a system transfer + ``sync_native``). The seller is the only signer.
    If the blockhash expires before the seller signs, call again with a fresh one.
    """
    ixs = funding_instructions(escrow, amount, rent=rent, source_token_account=source_token_account)
    message = Message.new_with_blockhash(ixs, escrow.parties.seller, recent_blockhash)
    tx = Transaction.new_unsigned(message)
    source = (
        None
        if escrow.is_native
        else (source_token_account or escrow.associated_token_account(escrow.parties.seller))
    )
    return FundingTransaction(
        transaction=tx,
        transaction_base64=encode_transaction(tx),
        escrow=escrow,
        amount=amount,
        source_token_account=source,
        required_signers=(escrow.parties.seller,),
        rent_lamports=rent.multisig + rent.token_account,
    )
