//! Passwordless sign-in: an email or phone number gets a one-time 6-digit code.
//!
//! Invariants: the answer (page, status, what is stored) is the same whether or not the identity
//! or the tenant exists; a code is stored only as an HMAC bound to its tenant and challenge, lives
//! `portal_code_ttl_s` (10 minutes), and dies at its fifth wrong try or its first use; codes are
//! rate-limited per identity (5 per 10 minutes, counted in the database so the whole fleet
//! agrees) and per address; a right code opens a session bound to a fresh `user-self` lease of
//! that user in that tenant only. Codes go to the notification webhook, and in demo mode also
//! to the log and the clearly marked demo outbox page.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::text::{t, tf, Msg};
use super::{csrf_token, page, pre_session, set_cookie, Fail, Page, Peer, PRE_COOKIE, SESSION_COOKIE};
use crate::app::AppState;
use crate::audit::{self, Draft};
use crate::keys::blind::IndexMode;
use crate::keys::keyring::{Keyring, TenantKeys};
use crate::store::now_secs;

/// Wrong or used-up codes: five tries per challenge.
pub const MAX_TRIES: i32 = 5;
/// Codes per identity per window from one address, and from everyone together (so nobody can
/// lock a person out by asking for codes from one place, and nobody gets unbounded guesses).
const CODES_PER_IDENTITY_AND_ADDRESS: i64 = 5;
const CODES_PER_IDENTITY: i64 = 20;
const IDENTITY_WINDOW_S: i64 = 600;
/// Wrong codes per user per hour, over all challenges and identities (email and phone): past
/// this even the right code is refused until the hour has passed. Bounds guessing at 10 per
/// hour per person, whatever the number of addresses or parallel requests.
pub const FAILED_TRIES_PER_USER: i64 = 10;
const FAILED_WINDOW_S: i64 = 3600;
/// Challenge rows live this long (the failed-try window), then the next sign-in sweeps them.
const KEEP_CHALLENGES_S: i64 = FAILED_WINDOW_S;

/// One code the demo would have sent.
pub struct Sent {
    pub at: i64,
    pub tenant: String,
    pub to: String,
    pub code: String,
}

/// Portal state shared by the instance: the per-address limiter, the notification client and
/// the demo outbox.
pub struct Outbox {
    /// Keyed by address (IPv6 by its /64: one host's share of addresses counts once).
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    http: reqwest::Client,
    sent: Mutex<VecDeque<Sent>>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new()
    }
}

impl Outbox {
    pub fn new() -> Outbox {
        // Sign-in and code entries together: 20 a minute per address, bursts of 20.
        let quota = Quota::per_minute(NonZeroU32::new(20).expect("non-zero"));
        crate::custody::install_crypto_provider();
        Outbox {
            per_address: RateLimiter::dashmap(quota),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default(),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    pub fn check_address(&self, ip: IpAddr) -> Result<(), Fail> {
        if self.address_allowed(ip) {
            Ok(())
        } else {
            Err(Fail::new(StatusCode::TOO_MANY_REQUESTS, t(Msg::TooManyFromNetwork)))
        }
    }

    /// Counts one sign-in step from `ip` (portal and wire API together); false past the quota.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        if self.per_address.len() > 100_000 {
            self.per_address.retain_recent();
        }
        self.per_address.check_key(&network(ip)).is_ok()
    }

    fn push(&self, sent: Sent) {
        let mut q = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        q.push_front(sent);
        q.truncate(50);
    }
}

/// The address a limit applies to: IPv4 as is, IPv6 by its /64.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// A keyed hash of the requesting network (stored with a challenge; never the address itself),
/// under the tenant's own keys: gone with a shredded tenant's KEK.
fn requester(keys: &TenantKeys, ip: IpAddr) -> [u8; 32] {
    keys.keyed("portal-requester", network(ip).to_string().as_bytes())
}

fn mode_of(identity: &str) -> Result<IndexMode, Fail> {
    let id = identity.trim();
    if id.contains('@') {
        Ok(IndexMode::Email)
    } else if id.chars().filter(char::is_ascii_digit).count() >= 6 && id.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        Ok(IndexMode::Phone)
    } else {
        Err(Fail::new(StatusCode::BAD_REQUEST, t(Msg::BadIdentity)))
    }
}

