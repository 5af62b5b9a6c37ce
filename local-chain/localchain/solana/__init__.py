"""A local Solana chain: LiteSVM (``solders.litesvm``) behind the subset of
Solana's JSON-RPC that escrowd uses, so solana-py's ``AsyncClient`` talks to it
exactly as to a cluster (same result shapes, same error codes and messages).

Run it: ``python -m localchain.solana --port 8899 [--slot-ms 400]
[--finality-slots 32] [--seed HEX]``; in tests, ``SolanaLocal`` (a subprocess
on a free port, log in its data dir). ``python -m localchain.solana.bench``
measures it.

Methods: getAccountInfo, getBalance, getBlock, getBlockHeight, getBlockTime,
getBlocks, getBlocksWithLimit, getEpochInfo, getEpochSchedule,
getFeeForMessage, getFirstAvailableBlock, getGenesisHash, getHealth,
getIdentity, getLatestBlockhash, getMinimumBalanceForRentExemption,
getMultipleAccounts, getProgramAccounts, getRecentPrioritizationFees,
getSignatureStatuses, getSignaturesForAddress, getSlot, getSlotLeader,
getTokenAccountBalance, getTokenAccountsByOwner, getTokenSupply,
getTransaction, getTransactionCount, getVersion, isBlockhashValid,
minimumLedgerSlot, requestAirdrop, sendTransaction, simulateTransaction; and,
non-standard and dev only, ``escrowd_warpSlots(n)`` (open n slots now) and
``escrowd_info``. GET /health answers ``ok``. PubSub (websocket, on the RPC
port + 1 or ``--ws-port``; ``SolanaLocal.ws_url``): slotSubscribe,
signatureSubscribe, accountSubscribe, logsSubscribe and their unsubscribes.

Chain model (see ``chain.py``): a slot every ``--slot-ms`` (0: only on
escrowd_warpSlots), one block per slot, block height = slot; each slot a new
blockhash, valid 150 slots (144 in preflight/simulation, as agave); durable
nonces honoured; processed = working slot, confirmed = 1 slot behind,
finalized = ``--finality-slots`` behind, and reads at a commitment see the
accounts as of that slot. Transactions failing in execution are committed with
their error and pay their fee; bad signatures, unknown/expired blockhashes,
duplicates and unpayable fees are dropped (refused in preflight). All history is
kept and indexed by every account key. The native mints (SPL Token and
Token-2022) exist at genesis; SPL Token, Token-2022 and ATA programs are loaded.

Known differences from a cluster: state is in memory only (a restart is a new
chain); no forks, so nothing processed is ever rolled back; PubSub has no
program/block/root/vote subscriptions; preflight/simulation run against the latest state (only
the blockhash and duplicate checks use the commitment's bank); getTransaction
does not do ``jsonParsed``, account data ``base64+zstd`` is refused; Token-2022
extension contents are not parsed (names only for data-less ones);
getTokenAccountsByOwner at an older commitment does not see accounts whose
owner changed since; transaction memos are not extracted (the Memo program is
not loaded); no rent collection, no rewards, no vote accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localchain.process import RPCError
    from localchain.solana.harness import LAMPORTS_PER_SOL, SolanaLocal

__all__ = ["LAMPORTS_PER_SOL", "RPCError", "SolanaLocal"]


def __getattr__(name: str) -> Any:
    # The harness (and httpx) load only when asked for: the server process
    # imports this package too and should start fast.
    if name in __all__:
        from localchain.solana import harness

        return getattr(harness, name)
    raise AttributeError(name)
