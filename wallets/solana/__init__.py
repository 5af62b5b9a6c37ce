"""Solana escrow: a 2-of-3 SPL Token multisig owning a per-trade token account.

Pure builders and checks, no network I/O (see README.md). Modules:

* :mod:`.escrow` — addresses (seed-derived) and the seller's funding transaction
* :mod:`.payout` — payout intents and release / refund / split transactions
* :mod:`.signer` — the ``Signer`` interface, base64 transport, partial signing
* :mod:`.txcheck` — the check a payout transaction must pass before the node signs
* :mod:`.policy` — which payouts the node's agent key may co-sign, when (I3 on Solana)
* :mod:`.mint` — which mints can be escrowed (Token-2022 extensions)
* :mod:`.network` — cluster parameters
* :mod:`.errors` — this package's exceptions
* :mod:`.testing` — a LiteSVM ledger for tests only
"""