fn code_hash(ring: &Keyring, tenant_id: i64, challenge: &str, code: &str) -> [u8; 32] {
    let key = ring.derived("portal-code");
    crate::keys::blind::keyed_digest(&key, "portal-code", format!("{tenant_id}/{challenge}/{code}").as_bytes())
}

/// GET /portal/: the sign-in form (or the profile, when signed in).
pub async fn start(State(st): State<AppState>, headers: HeaderMap) -> Page {
    if super::cookie(&st, &headers, SESSION_COOKIE).is_some() {
        return Ok(Redirect::to("/portal/me").into_response());
    }
    let ring = st.vault().keyring()?;
    let (pre, new) = pre_session(&st, &headers);
    // On an organisation's own subdomain the portal is already theirs: nothing to ask.
    let host_tenant = super::host_tenant(&headers);
    if let Some(tenant) = &host_tenant {
        super::name_org(&st, tenant).await;
    }
    let org = super::text::org();
    let who = org.as_ref().map_or_else(|| t(Msg::ThisOrganisation).to_string(), |o| o.shown().to_string());
    let body = html! {
        p { (tf(Msg::SignInIntro, &[&who])) }
        form method="post" action="/portal/signin" {
            input type="hidden" name="csrf" value=(csrf_token(&ring, &pre));
            @match &host_tenant {
                Some(tenant) => { input type="hidden" name="tenant" value=(tenant); }
                None => {
                    label for="tenant" { (t(Msg::Organisation)) }
                    p.hint id="tenant-hint" { (t(if st.config().portal_demo_outbox { Msg::OrganisationHintDemo } else { Msg::OrganisationHint })) }
                    input type="text" id="tenant" name="tenant" required autocomplete="organization" aria-describedby="tenant-hint";
                }
            }
            label for="identity" { (t(Msg::Identity)) }
            p.hint id="identity-hint" { (t(Msg::IdentityHint)) }
            input type="text" id="identity" name="identity" required autocomplete="email" aria-describedby="identity-hint";
            button type="submit" { (t(Msg::SendCode)) }
        }
        p { a href="/portal/dpo" { (t(Msg::DpoConsoleLink)) } }
    };
    Ok(super::with_pre_cookie(&st, page::render(t(Msg::TitleSignIn), None, body), &pre, new))
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    identity: String,
}

/// Where a sign-in step comes from: the portal's pages, or the wire API (UserPrelogin and
/// UserLogin, for apps that sign their users in with the vault's codes). The rules are the
/// same; the audit names the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Portal,
    Api,
}

impl Channel {
    fn code_event(self) -> &'static str {
        match self {
            Channel::Portal => "PortalCodeSent",
            Channel::Api => "UserPrelogin",
        }
    }

    fn sign_in_event(self) -> &'static str {
        match self {
            Channel::Portal => "PortalSignIn",
            Channel::Api => "UserLogin",
        }
    }

    fn actor(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::Api => "api",
        }
    }
}

/// Why a sign-in step is refused (each channel words it its own way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an email address or phone number.
    Identity,
    TooManyCodes,
    /// No such challenge (never made, swept, or another tenant's).
    Unknown,
    /// Used up, expired or out of tries.
    Unusable,
    TooManyWrong,
    Wrong {
        left: i32,
    },
}

impl Refusal {
    fn to_fail(self) -> Fail {
        match self {
            Refusal::Identity => Fail::new(StatusCode::BAD_REQUEST, t(Msg::BadIdentity)),
            Refusal::TooManyCodes => Fail::new(StatusCode::TOO_MANY_REQUESTS, t(Msg::TooManyCodes)),
            Refusal::Unknown => Fail::new(StatusCode::FORBIDDEN, t(Msg::CodeWrongOrExpired)),
            Refusal::Unusable => Fail::new(StatusCode::FORBIDDEN, t(Msg::CodeUnusable)),
            Refusal::TooManyWrong => Fail::new(StatusCode::TOO_MANY_REQUESTS, t(Msg::TooManyWrong)),
            Refusal::Wrong { left } if left > 0 => Fail::new(StatusCode::FORBIDDEN, tf(Msg::CodeWrongTriesLeft, &[&left.to_string()])),
            Refusal::Wrong { .. } => Fail::new(StatusCode::FORBIDDEN, t(Msg::CodeWrongLast)),
        }
    }
}

