"""Dependencies of the market endpoints: the market settings, the opening
policy (prices and trade limits), the payment-details cipher, the file store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from node.config import Settings
from node.market.crypto import DetailsCipher, load_cipher
from node.market.opening import OpeningPolicy
from node.market.settings import MarketSettings
from node.storage import FileStore, make_store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def market_settings(request: Request) -> MarketSettings:
    return get_settings(request).market


def opening_policy(request: Request) -> OpeningPolicy:
    return OpeningPolicy.from_settings(get_settings(request))


def details_cipher(request: Request) -> DetailsCipher:
    """Loaded once per app (the dev key file is read, or made, on first use)."""
    cipher: DetailsCipher | None = getattr(request.app.state, "market_cipher", None)
    if cipher is None:
        cipher = load_cipher(get_settings(request))
        request.app.state.market_cipher = cipher
    return cipher


def file_store(request: Request) -> FileStore:
    store: FileStore | None = getattr(request.app.state, "market_store", None)
    if store is None:
        store = make_store(get_settings(request))
        request.app.state.market_store = store
    return store


MarketDep = Annotated[MarketSettings, Depends(market_settings)]
PolicyDep = Annotated[OpeningPolicy, Depends(opening_policy)]
CipherDep = Annotated[DetailsCipher, Depends(details_cipher)]
StoreDep = Annotated[FileStore, Depends(file_store)]
