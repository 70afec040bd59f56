//! CaptchaCreate, UserPrelogin and UserLogin: the passwordless sign-in of Databunker Pro's API,
//! on the privacy portal's machinery (`portal::signin`: the same codes, limits and audit). An
//! app shows the captcha, the person types its digits and their email or phone, a 6-digit code
//! goes to them through the notification webhook, and the code they type back buys a short
//! user-self xtoken for their own record. None of the three needs a credential; the tenant is
//! the request's (`X-Bunker-Tenant`, subdomain, or the main tenant).
//!
//! The captcha is stateless: its id carries its digits sealed (AES-GCM under a key derived from
//! the master key, bound to the tenant, an expiry and a nonce); it lives [`CAPTCHA_TTL_S`], so
//! within that time it can be presented again. The real bound on guessing is the code limits (5 codes per identity and
//! address per 10 minutes, 5 tries per code, 10 wrong codes per user per hour) and the per
//! address limit shared with the portal.

use std::fmt::Write as _;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{Body, NoArgs};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::blind::IndexMode;
use crate::keys::keyring::Keyring;
use crate::portal::signin::{self, Answering, Channel, Refusal};
use crate::store::now_secs;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/CaptchaCreate", post(captcha_create))
        .route("/v2/UserPrelogin", post(user_prelogin))
        .route("/v2/UserLogin", post(user_login))
}

/// How long a captcha can be answered.
pub const CAPTCHA_TTL_S: i64 = 120;
const CAPTCHA_DIGITS: usize = 6;

#[derive(Deserialize)]
struct PreloginReq {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    identity: String,
    /// The digits the person read off the captcha.
    #[serde(default)]
    code: String,
    /// The captcha's id, as CaptchaCreate gave it.
    #[serde(default)]
    captchacode: String,
}

#[derive(Deserialize)]
struct LoginReq {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    identity: String,
    /// The code that was sent (by email too: the SDKs call it smscode).
    #[serde(default)]
    smscode: String,
}

/// Sign-in works by email or phone only (the code has to reach the person).
fn login_mode(mode: &str) -> Result<IndexMode> {
    match mode.trim().to_ascii_lowercase().as_str() {
        "email" => Ok(IndexMode::Email),
        "phone" => Ok(IndexMode::Phone),
        _ => Err(Error::bad("mode must be email or phone")),
    }
}

/// The associated data binding a captcha's sealed digits to its tenant, expiry and nonce.
fn captcha_aad(tenant: &str, expiry: i64, nonce: &str) -> Vec<u8> {
    format!("captcha/{tenant}/{expiry}/{nonce}").into_bytes()
}

/// A captcha id: `expiry.nonce.sealed`, the digits sealed (AES-GCM, under a key derived from
/// the master key) so the id can be drawn again (`/v1/captcha/:code`) but not read.
fn captcha_id(ring: &Keyring, tenant: &str, digits: &str, expiry: i64, nonce: &str) -> String {
    let sealed = crate::keys::envelope::seal(&ring.derived("captcha"), &captcha_aad(tenant, expiry, nonce), digits.as_bytes());
    format!("{expiry}.{nonce}.{}", hex::encode(sealed))
}

/// The digits of the captcha `id` for `tenant` while it is in time.
fn captcha_digits(ring: &Keyring, tenant: &str, id: &str, now: i64) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let mut parts = id.trim().splitn(3, '.');
    let (Some(expiry), Some(nonce), Some(sealed)) = (parts.next(), parts.next(), parts.next()) else { return None };
    let expiry = expiry.parse::<i64>().ok().filter(|e| *e > now)?;
    let sealed = hex::decode(sealed).ok()?;
    crate::keys::envelope::open(&ring.derived("captcha"), &captcha_aad(tenant, expiry, nonce), &sealed).ok()
}

/// Whether `typed` are the digits of the captcha `id` for `tenant`, still in time.
fn captcha_holds(ring: &Keyring, tenant: &str, id: &str, typed: &str, now: i64) -> bool {
    captcha_digits(ring, tenant, id, now).is_some_and(|d| bool::from(subtle::ConstantTimeEq::ct_eq(d.as_slice(), typed.trim().as_bytes())))
}

/// The image of a captcha id still in time (a fresh drawing each time), for `/v1/captcha/:code`.
pub fn captcha_image(st: &AppState, tenant: &str, id: &str) -> Result<String> {
    let ring = st.vault().keyring()?;
    let digits = captcha_digits(&ring, tenant, id, now_secs()).ok_or_else(|| Error::bad("bad code"))?;
    let digits =
        std::str::from_utf8(&digits).ok().filter(|d| d.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| Error::bad("bad code"))?;
    Ok(captcha_svg(digits))
}

