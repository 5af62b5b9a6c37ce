"""Sign-in (password + TOTP, SIWE, Bitcoin and Solana messages), tokens, 2FA, audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from api.deps import AdminDep, SessionDep
from api.schemas_auth import AuditEntry, AuditPage
from node.accounts.audit import AuditFilter, list_audit

router = APIRouter(prefix="/api/p2p-crypto")
admin = APIRouter(prefix="/api/p2p-crypto/admin", tags=["admin"])


@admin.get("/audit-log", response_model=AuditPage)
def audit_log(
    session: SessionDep,
    _admin: AdminDep,
    actor_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    action: Annotated[str | None, Query(max_length=64, description="exact, or a prefix "
                                        "ending in '.' (auth.)")] = None,
    subject: Annotated[str | None, Query(max_length=128)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditPage:
    """Security-relevant actions, newest first (admins only)."""
    rows, total = list_audit(
        session,
        where=AuditFilter(actor_id=actor_id, action=action, subject=subject,
                          since=since, until=until),
        limit=limit,
        offset=offset,
    )
    return AuditPage(
        data=[AuditEntry.model_validate(r, from_attributes=True) for r in rows],
        total=total, limit=limit, offset=offset,
    )


router.include_router(admin)
