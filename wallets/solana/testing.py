"""A LiteSVM ledger for tests and dev tooling (never imported by the other modules).

LiteSVM (``solders.litesvm``) is the real Solana runtime in process, with SPL
Token, Token-2022 and the Associated Token Account programs loaded. This wraps
the set-up chores the escrow tests share: funded wallets, mints (created by
real transactions), token accounts, balances, and sending with a readable error.

LiteSVM is not thread-safe: use one ledger per test, from one thread.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from solders.account import Account
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, WRAPPED_SOL_MINT
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    initialize_transfer_fee_config,
    mint_to_checked,
)
from spl.token.models import (
    InitializeMint2Params,
    InitializeTransferFeeConfigParams,
    MintToCheckedParams,
)

from wallets.solana.escrow import (
    EscrowAccounts,
    EscrowParties,
    RentExemption,
    build_funding_transaction,
    derive_escrow_accounts,
)
from wallets.solana.mint import MINT_LEN, TRANSFER_FEE_CONFIG_LEN
from wallets.solana.network import SolanaNetwork, local_network
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    require_complete,
    sign_partially,
)

SOL = 1_000_000_000


class LedgerTransactionError(Exception):
    """LiteSVM refused a transaction; ``err`` is the runtime's error, ``logs`` its logs."""

    def __init__(self, err: object, logs: list[str]) -> None:
        super().__init__(f"{err}\n" + "\n".join(logs))
        self.err = err
        self.logs = logs


@dataclass(frozen=True)
class MintExtensionInit:
    """A Token-2022 mint extension: its value size and its initialize instruction
    (``build(mint, authority)``)."""

    value_len: int
    build: Callable[[Pubkey, Pubkey], Instruction]


def _ext_ix(mint: Pubkey, data: bytes) -> Instruction:
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def transfer_fee_extension(bps: int, maximum_fee: int = 10**12) -> MintExtensionInit:
    return MintExtensionInit(
        TRANSFER_FEE_CONFIG_LEN,
        lambda mint, auth: initialize_transfer_fee_config(
            InitializeTransferFeeConfigParams(
                program_id=TOKEN_2022_PROGRAM_ID,
                mint=mint,
                transfer_fee_config_authority=auth,
                withdraw_withheld_authority=auth,
                transfer_fee_basis_points=bps,
                maximum_fee=maximum_fee,
            )
        ),
    )


def permanent_delegate_extension(delegate: Pubkey) -> MintExtensionInit:
    # TokenInstruction::InitializePermanentDelegate = 35, data: delegate pubkey
    return MintExtensionInit(32, lambda mint, _auth: _ext_ix(mint, bytes([35]) + bytes(delegate)))


def transfer_hook_extension(hook_program: Pubkey) -> MintExtensionInit:
    # TokenInstruction::TransferHookExtension = 36, Initialize = 0: authority, program id
    return MintExtensionInit(
        64, lambda mint, auth: _ext_ix(mint, bytes([36, 0]) + bytes(auth) + bytes(hook_program))
    )


def metadata_pointer_extension() -> MintExtensionInit:
    # TokenInstruction::MetadataPointerExtension = 39, Initialize = 0: authority, address
    return MintExtensionInit(
        64, lambda mint, auth: _ext_ix(mint, bytes([39, 0]) + bytes(auth) + bytes(mint))
    )


