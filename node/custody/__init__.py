"""Custody: deposit addresses, ledger, withdrawals, hot/cold sweeps."""
