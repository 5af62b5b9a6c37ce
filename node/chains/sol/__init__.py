"""Solana: a sync client over solana-py's ``AsyncClient`` (``client.py``), the
chain adapter (``adapter.py``) and the escrow-account watcher (``watcher.py``)."""
