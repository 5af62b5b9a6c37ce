"""Accounts and trust: passwords, 2FA, wallet sign-in, tokens, rate limits, audit."""