/// The digits drawn as seven-segment strokes with jitter and crossing lines: no text for a
/// page to copy, readable by a person.
fn captcha_svg(digits: &str) -> String {
    // Segments a..g as (x1, y1, x2, y2) in a 20x36 cell.
    const SEG: [(i32, i32, i32, i32); 7] =
        [(2, 2, 18, 2), (18, 2, 18, 18), (18, 18, 18, 34), (2, 34, 18, 34), (2, 18, 2, 34), (2, 2, 2, 18), (2, 18, 18, 18)];
    const ON: [u8; 10] = [0x3f, 0x06, 0x5b, 0x4f, 0x66, 0x6d, 0x7d, 0x07, 0x7f, 0x6f];
    let mut rng = rand::rngs::OsRng;
    let mut svg = String::from(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="60" viewBox="0 0 200 60"><rect width="200" height="60" fill="#f4f4f4"/>"##,
    );
    for (i, d) in digits.bytes().enumerate() {
        let mask = ON[usize::from(d - b'0')];
        let (ox, oy) = (10 + i as i32 * 30 + rng.gen_range(-2..=2), 12 + rng.gen_range(-4..=4));
        for (s, (x1, y1, x2, y2)) in SEG.iter().enumerate() {
            if mask & (1 << s) != 0 {
                let j = |v: i32, r: &mut rand::rngs::OsRng| v + r.gen_range(-1..=1);
                let _ = write!(
                    svg,
                    r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#222" stroke-width="3" stroke-linecap="round"/>"##,
                    ox + j(*x1, &mut rng),
                    oy + j(*y1, &mut rng),
                    ox + j(*x2, &mut rng),
                    oy + j(*y2, &mut rng)
                );
            }
        }
    }
    for _ in 0..4 {
        let _ = write!(
            svg,
            r##"<line x1="0" y1="{}" x2="200" y2="{}" stroke="#999" stroke-width="1"/>"##,
            rng.gen_range(5..55),
            rng.gen_range(5..55)
        );
    }
    svg.push_str("</svg>");
    svg
}

async fn captcha_create(State(st): State<AppState>, claimed: Claimed, Body(_): Body<NoArgs>) -> Result<Json<Value>> {
    let ring = st.vault().keyring()?;
    let mut rng = rand::rngs::OsRng;
    let digits: String = (0..CAPTCHA_DIGITS).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect();
    let expiry = now_secs() + CAPTCHA_TTL_S;
    let nonce = hex::encode(rng.gen::<[u8; 12]>());
    let id = captcha_id(&ring, &claimed.tenant, &digits, expiry, &nonce);
    let image = base64::engine::general_purpose::STANDARD.encode(captcha_svg(&digits));
    Ok(Json(json!({
        "status": "ok",
        "captchacode": id,
        "captchaimage": format!("data:image/svg+xml;base64,{image}"),
        "expires_in": CAPTCHA_TTL_S,
    })))
}

/// The wire API's words for a refused step.
fn refused(r: Refusal) -> Error {
    match r {
        Refusal::Identity => Error::bad("identity must be an email address or a phone number"),
        Refusal::TooManyCodes => Error::TooManyRequests("too many codes were asked for this identity; wait 10 minutes".into()),
        Refusal::TooManyWrong => Error::TooManyRequests("too many wrong codes for this user; wait an hour".into()),
        Refusal::Unknown | Refusal::Unusable | Refusal::Wrong { .. } => Error::Forbidden("the code is wrong or has expired".into()),
    }
}

fn address_limited(st: &AppState, claimed: &Claimed) -> Result<()> {
    if st.portal().address_allowed(claimed.ip) {
        Ok(())
    } else {
        Err(Error::TooManyRequests("too many sign-in attempts from this network; wait a minute".into()))
    }
}

/// Sends a code when the captcha holds; the answer is the same whether anyone has that email
/// address or phone number.
async fn user_prelogin(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PreloginReq>) -> Result<Json<Value>> {
    let ring = st.vault().keyring()?;
    let mode = login_mode(&req.mode)?;
    if req.identity.trim().is_empty() || req.captchacode.trim().is_empty() || req.code.trim().is_empty() {
        return Err(Error::bad("identity, code (the captcha's digits) and captchacode are required"));
    }
    address_limited(&st, &claimed)?;
    if !captcha_holds(&ring, &claimed.tenant, &req.captchacode, &req.code, now_secs()) {
        return Err(Error::bad("captcha-error: the captcha answer is wrong or the captcha has expired"));
    }
    signin::issue_code(&st, &ring, &claimed.tenant, mode, &req.identity, claimed.ip, Channel::Api).await?.map_err(refused)?;
    Ok(Json(json!({"status": "ok", "result": "done"})))
}

/// A right code for the identity's newest challenge: a user-self xtoken for that user.
async fn user_login(State(st): State<AppState>, claimed: Claimed, Body(req): Body<LoginReq>) -> Result<Json<Value>> {
    let ring = st.vault().keyring()?;
    let mode = login_mode(&req.mode)?;
    if req.identity.trim().is_empty() || req.smscode.trim().is_empty() {
        return Err(Error::bad("identity and smscode are required"));
    }
    address_limited(&st, &claimed)?;
    let answering = Answering::Latest { mode, identity: &req.identity };
    let mut signed = signin::redeem_code(&st, &ring, &claimed.tenant, answering, &req.smscode, Channel::Api).await?.map_err(refused)?;
    let (xtoken, ttl) = signin::open_login_lease(&st, &mut signed, &claimed.tenant, &ring).await?;
    let token = signed.user.token.clone();
    signed.tx.commit().await?;
    Ok(Json(json!({"status": "ok", "xtoken": xtoken, "token": token, "ttl": ttl})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_captcha_is_drawn_not_written() {
        let svg = captcha_svg("012345");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        for d in ["012345", "0", "5"] {
            assert!(!svg.contains(&format!(">{d}<")), "digits are never text");
        }
        assert!(svg.matches("<line").count() > 6 * 2);
    }
}
