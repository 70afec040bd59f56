//! The DPO console: a privacy officer signs in with a tenant credential (dpo, tenant-admin or
//! root); the console never keeps that credential but a short sliding lease of role `dpo`, so
//! it can do exactly what the dpo role may (read requests, profiles and audit trails; approve or
//! cancel requests) whatever credential opened it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::page::{self, Nav, DPO_LINKS};
use super::user::{actor_label, end_session, request_label, session, Session};
use super::{api_ok, csrf_token, pre_session, set_cookie, Api, CsrfForm, Fail, Page, Peer, DPO_COOKIE};
use crate::app::AppState;

const CONSOLE_ROLES: &[&str] = &["dpo", "tenant-admin", "root"];

async fn console(st: &AppState, headers: &HeaderMap) -> Result<Option<Session>, Fail> {
    session(st, headers, DPO_COOKIE, "dpo").await
}

fn nav(s: &Session) -> Nav<'_> {
    Nav { links: DPO_LINKS, current: "/portal/dpo", sign_out: "/portal/dpo/signout", csrf: &s.csrf }
}

fn render(s: &Session, title: &str, body: Markup) -> Response {
    page::render(title, Some(&nav(s)), body).into_response()
}

/// GET /portal/dpo: the sign-in form, or the tenant's requests and counts.
pub async fn home(State(st): State<AppState>, Extension(api): Extension<Api>, peer: Peer, headers: HeaderMap) -> Page {
    let Some(s) = console(&st, &headers).await? else {
        return sign_in_form(&st, &headers, None);
    };
    let unlock = api_ok(s.api(&api, &peer, "BulkListUnlock", json!({})).await)?;
    let unlockuuid = unlock["unlockuuid"].clone();
    let list = api_ok(s.api(&api, &peer, "BulkListAllUserRequests", json!({"unlockuuid": unlockuuid, "limit": 200})).await)?;
    let users = api_ok(s.api(&api, &peer, "BulkListAllUsers", json!({"unlockuuid": unlockuuid, "limit": 1})).await)?;
    let rows = list["rows"].as_array().cloned().unwrap_or_default();
    let pending: Vec<&Value> = rows.iter().filter(|r| r["status"] == "pending").collect();
    let body = html! {
        section aria-labelledby="counts" {
            h2 id="counts" { "Organisation " (s.tenant) }
            div.cards {
                div.card { strong id="count-pending" { (pending.len()) } "pending requests" }
                div.card { strong id="count-requests" { (list["total"]) } "requests in all" }
                div.card { strong id="count-users" { (users["total"]) } "user records" }
            }
        }
        h2 { "Pending requests" }
        @if pending.is_empty() {
            p { "No request is waiting for a decision." }
        } @else {
            (request_table("pending", &pending))
        }
        @let decided: Vec<&Value> = rows.iter().filter(|r| r["status"] != "pending").collect();
        @if !decided.is_empty() {
            h2 { "Decided requests" }
            (request_table("decided", &decided))
        }
    };
    Ok(render(&s, "User requests", body))
}

fn request_table(id: &str, rows: &[&Value]) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th scope="col" { "Filed" } th scope="col" { "Request" } th scope="col" { "Status" } th scope="col" { "Open" } } }
            tbody {
                @for r in rows {
                    @let uuid = r["requestuuid"].as_str().unwrap_or_default();
                    tr {
                        td { (page::when(r["creationtime"].as_i64().unwrap_or_default())) }
                        td { (request_label(r["requesttype"].as_str().unwrap_or_default())) }
                        td { (page::plain(&r["status"])) }
                        td { a href=(format!("/portal/dpo/requests/{uuid}")) { "Review " span.visually-hidden { (uuid) } } }
                    }
                }
            }
        }
    }
}

fn sign_in_form(st: &AppState, headers: &HeaderMap, error: Option<&str>) -> Page {
    let ring = st.vault().keyring()?;
    let (pre, new) = pre_session(st, headers);
    let tenant = super::host_tenant(headers).unwrap_or_default();
    let body = html! {
        @if let Some(e) = error { p role="alert" { (e) } }
        p { "For the organisation's privacy officer. Sign in with an access token of the dpo, tenant-admin or root role; the console keeps only a short-lived dpo session, never the token." }
        form method="post" action="/portal/dpo/signin" {
            input type="hidden" name="csrf" value=(csrf_token(&ring, &pre));
            label for="tenant" { "Organisation" }
            input type="text" id="tenant" name="tenant" value=(tenant) required autocomplete="organization";
            label for="token" { "Access token" }
            input type="password" id="token" name="token" required autocomplete="off";
            button type="submit" { "Sign in" }
        }
    };
    let status = if error.is_some() { StatusCode::FORBIDDEN } else { StatusCode::OK };
    Ok(super::with_pre_cookie(st, (status, page::render("Privacy officer console", None, body)).into_response(), &pre, new))
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    token: String,
}

