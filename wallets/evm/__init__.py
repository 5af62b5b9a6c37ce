"""EVM wallets: EIP-712 payloads of the Escrow contract's instructions and
the signer interface (the only place EVM private keys are used)."""