@dataclass
class Ledger:
    svm: LiteSVM
    network: SolanaNetwork

    @classmethod
    def new(cls) -> Ledger:
        svm = LiteSVM()
        # The native mint is missing in LiteSVM by default (FACTS.md): set a real one.
        svm.set_account(
            WRAPPED_SOL_MINT,
            Account(
                lamports=svm.minimum_balance_for_rent_exemption(MINT_LEN),
                data=_mint_bytes(decimals=9),
                owner=TOKEN_PROGRAM_ID,
                executable=False,
            ),
        )
        return cls(svm, local_network(Hash.hash(b"escrowd litesvm test ledger")))

    # -- chain reads ---------------------------------------------------------
    def blockhash(self) -> Hash:
        return self.svm.latest_blockhash()

    def rent(self) -> RentExemption:
        return RentExemption(
            multisig=self.svm.minimum_balance_for_rent_exemption(355),
            token_account=self.svm.minimum_balance_for_rent_exemption(165),
        )

    def lamports(self, address: Pubkey) -> int:
        return self.svm.get_balance(address) or 0

    def account_data(self, address: Pubkey) -> bytes | None:
        account = self.svm.get_account(address)
        return None if account is None else bytes(account.data)

    def account_owner(self, address: Pubkey) -> Pubkey | None:
        account = self.svm.get_account(address)
        return None if account is None else account.owner

    def token_balance(self, token_account: Pubkey) -> int:
        """Token amount of an account (0 if it does not exist)."""
        data = self.account_data(token_account)
        if data is None or len(data) < 72:
            return 0
        return int.from_bytes(data[64:72], "little")

    # -- writes ----------------------------------------------------------------
    def wallet(self, sol: int = 10) -> Keypair:
        kp = Keypair()
        self.svm.airdrop(kp.pubkey(), sol * SOL)
        return kp

    def send(self, tx: Transaction) -> object:
        """Send; raise :class:`LedgerTransactionError` if the runtime refuses it."""
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            raise LedgerTransactionError(result.err(), list(result.meta().logs()))
        return result

    def send_ixs(self, ixs: list[Instruction], payer: Keypair, *extra: Keypair) -> object:
        msg = Message.new_with_blockhash(ixs, payer.pubkey(), self.blockhash())
        return self.send(Transaction([payer, *extra], msg, self.blockhash()))

    def create_mint(
        self,
        authority: Keypair,
        decimals: int,
        *,
        program: Pubkey = TOKEN_PROGRAM_ID,
        extensions: Sequence[MintExtensionInit] = (),
        freeze_authority: Pubkey | None = None,
    ) -> Pubkey:
        """A mint created by real transactions; ``extensions`` (Token-2022 only) are
        initialized before ``InitializeMint2``, as the program requires."""
        mint = Keypair()
        space = MINT_LEN
        if extensions:
            space = 165 + 1 + sum(4 + ext.value_len for ext in extensions)
        ixs = [
            create_account(
                CreateAccountParams(
                    from_pubkey=authority.pubkey(),
                    to_pubkey=mint.pubkey(),
                    lamports=self.svm.minimum_balance_for_rent_exemption(space),
                    space=space,
                    owner=program,
                )
            ),
            *(ext.build(mint.pubkey(), authority.pubkey()) for ext in extensions),
            initialize_mint2(
                InitializeMint2Params(
                    program_id=program,
                    mint=mint.pubkey(),
                    decimals=decimals,
                    mint_authority=authority.pubkey(),
                    freeze_authority=freeze_authority,
                )
            ),
        ]
        self.send_ixs(ixs, authority, mint)
        return mint.pubkey()

    def mint_to_owner(
        self,
        authority: Keypair,
        mint: Pubkey,
        decimals: int,
        owner: Pubkey,
        amount: int,
        *,
        program: Pubkey = TOKEN_PROGRAM_ID,
    ) -> Pubkey:
        """Create ``owner``'s ATA if needed and mint ``amount`` into it; return the ATA."""
        ata = get_associated_token_address(owner, mint, program)
        self.send_ixs(
            [
                create_idempotent_associated_token_account(
                    authority.pubkey(), owner, mint, program
                ),
                mint_to_checked(
                    MintToCheckedParams(
                        program_id=program,
                        mint=mint,
                        dest=ata,
                        mint_authority=authority.pubkey(),
                        amount=amount,
                        decimals=decimals,
                    )
                ),
            ],
            authority,
        )
        return ata


@dataclass
class EscrowWorld:
    """Three funded wallets, a mint, the seller's tokens and the (not yet funded) escrow."""

    ledger: Ledger
    buyer: Keypair
    seller: Keypair
    arbitrator: Keypair
    escrow: EscrowAccounts
    seller_token_account: Pubkey | None

    @classmethod
    def new(
        cls,
        ledger: Ledger,
        *,
        decimals: int = 6,
        seller_tokens: int = 1_000_000_000,
        program: Pubkey = TOKEN_PROGRAM_ID,
        native: bool = False,
        trade_ref: str = "trade-0001",
    ) -> EscrowWorld:
        buyer, seller, arbitrator = ledger.wallet(), ledger.wallet(), ledger.wallet()
        seller_ata: Pubkey | None = None
        if native:
            mint, decimals = WRAPPED_SOL_MINT, 9
        else:
            issuer = ledger.wallet()
            mint = ledger.create_mint(issuer, decimals, program=program)
            seller_ata = ledger.mint_to_owner(
                issuer, mint, decimals, seller.pubkey(), seller_tokens, program=program
            )
        escrow = derive_escrow_accounts(
            network=ledger.network,
            trade_ref=trade_ref,
            parties=EscrowParties(buyer.pubkey(), seller.pubkey(), arbitrator.pubkey()),
            mint=mint,
            decimals=decimals,
            token_program=program,
        )
        return cls(ledger, buyer, seller, arbitrator, escrow, seller_ata)

    def fund(self, amount: int) -> None:
        """The seller's wallet signs the base64 funding transaction; it is sent."""
        plan = build_funding_transaction(
            self.escrow, amount, recent_blockhash=self.ledger.blockhash(), rent=self.ledger.rent()
        )
        tx = decode_transaction(plan.transaction_base64)
        self.ledger.send(require_complete(sign_partially(tx, SoftwareSigner(self.seller))))

    def ata(self, wallet: Keypair) -> Pubkey:
        return self.escrow.associated_token_account(wallet.pubkey())


def _mint_bytes(*, decimals: int) -> bytes:
    """A classic SPL mint account: no mint/freeze authority, supply 0, initialized."""
    return (
        struct.pack("<I", 0)
        + bytes(32)
        + struct.pack("<Q", 0)
        + bytes([decimals, 1])
        + struct.pack("<I", 0)
        + bytes(32)
    )