/// POST /portal/dpo/signin: checks the credential like the API does (lock-outs included) and
/// opens a dpo lease for the console.
pub async fn sign_in(State(st): State<AppState>, headers: HeaderMap, peer: Peer, Form(f): Form<SignInForm>) -> Page {
    let ring = st.vault().keyring()?;
    super::check_pre_form(&st, &ring, &headers, &f.csrf)?;
    let tenant = super::tenant_name(&f.tenant)?;
    st.limits().check_blocked(peer.ip())?;
    let refused = "That organisation and access token do not open the console.";
    let Some(mut tx) = st.db().tenant_tx_by_name(&tenant).await? else {
        st.limits().record_failure(peer.ip());
        return sign_in_form(&st, &headers, Some(refused));
    };
    let keys = crate::custody::rotation::tenant_keys(st.vault().tenant_keks(), &ring, &mut tx).await?;
    let who = crate::auth::verify(&mut tx, &ring, &tenant, f.token.trim()).await?;
    let Some(who) = who.filter(|w| CONSOLE_ROLES.contains(&w.role.as_str())) else {
        let mut draft = crate::audit::Draft::default();
        draft.details.insert("message".into(), "portal console sign-in refused".into());
        crate::audit::append(&mut tx, &keys, "PortalDpoSignIn", "anonymous", "denied", draft).await?;
        tx.commit().await?;
        st.limits().record_failure(peer.ip());
        return sign_in_form(&st, &headers, Some(refused));
    };
    let token = super::signin::open_lease(&st, &ring, &keys, &mut tx, &tenant, "dpo", Some((who.credential_id, who.actor())), None).await?;
    tx.commit().await?;
    let mut res = Redirect::to("/portal/dpo").into_response();
    let (k, v) = set_cookie(&st, DPO_COOKIE, &token, st.config().portal_session_s);
    res.headers_mut().append(k, v);
    Ok(res)
}