/// The fixed code of Databunker's demo accounts (phone `4444`, `test@securitybunker.io`).
pub const DEMO_CODE: &str = "4444";

/// Whether `identity` is one of Databunker's demo accounts in a demo vault (only there: the
/// demo outbox is on only in `strongroom demo`). Still single-use and attempt-limited.
fn demo_account(st: &AppState, mode: IndexMode, identity: &str) -> bool {
    st.config().portal_demo_outbox
        && match mode {
            IndexMode::Phone => identity.trim() == "4444",
            IndexMode::Email => identity.trim().eq_ignore_ascii_case("test@securitybunker.io"),
            _ => false,
        }
}

/// Makes a challenge for `identity` in `tenant` and, when it is a user's, sends its code; the
/// challenge id either way (for an unknown tenant, one that exists nowhere), so the answer does
/// not tell whether anyone was there.
pub async fn issue_code(
    st: &AppState,
    ring: &Keyring,
    tenant: &str,
    mode: IndexMode,
    identity: &str,
    ip: IpAddr,
    channel: Channel,
) -> crate::error::Result<Result<String, Refusal>> {
    let challenge = uuid::Uuid::new_v4().to_string();
    let now = now_secs();
    let ttl = st.config().portal_code_ttl_s;
    let Some(mut tx) = st.db().tenant_tx_by_name(tenant).await? else {
        return Ok(Ok(challenge));
    };
    let keys = crate::custody::rotation::tenant_keys(st.vault().tenant_keks(), ring, &mut tx).await?;
    let Some(index) = keys.index(mode, identity) else {
        return Ok(Err(Refusal::Identity));
    };
    let from = requester(&keys, ip);
    // One sign-in step per identity at a time: the count below cannot be raced.
    tx.lock_identity(&index).await?;
    let (mine, all) = tx.recent_challenges(&index, &from, now - IDENTITY_WINDOW_S).await?;
    if mine >= CODES_PER_IDENTITY_AND_ADDRESS || all >= CODES_PER_IDENTITY {
        return Ok(Err(Refusal::TooManyCodes));
    }
    tx.sweep_challenges(now - KEEP_CHALLENGES_S).await?;
    let user = tx.user_by_index(mode, &index).await?;
    let code = if demo_account(st, mode, identity) {
        DEMO_CODE.to_string()
    } else {
        format!("{:06}", rand::Rng::gen_range(&mut rand::rngs::OsRng, 0..1_000_000u32))
    };
    let hash = code_hash(ring, tx.tenant_id(), &challenge, &code);
    tx.insert_challenge(&challenge, &index, &from, user.as_ref().map(|u| u.token.as_str()), &hash, now + ttl, now).await?;
    let mut draft = Draft::default();
    draft.details.insert("challenge".into(), challenge.clone().into());
    // The code goes to the contact the record holds, not to the spelling typed here.
    let mut contact = None;
    if let Some(u) = &user {
        let key = crate::records::user_key(&keys, u)?;
        let profile = crate::records::open_current(&keys, &key, u)?;
        contact = stored_contact(&profile, mode, identity);
        draft.user_token = Some(u.token.clone());
        draft.user_key = Some(key);
    } else {
        draft.details.insert("identity_index".into(), hex::encode(index).into());
    }
    let outcome = if user.is_some() { audit::Outcome::Ok } else { audit::Outcome::UnknownIdentity };
    audit::append(&mut tx, &keys, channel.code_event(), channel.actor(), outcome, draft).await?;
    tx.commit().await?;
    if let Some(to) = contact {
        deliver(st, tenant, mode, &to, &code, &challenge);
    }
    Ok(Ok(challenge))
}

