"""Sign-in (password + TOTP, SIWE, Bitcoin and Solana messages), tokens, 2FA, audit log.

Tokens: a sign-in returns a short-lived JWT access token and a refresh token;
``/auth/refresh`` rotates the refresh token (a used one presented again revokes
the whole session), ``/auth/logout`` revokes the session at once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import (
    AdminDep,
    ClaimsDep,
    IpDep,
    RowId,
    SessionDep,
    TokensDep,
    UserDep,
)
from api.schemas_auth import (
    AuditEntry,
    AuditPage,
    Login,
    LogoutBody,
    Me,
    NoncePublic,
    NonceRequest,
    PasswordSet,
    RecoveryCodes,
    RefreshBody,
    Register,
    Revoked,
    RoleSet,
    SessionPublic,
    TokenPairPublic,
    TotpCode,
    TotpSetupPublic,
    UserPublic,
    WalletPublic,
    WalletSignIn,
)
from node.accounts import passwords, service, totp, wallets
from node.accounts.audit import AuditFilter, list_audit, record_audit
from node.accounts.signin_messages import SignInMessage
from node.accounts.tokens import RefreshOutcome, TokenPair, Tokens
from node.config import Settings
from node.db.models import User
from node.db.models_accounts import AuthSession
from node.db.session import transaction
from node.errors import AuthenticationError, EscrowdError, NotFoundError, PermissionDeniedError

router = APIRouter(prefix="/api/p2p-crypto")
auth = APIRouter(prefix="/auth", tags=["auth"])
admin = APIRouter(prefix="/admin", tags=["admin"])



def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _siwe_chain_ids(settings: Settings) -> set[int]:
    if settings.auth.siwe_chain_ids:
        return set(settings.auth.siwe_chain_ids)
    if settings.evm.chain_id is not None:
        return {settings.evm.chain_id}
    return {31337}


def _user_public(user: User) -> UserPublic:
    return UserPublic(id=user.id, username=user.username, role=user.role)


def _pair_public(pair: TokenPair, user: User) -> TokenPairPublic:
    return TokenPairPublic(
        access_token=pair.access_token, expires_in=pair.expires_in,
        refresh_token=pair.refresh_token, refresh_expires_in=pair.refresh_expires_in,
        user=_user_public(user),
    )


def _audit_apart(request: Request, **kw: Any) -> None:
    """An audit row in its own transaction: kept although the request fails."""
    with transaction(request.app.state.sessions) as s:
        record_audit(s, **kw)


def _signed_in(
    session: Session, tokens: Tokens, *, user: User, method: str, ip: str | None,
    details: dict[str, Any] | None = None,
) -> TokenPairPublic:
    pair = tokens.start_session(session, user=user, method=method.split("+")[0], ip=ip)
    record_audit(session, actor_id=user.id, action="auth.signin", subject=f"user:{user.id}",
                 details={"method": method, "session": pair.session_id, **(details or {})},
                 ip=ip)
    return _pair_public(pair, user)


# --- passwords -----------------------------------------------------------------


@auth.post("/register", response_model=TokenPairPublic, status_code=201)
def register(body: Register, session: SessionDep, tokens: TokensDep, ip: IpDep) -> TokenPairPublic:
    """Create a trader account with a password; signs it in."""
    user = service.register(session, username=body.username, password=body.password)
    record_audit(session, actor_id=user.id, action="auth.register", subject=f"user:{user.id}",
                 ip=ip)
    return _signed_in(session, tokens, user=user, method="password", ip=ip)


@auth.post("/login", response_model=TokenPairPublic)
def login(
    request: Request, body: Login, session: SessionDep, tokens: TokensDep, ip: IpDep
) -> TokenPairPublic:
    """Sign in with username and password, plus a TOTP or recovery code when
    two-factor authentication is on (``totp_required`` otherwise)."""
    try:
        user, method = service.password_sign_in(
            session, username=body.username, password=body.password,
            second_factor=body.totp_code,
            totp_window=_settings(request).auth.totp_valid_window,
        )
    except EscrowdError as exc:
        _audit_apart(request, actor_id=None, action="auth.signin_failed",
                     subject=f"username:{body.username}",
                     details={"method": "password", "code": exc.code}, ip=ip)
        raise
    return _signed_in(session, tokens, user=user, method=method, ip=ip)


@auth.post("/refresh", response_model=TokenPairPublic)
def refresh(request: Request, body: RefreshBody, tokens: TokensDep, ip: IpDep) -> TokenPairPublic:
    """Rotate a refresh token: a new pair; the old refresh token is spent.
    Presenting a spent one again revokes the session (``refresh_reused``)."""
    with transaction(request.app.state.sessions) as session:
        result = tokens.refresh(session, refresh_token=body.refresh_token)
        if result.outcome is RefreshOutcome.REUSED:
            record_audit(session, actor_id=result.user.id, action="auth.refresh_reuse",
                         subject=f"user:{result.user.id}",
                         details={"session": result.session_id}, ip=ip)
        else:
            assert result.pair is not None
            out = _pair_public(result.pair, result.user)
    if result.outcome is RefreshOutcome.REUSED:
        raise AuthenticationError("this refresh token was already used: the session is revoked",
                                  code="refresh_reused")
    return out


@auth.post("/logout", status_code=204, response_class=Response)
def logout(
    session: SessionDep, user: UserDep, claims: ClaimsDep, ip: IpDep,
    body: LogoutBody | None = None,
) -> Response:
    """Revoke this session (or all of the user's sessions): its access and
    refresh tokens stop working at once."""
    everywhere = body.everywhere if body else False
    if everywhere or claims is None:
        n = Tokens.revoke_user_sessions(session, user.id, reason="logout")
    else:
        Tokens.revoke_session(session, claims.session_id, reason="logout")
        n = 1
    record_audit(session, actor_id=user.id, action="auth.logout", subject=f"user:{user.id}",
                 details={"everywhere": everywhere, "sessions": n}, ip=ip)
    return Response(status_code=204)


@auth.get("/sessions", response_model=list[SessionPublic])
def list_sessions(session: SessionDep, user: UserDep, claims: ClaimsDep) -> list[SessionPublic]:
    """The user's live sign-in sessions, newest first."""
    rows = session.scalars(
        select(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
        .order_by(AuthSession.created_at.desc())
        .limit(200)
    )
    current = claims.session_id if claims else None
    return [SessionPublic(id=r.id, method=r.method, ip=r.ip, created_at=r.created_at,
                          current=r.id == current) for r in rows]


@auth.delete("/sessions/{session_id}", status_code=204, response_class=Response)
def revoke_session(
    session_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    session: SessionDep, user: UserDep, ip: IpDep,
) -> Response:
    """Sign one of the user's sessions out (another device), at once."""
    row = session.get(AuthSession, session_id)
    if row is None or row.user_id != user.id:
        raise NotFoundError(f"no session {session_id}")
    Tokens.revoke_session(session, session_id, reason="revoked_by_user")
    record_audit(session, actor_id=user.id, action="auth.session_revoked",
                 subject=f"user:{user.id}", details={"session": session_id}, ip=ip)
    return Response(status_code=204)


@auth.get("/me", response_model=Me)
def me(session: SessionDep, user: UserDep) -> Me:
    return Me(
        user=_user_public(user),
        totp_enabled=totp.totp_enabled(session, user.id),
        has_password=passwords.has_password(session, user.id),
        recovery_codes_left=totp.remaining_recovery_codes(session, user.id),
        wallets=[WalletPublic.model_validate(w, from_attributes=True)
                 for w in wallets.list_wallets(session, user.id)],
    )


@auth.post("/password", status_code=204, response_class=Response)
def set_password(
    body: PasswordSet, session: SessionDep, user: UserDep, claims: ClaimsDep, ip: IpDep
) -> Response:
    """Set a first password (accounts made by the CLI or a wallet) or change it
    (``current_password`` required). A change signs out the other sessions."""
    changed = passwords.has_password(session, user.id)
    if changed:
        if body.current_password is None:
            raise AuthenticationError("current_password is required to change the password",
                                      code="invalid_credentials", field="current_password")
        passwords.check_password(session, user_id=user.id, password=body.current_password)
    passwords.set_password(session, user_id=user.id, password=body.new_password)
    if changed:
        Tokens.revoke_user_sessions(session, user.id, reason="password_changed",
                                    keep=claims.session_id if claims else None)
    record_audit(session, actor_id=user.id, action="auth.password_set",
                 subject=f"user:{user.id}", ip=ip)
    return Response(status_code=204)


# --- TOTP ------------------------------------------------------------------------


@auth.post("/totp/setup", response_model=TotpSetupPublic)
def totp_setup(request: Request, session: SessionDep, user: UserDep) -> TotpSetupPublic:
    """A new TOTP secret (for the authenticator app); active after /totp/enable."""
    s = totp.setup_totp(session, user_id=user.id, account=user.username,
                        issuer=_settings(request).auth.totp_issuer)
    return TotpSetupPublic(secret=s.secret, otpauth_uri=s.uri)


@auth.post("/totp/enable", response_model=RecoveryCodes)
def totp_enable(
    request: Request, body: TotpCode, session: SessionDep, user: UserDep, ip: IpDep
) -> RecoveryCodes:
    """Prove a code to turn two-factor on; returns one-time recovery codes (shown once)."""
    a = _settings(request).auth
    codes = totp.enable_totp(session, user_id=user.id, code=body.code, count=a.recovery_codes,
                             window=a.totp_valid_window)
    record_audit(session, actor_id=user.id, action="totp.enabled", subject=f"user:{user.id}",
                 ip=ip)
    return RecoveryCodes(recovery_codes=codes)


@auth.post("/totp/disable", status_code=204, response_class=Response)
def totp_disable(
    request: Request, body: TotpCode, session: SessionDep, user: UserDep, ip: IpDep
) -> Response:
    """Turn two-factor off with a current code or a recovery code."""
    how = totp.verify_second_factor(session, user.id, body.code,
                                    window=_settings(request).auth.totp_valid_window)
    totp.disable_totp(session, user_id=user.id)
    record_audit(session, actor_id=user.id, action="totp.disabled", subject=f"user:{user.id}",
                 details={"with": how}, ip=ip)
    return Response(status_code=204)


@auth.post("/totp/recovery-codes", response_model=RecoveryCodes)
def totp_recovery_codes(
    request: Request, body: TotpCode, session: SessionDep, user: UserDep, ip: IpDep
) -> RecoveryCodes:
    """New recovery codes (the old ones stop working), with a current TOTP code."""
    a = _settings(request).auth
    totp.verify_totp_for_user(session, user.id, body.code, window=a.totp_valid_window)
    codes = totp.replace_recovery_codes(session, user_id=user.id, count=a.recovery_codes)
    record_audit(session, actor_id=user.id, action="totp.recovery_codes_replaced",
                 subject=f"user:{user.id}", ip=ip)
    return RecoveryCodes(recovery_codes=codes)


# --- wallets -------------------------------------------------------------------


@auth.post("/nonce", response_model=NoncePublic, status_code=201)
def nonce(request: Request, body: NonceRequest, session: SessionDep) -> NoncePublic:
    """A single-use nonce for a wallet sign-in message. EVM: build the EIP-4361
    message with this nonce, domain, URI and chain id. Bitcoin and Solana: sign
    ``message`` exactly (returned when ``address`` is given)."""
    settings = _settings(request)
    a = settings.auth
    issued = wallets.issue_nonce(session, chain=body.chain, ttl_s=a.nonce_ttl_s)
    text = None
    if body.chain != "evm" and body.address is not None:
        text = SignInMessage(chain=body.chain, domain=a.domain, address=body.address, uri=a.uri,
                             nonce=issued.nonce, issued_at=issued.issued_at,
                             expires_at=issued.expires_at).text()
    chain_id = min(_siwe_chain_ids(settings)) if body.chain == "evm" else None
    return NoncePublic(nonce=issued.nonce, chain=body.chain, domain=a.domain, uri=a.uri,
                       chain_id=chain_id, issued_at=issued.issued_at,
                       expires_at=issued.expires_at, message=text)


def _prove(request: Request, session: Session, body: WalletSignIn) -> service.WalletProof:
    settings = _settings(request)
    return service.prove_wallet(
        session, chain=body.chain, message=body.message, signature=body.signature,
        address=body.address, auth=settings.auth, siwe_chain_ids=_siwe_chain_ids(settings),
        btc_network=settings.btc.network,
    )


@auth.post("/wallet", response_model=TokenPairPublic)
def wallet_sign_in(
    request: Request, body: WalletSignIn, session: SessionDep, tokens: TokensDep, ip: IpDep
) -> TokenPairPublic:
    """Sign in by signature: SIWE (EIP-4361), a Bitcoin signed message (BIP-322
    or legacy) or a Solana signed message. An unknown wallet becomes a new
    trader account that owns it."""
    try:
        proof = _prove(request, session, body)
    except EscrowdError as exc:
        _audit_apart(request, actor_id=None, action="auth.signin_failed",
                     subject=f"wallet:{body.chain}", details={"method": body.chain,
                                                              "code": exc.code}, ip=ip)
        raise
    user, created = wallets.sign_in_wallet(session, chain=proof.chain, address=proof.address)
    method = "siwe" if proof.chain == "evm" else proof.chain
    return _signed_in(session, tokens, user=user, method=method, ip=ip,
                      details={"address": proof.address, "proof": proof.detail,
                               "new_account": created})


@auth.get("/wallets", response_model=list[WalletPublic])
def list_wallets(session: SessionDep, user: UserDep) -> list[WalletPublic]:
    return [WalletPublic.model_validate(w, from_attributes=True)
            for w in wallets.list_wallets(session, user.id)]


@auth.post("/wallets", response_model=WalletPublic, status_code=201)
def link_wallet(
    request: Request, body: WalletSignIn, session: SessionDep, user: UserDep, ip: IpDep
) -> WalletPublic:
    """Link another wallet to this account (same proof as a wallet sign-in)."""
    proof = _prove(request, session, body)
    link = wallets.link_wallet(session, user=user, chain=proof.chain, address=proof.address)
    record_audit(session, actor_id=user.id, action="wallet.linked", subject=f"user:{user.id}",
                 details={"chain": proof.chain, "address": proof.address}, ip=ip)
    return WalletPublic.model_validate(link, from_attributes=True)


@auth.delete("/wallets/{wallet_id}", status_code=204, response_class=Response)
def unlink_wallet(wallet_id: RowId, session: SessionDep, user: UserDep, ip: IpDep) -> Response:
    """Unlink a wallet (not the last way to sign in)."""
    mine = wallets.list_wallets(session, user.id)
    if not any(w.id == wallet_id for w in mine):
        raise NotFoundError(f"no wallet {wallet_id}")
    if len(mine) == 1 and not passwords.has_password(session, user.id):
        raise PermissionDeniedError("set a password before unlinking your last wallet",
                                    code="last_sign_in_method")
    link = wallets.unlink_wallet(session, user=user, wallet_id=wallet_id)
    record_audit(session, actor_id=user.id, action="wallet.unlinked", subject=f"user:{user.id}",
                 details={"chain": link.chain, "address": link.address}, ip=ip)
    return Response(status_code=204)


# --- admin ---------------------------------------------------------------------


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


def _target(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user {user_id}")
    return user


@admin.post("/users/{user_id}/role", response_model=UserPublic)
def set_role(user_id: RowId, body: RoleSet, session: SessionDep, actor: AdminDep,
             ip: IpDep) -> UserPublic:
    """Make a user a trader, arbitrator or admin; their sessions are revoked so
    new tokens carry the new role."""
    user = _target(session, user_id)
    old = user.role
    user.role = body.role
    Tokens.revoke_user_sessions(session, user.id, reason="role_changed")
    record_audit(session, actor_id=actor.id, action="admin.role_changed",
                 subject=f"user:{user.id}", details={"from": old, "to": body.role}, ip=ip)
    return _user_public(user)


@admin.post("/users/{user_id}/revoke-sessions", response_model=Revoked)
def revoke_sessions(user_id: RowId, session: SessionDep, actor: AdminDep, ip: IpDep) -> Revoked:
    """Sign a user out everywhere at once."""
    user = _target(session, user_id)
    n = Tokens.revoke_user_sessions(session, user.id, reason="admin")
    record_audit(session, actor_id=actor.id, action="admin.sessions_revoked",
                 subject=f"user:{user.id}", details={"sessions": n}, ip=ip)
    return Revoked(revoked_sessions=n)


router.include_router(auth)
router.include_router(admin)
