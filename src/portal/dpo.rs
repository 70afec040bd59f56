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
use super::text::{event_label, field_label, outcome_label, status_label, t, tf, value_text, when, when_rfc3339, Msg};
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
    page::render(title, Some(&nav(s)), body)
}

/// GET /portal/dpo: the sign-in form, or the tenant's requests and counts.
pub async fn home(State(st): State<AppState>, Extension(api): Extension<Api>, peer: Peer, headers: HeaderMap) -> Page {
    let Some(s) = console(&st, &headers).await? else {
        return sign_in_form(&st, &headers, None).await;
    };
    let unlock = api_ok(s.api(&api, &peer, "BulkListUnlock", json!({})).await)?;
    let unlockuuid = unlock["unlockuuid"].clone();
    let list = api_ok(s.api(&api, &peer, "BulkListAllUserRequests", json!({"unlockuuid": unlockuuid, "limit": 200})).await)?;
    let users = api_ok(s.api(&api, &peer, "BulkListAllUsers", json!({"unlockuuid": unlockuuid, "limit": 1})).await)?;
    let rows = list["rows"].as_array().cloned().unwrap_or_default();
    let pending: Vec<&Value> = rows.iter().filter(|r| r["status"] == "pending").collect();
    let body = html! {
        section aria-labelledby="counts" {
            h2 id="counts" { (tf(Msg::OrganisationNamed, &[&s.tenant])) }
            div.cards {
                div.card { strong id="count-pending" { (pending.len()) } (t(Msg::CountPending)) }
                div.card { strong id="count-requests" { (list["total"]) } (t(Msg::CountAll)) }
                div.card { strong id="count-users" { (users["total"]) } (t(Msg::CountUsers)) }
            }
        }
        h2 { (t(Msg::PendingRequests)) }
        @if pending.is_empty() {
            p { (t(Msg::NoPending)) }
        } @else {
            (request_table("pending", &pending))
        }
        @let decided: Vec<&Value> = rows.iter().filter(|r| r["status"] != "pending").collect();
        @if !decided.is_empty() {
            h2 { (t(Msg::DecidedRequests)) }
            (request_table("decided", &decided))
        }
    };
    Ok(render(&s, t(Msg::TitleUserRequests), body))
}

fn request_table(id: &str, rows: &[&Value]) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th scope="col" { (t(Msg::Filed)) } th scope="col" { (t(Msg::Request)) } th scope="col" { (t(Msg::Status)) } th scope="col" { (t(Msg::Open)) } } }
            tbody {
                @for r in rows {
                    @let uuid = r["requestuuid"].as_str().unwrap_or_default();
                    tr {
                        td { (when(r["creationtime"].as_i64().unwrap_or_default())) }
                        td { (request_label(r["requesttype"].as_str().unwrap_or_default())) }
                        td { (status_label(r["status"].as_str().unwrap_or_default())) }
                        td { a href=(format!("/portal/dpo/requests/{uuid}")) { (t(Msg::Review)) " " span.visually-hidden { (uuid) } } }
                    }
                }
            }
        }
    }
}