pub async fn sign_out(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Page {
    end_session(&st, &headers, DPO_COOKIE, "dpo", &f.csrf, "/portal/dpo").await
}

/// Actor labels are written for the data subject; the console names the subject in the third person.
fn for_dpo(label: String) -> String {
    if label == "You" {
        "The data subject".into()
    } else {
        label
    }
}

fn valid_uuid(uuid: &str) -> Result<&str, Fail> {
    uuid::Uuid::parse_str(uuid).map(|_| uuid).map_err(|_| Fail::new(StatusCode::NOT_FOUND, "There is no such request."))
}

/// The change a request proposes, shown against the current profile.
fn diff(kind: &str, change: &Value, current: Option<&Value>) -> Markup {
    let cur = |path: &str| -> String {
        let key = path.trim_start_matches('/').replace("~1", "/").replace("~0", "~");
        current.and_then(|p| p.get(&key)).map(page::plain).unwrap_or_default()
    };
    html! {
        @match kind {
            "update" => {
                @let proposed = change["profile"].as_object().cloned().unwrap_or_default();
                @let old = current.and_then(Value::as_object).cloned().unwrap_or_default();
                table id="diff" {
                    caption { "Proposed profile against the current one" }
                    thead { tr { th scope="col" { "Field" } th scope="col" { "Current" } th scope="col" { "Proposed" } } }
                    tbody {
                        @for key in old.keys().chain(proposed.keys().filter(|k| !old.contains_key(*k))) {
                            @let (a, b) = (old.get(key).map(page::plain).unwrap_or_default(), proposed.get(key).map(page::plain).unwrap_or_default());
                            tr {
                                th scope="row" { (key) }
                                @if a == b { td { (a) } td { "(unchanged)" } } @else { td { del { (a) } } td { ins { (b) } } }
                            }
                        }
                    }
                }
            }
            "patch" => {
                table id="diff" {
                    caption { "Every operation of the proposed JSON patch, against the current profile" }
                    thead { tr { th scope="col" { "Operation" } th scope="col" { "Field" } th scope="col" { "Current" } th scope="col" { "Proposed" } } }
                    tbody {
                        @for op in change["patch"].as_array().cloned().unwrap_or_default() {
                            @let path = op["path"].as_str().unwrap_or_default().to_string();
                            @let verb = op["op"].as_str().unwrap_or_default().to_string();
                            tr {
                                td { (verb) }
                                th scope="row" { code { (path) } @if let Some(from) = op["from"].as_str() { " from " code { (from) } } }
                                td { del { (cur(&path)) } }
                                td {
                                    @match verb.as_str() {
                                        "remove" => { "(removed)" }
                                        "move" | "copy" => { "(the value at " code { (page::plain(&op["from"])) } ")" }
                                        "test" => { "(must equal) " (page::plain(&op["value"])) }
                                        _ => { ins { (page::plain(&op["value"])) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            "delete" => { p.notice { strong { "Erase this user's record" } " (right to be forgotten): profile, versions, app data, sessions, consents and files; the audit trail stays but its details become unreadable." } }
            "agreement-cancel" => { p.notice { "Withdraw the consent " strong { (page::plain(&change["brief"])) } "." } }
            _ => { pre { (serde_json::to_string_pretty(change).unwrap_or_default()) } }
        }
    }
}

/// GET /portal/dpo/requests/{uuid}: the request, its change as a diff, the decision form and
/// the user's audit trail.
pub async fn request(
    State(st): State<AppState>,
    Extension(api): Extension<Api>,
    peer: Peer,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Page {
    let Some(s) = console(&st, &headers).await? else { return Ok(Redirect::to("/portal/dpo").into_response()) };
    let uuid = valid_uuid(&uuid)?;
    let (status, got) = s.api(&api, &peer, "UserRequestGet", json!({"requestuuid": uuid})).await;
    if status == StatusCode::NOT_FOUND {
        let body = html! {
            p role="status" { "This request, or the user it concerns, no longer exists: an approved erasure removes the user's record and its requests." }
            p { a href="/portal/dpo" { "Back to the requests" } }
        };
        return Ok((StatusCode::NOT_FOUND, render(&s, "Request not found", body)).into_response());
    }
    let r = api_ok((status, got))?["request"].clone();
    let token = r["token"].as_str().unwrap_or_default().to_string();
    let own = json!({"mode": "token", "identity": token});
    let current = api_ok(s.api(&api, &peer, "UserGet", own.clone()).await)?;
    let mut trail = own.clone();
    trail["limit"] = 50.into();
    let events = api_ok(s.api(&api, &peer, "AuditListUserEvents", trail).await)?;
    let kind = r["requesttype"].as_str().unwrap_or_default();
    let body = html! {
        dl {
            dt { "Request" } dd { (request_label(kind)) }
            dt { "Status" } dd id="request-status" { (page::plain(&r["status"])) }
            dt { "Filed" } dd { (page::when(r["creationtime"].as_i64().unwrap_or_default())) " by " (for_dpo(actor_label(r["filedby"].as_str().unwrap_or_default()))) }
            dt { "User" } dd { code { (token) } }
            @if !r["reason"].is_null() { dt { "Reason" } dd { (page::plain(&r["reason"])) } }
        }
        h2 { "Change" }
        (diff(kind, &r["change"], Some(&current["profile"])))
        // A profile change filed against an older version of the record cannot be approved (the
        // vault refuses it): say so before the officer tries, and offer only cancelling.
        @let stale = r["version"].as_i64().is_some_and(|filed| Some(filed) != current["version"].as_i64());
        @if r["status"] == "pending" {
            h2 { "Decision" }
            @if stale {
                p role="alert" id="stale" {
                    "The record changed after this request was filed (version " (r["version"]) ", now " (current["version"])
                    "), so the diff above is against a newer profile than the person saw. Cancel it; the person can file it again."
                }
            }
            form method="post" action=(format!("/portal/dpo/requests/{uuid}/decide")) {
                input type="hidden" name="csrf" value=(s.csrf);
                label for="reason" { "Reason (recorded with the decision)" }
                textarea id="reason" name="reason" rows="3" maxlength="1024" {}
                @if !stale {
                    button type="submit" name="decision" value="approve" { "Approve" }
                    " "
                }
                button.secondary type="submit" name="decision" value="cancel" { "Cancel request" }
            }
        }
        h2 { "The user's audit trail" }
        table id="trail" {
            thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Who" } th scope="col" { "Result" } } }
            tbody {
                @for e in events["rows"].as_array().cloned().unwrap_or_default() {
                    tr {
                        td { (page::plain(&e["timestamp"])) }
                        td { (page::plain(&e["eventtype"])) }
                        td { (for_dpo(actor_label(e["actor"].as_str().unwrap_or_default()))) }
                        td { (page::plain(&e["outcome"])) }
                    }
                }
            }
        }
        p { a href="/portal/dpo" { "Back to the requests" } }
    };
    Ok(render(&s, "Review request", body))
}

#[derive(Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

/// POST /portal/dpo/requests/{uuid}/decide: approve (the change is applied) or cancel.
pub async fn decide(
    State(st): State<AppState>,
    Extension(api): Extension<Api>,
    peer: Peer,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    Form(f): Form<DecideForm>,
) -> Page {
    let Some(s) = console(&st, &headers).await? else { return Ok(Redirect::to("/portal/dpo").into_response()) };
    s.check_form(&st, &headers, &f.csrf)?;
    let uuid = valid_uuid(&uuid)?;
    let endpoint = match f.decision.as_str() {
        "approve" => "UserRequestApprove",
        "cancel" => "UserRequestCancel",
        _ => return Err(Fail::new(StatusCode::BAD_REQUEST, "Choose approve or cancel.")),
    };
    let mut body = json!({"requestuuid": uuid});
    if !f.reason.trim().is_empty() {
        body["reason"] = f.reason.trim().into();
    }
    api_ok(s.api(&api, &peer, endpoint, body).await)?;
    let done = if endpoint == "UserRequestApprove" { "Approved: the change is applied." } else { "Cancelled: nothing was changed." };
    let body = html! {
        p.notice role="status" id="decision" { (done) }
        p { a href=(format!("/portal/dpo/requests/{uuid}")) { "See the request" } " · " a href="/portal/dpo" { "Back to the requests" } }
    };
    Ok(render(&s, "Decision recorded", body))
}
