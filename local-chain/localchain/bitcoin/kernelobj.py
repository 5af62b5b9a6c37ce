"""Fast constructors for py-bitcoinkernel objects from bytes.

pbk's own constructors copy the input with ``(c_ubyte * n)(*data)``, which
unpacks every byte into a Python argument (milliseconds for a block); these
build the same objects with one ``from_buffer_copy``."""

from __future__ import annotations

import ctypes
from typing import TypeVar

import pbk
from pbk.capi import KernelOpaquePtr

T = TypeVar("T", bound=KernelOpaquePtr)


def _make(cls: type[T], data: bytes) -> T:
    obj: T = object.__new__(cls)
    buf = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
    KernelOpaquePtr.__init__(obj, buf, len(data))
    return obj


def block(raw: bytes) -> pbk.Block:
    return _make(pbk.Block, raw)


def transaction(raw: bytes) -> pbk.Transaction:
    return _make(pbk.Transaction, raw)


def script_pubkey(spk: bytes) -> pbk.ScriptPubkey:
    return _make(pbk.ScriptPubkey, spk)