async fn sign_in_form(st: &AppState, headers: &HeaderMap, error: Option<&str>) -> Page {
    let ring = st.vault().keyring()?;
    let (pre, new) = pre_session(st, headers);
    let tenant = super::host_tenant(headers);
    if let Some(tenant) = &tenant {
        super::name_org(st, tenant).await;
    }
    let body = html! {
        @if let Some(e) = error { p role="alert" { (e) } }
        p { (t(Msg::ConsoleIntro)) }
        form method="post" action="/portal/dpo/signin" {
            input type="hidden" name="csrf" value=(csrf_token(&ring, &pre));
            @match &tenant {
                Some(tenant) => { input type="hidden" name="tenant" value=(tenant); }
                None => {
                    label for="tenant" { (t(Msg::Organisation)) }
                    input type="text" id="tenant" name="tenant" required autocomplete="organization";
                }
            }
            label for="token" { (t(Msg::AccessToken)) }
            input type="password" id="token" name="token" required autocomplete="off";
            button type="submit" { (t(Msg::TitleSignIn)) }
        }
    };
    let status = if error.is_some() { StatusCode::FORBIDDEN } else { StatusCode::OK };
    Ok(super::with_pre_cookie(st, (status, page::render(t(Msg::TitleConsole), None, body)).into_response(), &pre, new))
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
    let refused = t(Msg::ConsoleRefused);
    let Some(mut tx) = st.db().tenant_tx_by_name(&tenant).await? else {
        st.limits().record_failure(peer.ip());
        return sign_in_form(&st, &headers, Some(refused)).await;
    };
    let keys = crate::custody::rotation::tenant_keys(st.vault().tenant_keks(), &ring, &mut tx).await?;
    let who = crate::auth::verify(&mut tx, &ring, st.verified(), &tenant, f.token.trim()).await?;
    let Some(who) = who.filter(|w| CONSOLE_ROLES.contains(&w.role.as_str())) else {
        let mut draft = crate::audit::Draft::default();
        draft.details.insert("message".into(), "portal console sign-in refused".into());
        crate::audit::append(&mut tx, &keys, "PortalDpoSignIn", "anonymous", crate::audit::Outcome::Denied, draft).await?;
        tx.commit().await?;
        st.limits().record_failure(peer.ip());
        return sign_in_form(&st, &headers, Some(refused)).await;
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
    if label == t(Msg::ActorYou) {
        t(Msg::ActorSubject).into()
    } else {
        label
    }
}

fn valid_uuid(uuid: &str) -> Result<&str, Fail> {
    uuid::Uuid::parse_str(uuid).map(|_| uuid).map_err(|_| Fail::new(StatusCode::NOT_FOUND, t(Msg::NoSuchRequest)))
}

/// A JSON pointer of one top-level profile field (`/first_name`) as that field's key.
fn pointer_key(path: &str) -> String {
    path.trim_start_matches('/').replace("~1", "/").replace("~0", "~")
}

/// The change a request proposes, field by field against the current profile, in the
/// organisation's labels: what a field holds now and what it would hold.
fn diff(kind: &str, change: &Value, current: Option<&Value>) -> Markup {
    let old = current.and_then(Value::as_object).cloned().unwrap_or_default();
    let now_of = |key: &str| old.get(key).map(value_text).unwrap_or_default();
    // (field, current, proposed); `None` proposed: removed.
    let rows: Vec<(String, String, Option<String>)> = match kind {
        "update" => {
            let proposed = change["profile"].as_object().cloned().unwrap_or_default();
            old.keys()
                .chain(proposed.keys().filter(|k| !old.contains_key(*k)))
                .map(|k| (k.clone(), now_of(k), proposed.get(k).filter(|v| !v.is_null()).map(value_text)))
                .collect()
        }
        "patch" => change["patch"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|op| {
                let key = pointer_key(op["path"].as_str().unwrap_or_default());
                let proposed = match op["op"].as_str().unwrap_or_default() {
                    "remove" => None,
                    "move" | "copy" => Some(tf(Msg::CopiedFrom, &[&field_label(&pointer_key(op["from"].as_str().unwrap_or_default()))])),
                    "test" => Some(tf(Msg::MustEqual, &[&value_text(&op["value"])])),
                    _ => Some(value_text(&op["value"])),
                };
                (key.clone(), now_of(&key), proposed)
            })
            .collect(),
        _ => Vec::new(),
    };
    html! {
        @match kind {
            "update" | "patch" => {
                table id="diff" {
                    caption { (t(Msg::DiffCaption)) }
                    thead { tr { th scope="col" { (t(Msg::Field)) } th scope="col" { (t(Msg::Current)) } th scope="col" { (t(Msg::Proposed)) } } }
                    tbody {
                        @for (key, a, b) in &rows {
                            tr {
                                th scope="row" { (field_label(key)) }
                                @match b {
                                    Some(b) if b == a => { td.value { (a) } td { (t(Msg::Unchanged)) } }
                                    Some(b) => { td.value { del { (a) } } td.value { ins { (b) } } }
                                    None => { td.value { del { (a) } } td { (t(Msg::Removed)) } }
                                }
                            }
                        }
                    }
                }
            }
            "delete" => { p.notice { (t(Msg::EraseRecord)) } }
            "agreement-cancel" => { p.notice { (tf(Msg::WithdrawNamed, &[&value_text(&change["brief"])])) } }
            _ => { p.notice { (t(Msg::OtherChange)) } (value_text(change)) }
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
            p role="status" { (t(Msg::RequestGone)) }
            p { a href="/portal/dpo" { (t(Msg::BackToRequests)) } }
        };
        return Ok((StatusCode::NOT_FOUND, render(&s, t(Msg::TitleRequestNotFound), body)).into_response());
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
            dt { (t(Msg::Request)) } dd { (request_label(kind)) }
            dt { (t(Msg::Status)) } dd id="request-status" data-status=(page::plain(&r["status"])) { (status_label(r["status"].as_str().unwrap_or_default())) }
            dt { (t(Msg::Filed)) } dd { (tf(Msg::FiledBy, &[&when(r["creationtime"].as_i64().unwrap_or_default()), &for_dpo(actor_label(r["filedby"].as_str().unwrap_or_default()))])) }
            dt { (t(Msg::User)) } dd { code { (token) } }
            @if !r["reason"].is_null() { dt { (t(Msg::Reason)) } dd { (page::plain(&r["reason"])) } }
        }
        h2 { (t(Msg::Change)) }
        (diff(kind, &r["change"], Some(&current["profile"])))
        // A profile change filed against an older version of the record cannot be approved (the
        // vault refuses it): say so before the officer tries, and offer only cancelling.
        @let stale = r["version"].as_i64().is_some_and(|filed| Some(filed) != current["version"].as_i64());
        @if r["status"] == "pending" {
            h2 { (t(Msg::Decision)) }
            @if stale {
                p role="alert" id="stale" { (tf(Msg::Stale, &[&page::plain(&r["version"]), &page::plain(&current["version"])])) }
            }
            form method="post" action=(format!("/portal/dpo/requests/{uuid}/decide")) {
                input type="hidden" name="csrf" value=(s.csrf);
                label for="reason" { (t(Msg::ReasonRecorded)) }
                textarea id="reason" name="reason" rows="3" maxlength="1024" {}
                @if !stale {
                    button type="submit" name="decision" value="approve" { (t(Msg::Approve)) }
                    " "
                }
                button.secondary type="submit" name="decision" value="cancel" { (t(Msg::CancelRequest)) }
            }
        }
        h2 { (t(Msg::AuditTrail)) }
        table id="trail" {
            thead { tr { th scope="col" { (t(Msg::When)) } th scope="col" { (t(Msg::What)) } th scope="col" { (t(Msg::Who)) } th scope="col" { (t(Msg::Result)) } } }
            tbody {
                @for e in events["rows"].as_array().cloned().unwrap_or_default() {
                    tr {
                        td { (when_rfc3339(e["timestamp"].as_str().unwrap_or_default())) }
                        td { (event_label(e["eventtype"].as_str().unwrap_or_default())) }
                        td { (for_dpo(actor_label(e["actor"].as_str().unwrap_or_default()))) }
                        td { (outcome_label(e["outcome"].as_str().unwrap_or_default())) }
                    }
                }
            }
        }
        p { a href="/portal/dpo" { (t(Msg::BackToRequests)) } }
    };
    Ok(render(&s, t(Msg::TitleReview), body))
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
        _ => return Err(Fail::new(StatusCode::BAD_REQUEST, t(Msg::ChooseDecision))),
    };
    let mut body = json!({"requestuuid": uuid});
    if !f.reason.trim().is_empty() {
        body["reason"] = f.reason.trim().into();
    }
    api_ok(s.api(&api, &peer, endpoint, body).await)?;
    let done = t(if endpoint == "UserRequestApprove" { Msg::Approved } else { Msg::Cancelled });
    let body = html! {
        p.notice role="status" id="decision" { (done) }
        p { a href=(format!("/portal/dpo/requests/{uuid}")) { (t(Msg::SeeRequest)) } " · " a href="/portal/dpo" { (t(Msg::BackToRequests)) } }
    };
    Ok(render(&s, t(Msg::TitleDecision), body))
}
