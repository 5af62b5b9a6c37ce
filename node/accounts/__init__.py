"""Accounts and trust: passwords, 2FA, wallet sign-in, tokens, rate limits, audit.

How a client signs in (all under ``/api/p2p-crypto/auth``):

- **password** -- ``POST /register`` or ``POST /login`` (``username``,
  ``password``, plus ``totp_code`` -- a TOTP code or a recovery code -- once
  two-factor is on: ``POST /totp/setup`` then ``POST /totp/enable``).
- **Ethereum** -- ``POST /nonce {"chain": "evm"}``, build the EIP-4361
  message with that nonce, domain, URI and chain id, sign it (EIP-191), then
  ``POST /wallet {"chain": "evm", "message", "signature"}``.
- **Bitcoin / Solana** -- ``POST /nonce {"chain": "btc"|"sol", "address"}``
  returns the exact ``message``; sign it (Bitcoin: BIP-322 simple or legacy
  signmessage; Solana: ed25519, base58) and ``POST /wallet`` with
  ``address``. An unknown wallet becomes a new trader account; a signed-in
  user links more wallets with ``POST /wallets`` (same proof).

Every sign-in returns a JWT access token (``auth.access_token_ttl_s``, 15 min)
and a refresh token; ``POST /refresh`` rotates it (a spent one presented again
revokes the session), ``POST /logout`` revokes the session at once
(``{"everywhere": true}``: all of them). The API tokens ``escrowd users add``
prints keep working. Admins read ``GET /admin/audit-log`` and change roles.

Modules: ``passwords`` (argon2id), ``totp`` (RFC 6238, recovery codes, no
code reuse), ``tokens`` (JWT + sessions + refresh rotation), ``wallets``
(nonces, links), ``wallet_proofs`` and ``signin_messages`` (pure signature and
message checks), ``service`` (what the routes compose), ``audit``, ``keys``
(the secret and the TOTP cipher), ``client_ip``, ``housekeeping`` (purge job),
``cli_users``. Rate limits and Idempotency-Key live in ``api.security``."""