/// Which challenge a code answers: one the page carries, or the newest of an identity.
pub enum Answering<'a> {
    Challenge(&'a str),
    Latest { mode: IndexMode, identity: &'a str },
}

/// A right code: its user, and the tenant transaction to open the user's lease in (the caller
/// commits).
pub struct SignedIn {
    pub tx: crate::store::TenantTx,
    pub keys: std::sync::Arc<TenantKeys>,
    pub user: crate::store::users::UserRow,
}

/// Checks a code: a right one is used up and returns its user; a wrong one is counted (and
/// audited: against the user when there is one) and refused.
pub async fn redeem_code(
    st: &AppState,
    ring: &Keyring,
    tenant: &str,
    answering: Answering<'_>,
    code: &str,
    channel: Channel,
) -> crate::error::Result<Result<SignedIn, Refusal>> {
    let code = code.trim();
    let Some(mut tx) = st.db().tenant_tx_by_name(tenant).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    let now = now_secs();
    let keys = crate::custody::rotation::tenant_keys(st.vault().tenant_keks(), ring, &mut tx).await?;
    let challenge = match answering {
        Answering::Challenge(c) => c.trim().to_string(),
        Answering::Latest { mode, identity } => {
            let Some(index) = keys.index(mode, identity) else { return Ok(Err(Refusal::Identity)) };
            match tx.latest_challenge(&index, now).await? {
                Some(c) => c,
                None => return Ok(Err(Refusal::Unknown)),
            }
        }
    };
    let Some(ch) = tx.lock_challenge(&challenge).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    if ch.used || ch.expires_at <= now || ch.tries >= MAX_TRIES {
        return Ok(Err(Refusal::Unusable));
    }
    let owner = match &ch.user_token {
        Some(token) => tx.user_by_token(token).await?,
        None => None,
    };
    if let Some(u) = &owner {
        if tx.failed_tries(&u.token, now - FAILED_WINDOW_S).await? >= FAILED_TRIES_PER_USER {
            return Ok(Err(Refusal::TooManyWrong));
        }
    }
    let expected = code_hash(ring, tx.tenant_id(), &challenge, code);
    // Six digits, or the demo accounts' fixed code in a demo vault (issued only there).
    let well_formed = code.len() == 6 || (code == DEMO_CODE && st.config().portal_demo_outbox);
    let right = well_formed && bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &ch.code_hash[..])) && owner.is_some();
    tx.record_try(&challenge, right).await?;
    match (owner, right) {
        (Some(user), true) => Ok(Ok(SignedIn { tx, keys, user })),
        (owner, _) => {
            // A wrong code for a real user is part of that user's audit trail (they and the DPO
            // see guessing); for nobody, it is a tenant event.
            let mut draft = Draft::default();
            draft.details.insert("challenge".into(), challenge.into());
            if let Some(u) = &owner {
                draft.user_token = Some(u.token.clone());
                draft.user_key = Some(crate::records::user_key(&keys, u)?);
            }
            audit::append(&mut tx, &keys, channel.sign_in_event(), channel.actor(), crate::audit::Outcome::Denied, draft).await?;
            tx.commit().await?;
            Ok(Err(Refusal::Wrong { left: MAX_TRIES - ch.tries - 1 }))
        }
    }
}

/// Names the organisation when the host's subdomain is `tenant` (its public portal address).
async fn name_host_org(st: &AppState, headers: &HeaderMap, tenant: &str) {
    if super::host_tenant(headers).as_deref() == Some(tenant) {
        super::name_org(st, tenant).await;
    }
}

/// POST /portal/signin: makes a challenge and, when the identity is a user's, sends its code.
pub async fn send_code(State(st): State<AppState>, headers: HeaderMap, peer: Peer, Form(f): Form<SignInForm>) -> Page {
    let ring = st.vault().keyring()?;
    super::check_pre_form(&st, &ring, &headers, &f.csrf)?;
    st.portal().check_address(peer.ip())?;
    // The typed organisation is not named on the pages that follow: they must read the same
    // whether it exists (only a tenant's own subdomain, its public address, names it).
    let tenant = super::tenant_name(&f.tenant)?;
    name_host_org(&st, &headers, &tenant).await;
    let mode = mode_of(&f.identity)?;
    let challenge = issue_code(&st, &ring, &tenant, mode, &f.identity, peer.ip(), Channel::Portal).await?.map_err(Refusal::to_fail)?;
    Ok(code_form(&st, &ring, &headers, &tenant, &challenge, None).into_response())
}

/// The record's own email or phone (the field whose blind index matched), falling back to the
/// typed identity only when no such field is a string.
fn stored_contact(profile: &serde_json::Value, mode: IndexMode, typed: &str) -> Option<String> {
    let field = if mode == IndexMode::Phone { "phone" } else { "email" };
    Some(profile.get(field).and_then(|v| v.as_str()).unwrap_or(typed.trim()).to_string())
}

/// Hands a code to the notification webhook (in the background: the answer does not wait, so
/// its timing does not tell whether anyone was there) and, in demo mode, to the log and outbox.
fn deliver(st: &AppState, tenant: &str, mode: IndexMode, to: &str, code: &str, challenge: &str) {
    let ttl = st.config().portal_code_ttl_s;
    if st.config().portal_demo_outbox {
        tracing::warn!(challenge, code, "DEMO MODE: portal sign-in code (also on /portal/demo/outbox)");
        st.portal().push(Sent { at: now_secs(), tenant: tenant.into(), to: to.into(), code: code.into() });
    }
    if let Some(url) = st.config().portal_notify_url.clone() {
        let http = st.portal().http.clone();
        let body = json!({
            "type": "portal-sign-in-code", "tenant": tenant, "channel": if mode == IndexMode::Phone { "sms" } else { "email" },
            "to": to, "code": code, "expires_in": ttl,
        });
        let challenge = challenge.to_string();
        let secret = st.config().webhook_secret.clone();
        tokio::spawn(async move {
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            match crate::privacy::webhook::post(&http, &url, secret.as_ref().map(|s| s.as_bytes()), bytes).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::error!(challenge, status = r.status().as_u16(), "portal notification refused by the webhook"),
                Err(e) => tracing::error!(challenge, error = %e.without_url(), "portal notification failed"),
            }
        });
    }
}

fn code_form(
    st: &AppState,
    ring: &Keyring,
    headers: &HeaderMap,
    tenant: &str,
    challenge: &str,
    error: Option<&str>,
) -> axum::response::Response {
    let pre = super::cookie(st, headers, PRE_COOKIE).unwrap_or_default();
    let body = html! {
        @if let Some(e) = error {
            p role="alert" { (e) }
        } @else {
            p.notice role="status" { (t(Msg::CodeOnItsWay)) }
        }
        form method="post" action="/portal/verify" {
            input type="hidden" name="csrf" value=(csrf_token(ring, pre));
            input type="hidden" name="tenant" value=(tenant);
            input type="hidden" name="challenge" value=(challenge);
            label for="code" { (t(Msg::Code)) }
            input type="text" id="code" name="code" required inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" autofocus;
            button type="submit" { (t(Msg::TitleSignIn)) }
        }
        p { a href="/portal/" { (t(Msg::StartAgain)) } }
    };
    page::render(t(Msg::TitleEnterCode), None, body)
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    code: String,
}

/// POST /portal/verify: a right code opens the session; anything else is refused and counted.
pub async fn verify(State(st): State<AppState>, headers: HeaderMap, peer: Peer, Form(f): Form<VerifyForm>) -> Page {
    let ring = st.vault().keyring()?;
    super::check_pre_form(&st, &ring, &headers, &f.csrf)?;
    st.portal().check_address(peer.ip())?;
    let tenant = super::tenant_name(&f.tenant)?;
    name_host_org(&st, &headers, &tenant).await;
    let signed = match redeem_code(&st, &ring, &tenant, Answering::Challenge(&f.challenge), &f.code, Channel::Portal).await? {
        Ok(s) => s,
        Err(refusal) => {
            let fail = refusal.to_fail();
            return Ok((fail.status, code_form(&st, &ring, &headers, &tenant, &f.challenge, Some(&fail.message))).into_response());
        }
    };
    let SignedIn { mut tx, keys, user } = signed;
    let token = open_lease(&st, &ring, &keys, &mut tx, &tenant, "user-self", None, Some(&user)).await?;
    tx.commit().await?;
    let mut res = Redirect::to("/portal/me").into_response();
    let (k, v) = set_cookie(&st, SESSION_COOKIE, &token, st.config().portal_session_s);
    res.headers_mut().append(k, v);
    Ok(res)
}

/// Inserts a sliding lease for `role` (bound to `user` for `user-self`), audits the sign-in and
/// returns the signed lease token the session cookie carries.
#[allow(clippy::too_many_arguments)]
pub async fn open_lease(
    st: &AppState,
    ring: &Keyring,
    keys: &TenantKeys,
    tx: &mut crate::store::TenantTx,
    tenant: &str,
    role: &str,
    credential: Option<(i64, String)>,
    user: Option<&crate::store::users::UserRow>,
) -> Result<String, Fail> {
    let cfg = st.config();
    let idle = cfg.portal_idle_s.min(cfg.portal_session_s);
    let event = if role == "user-self" { "PortalSignIn" } else { "PortalDpoSignIn" };
    Ok(lease_for(ring, keys, tx, tenant, role, credential, user, event, cfg.portal_session_s, Some(idle)).await?)
}

/// The lease a right code gives on the wire API (UserLogin): the user's own token, role
/// user-self, for the default lease life, not sliding. Returns the token and its life.
pub async fn open_login_lease(st: &AppState, signed: &mut SignedIn, tenant: &str, ring: &Keyring) -> crate::error::Result<(String, i64)> {
    let life = st.config().lease_default_ttl_s;
    let token =
        lease_for(ring, &signed.keys, &mut signed.tx, tenant, "user-self", None, Some(&signed.user), "UserLogin", life, None).await?;
    Ok((token, life))
}

/// Inserts a lease for `role` lasting `life_s` (sliding by `idle_s` when given), audits it as
/// `event` and returns the signed lease token.
#[allow(clippy::too_many_arguments)]
async fn lease_for(
    ring: &Keyring,
    keys: &TenantKeys,
    tx: &mut crate::store::TenantTx,
    tenant: &str,
    role: &str,
    credential: Option<(i64, String)>,
    user: Option<&crate::store::users::UserRow>,
    event: &str,
    life_s: i64,
    idle_s: Option<i64>,
) -> crate::error::Result<String> {
    let now = now_secs();
    let lease_id = uuid::Uuid::new_v4().to_string();
    let hard = now + life_s;
    let default_actor = if event == "UserLogin" { "api" } else { "portal" };
    let (credential_id, actor) = credential.map_or((None, default_actor.to_string()), |(id, actor)| (Some(id), actor));
    let first = idle_s.map_or(hard, |i| now + i);
    tx.insert_lease(&lease_id, role, credential_id, user.map(|u| u.token.as_str()), first, hard, idle_s).await?;
    let mut draft = Draft::default();
    draft.details.insert("lease_id".into(), lease_id.clone().into());
    draft.details.insert("role".into(), role.into());
    if let Some(u) = user {
        draft.user_token = Some(u.token.clone());
        draft.user_key = Some(crate::records::user_key(keys, u)?);
    }
    audit::append(tx, keys, event, &actor, crate::audit::Outcome::Ok, draft).await?;
    Ok(crate::auth::lease::sign(ring, &crate::auth::lease::claims(&lease_id, tx.tenant_id(), tenant, role, now, hard)))
}

/// GET /portal/demo/outbox: the codes a demo vault would have sent (demo mode only).
pub async fn outbox(State(st): State<AppState>) -> Page {
    if !st.config().portal_demo_outbox {
        return Err(Fail::new(StatusCode::NOT_FOUND, t(Msg::NoSuchPage)));
    }
    let sent = st.portal().sent.lock().unwrap_or_else(|p| p.into_inner());
    let body = html! {
        div.demo role="note" {
            p { (t(Msg::OutboxNote)) }
        }
        @if sent.is_empty() {
            p { (t(Msg::OutboxEmpty)) }
        } @else {
            table {
                caption { (t(Msg::OutboxCaption)) }
                thead { tr { th scope="col" { (t(Msg::Code)) } th scope="col" { (t(Msg::Sent)) } th scope="col" { (t(Msg::Organisation)) } th scope="col" { (t(Msg::To)) } } }
                tbody {
                    @for s in sent.iter() {
                        tr { td { code.code { (s.code) } } td { (super::text::when(s.at)) } td { (s.tenant) } td { (s.to) } }
                    }
                }
            }
        }
        p { a href="/portal/" { (t(Msg::BackToSignIn)) } }
    };
    Ok(page::render(t(Msg::TitleOutbox), None, body))
}
