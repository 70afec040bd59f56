//! The signed-in data subject's pages. Every page names the user only through the session: the
//! lease behind the cookie is bound to one record, and every API call carries that lease, so no
//! form field or URL can point the portal at anyone else's data.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::page::{self, Nav, USER_LINKS};
use super::text::{event_label, field_label, outcome_label, status_label, t, tf, value_text, when, when_rfc3339, Msg};
use super::{api_ok, call_api, check_csrf, clear_cookie, csrf_token, Api, CsrfForm, Fail, Page, Peer, SESSION_COOKIE};
use crate::app::AppState;
use crate::store::now_secs;

/// A live portal session (of a data subject, or of the DPO console).
pub struct Session {
    pub tenant: String,
    pub tenant_id: i64,
    pub jwt: String,
    pub lease_id: String,
    pub user_token: Option<String>,
    pub csrf: String,
}

/// The session behind cookie `name` if its lease is live and of `role`; `None` otherwise.
pub async fn session(st: &AppState, headers: &HeaderMap, name: &str, role: &str) -> Result<Option<Session>, Fail> {
    let Some(jwt) = super::cookie(st, headers, name) else { return Ok(None) };
    let ring = st.vault().keyring()?;
    // The claims name the tenant; the API's own lease check does the rest (tenant, live lease,
    // a user-self lease bound to a record and no other).
    let Some(claims) = crate::auth::lease::verify(&ring, jwt) else { return Ok(None) };
    let mut tx = st.db().tenant_tx(claims.tid).await?;
    let who = crate::auth::verify_lease(&mut tx, &ring, &claims.ten, jwt).await?;
    tx.commit().await?;
    let Some(who) = who.filter(|w| w.role == role) else { return Ok(None) };
    super::name_org(st, &who.tenant_name).await;
    Ok(Some(Session {
        tenant: who.tenant_name,
        tenant_id: who.tenant_id,
        csrf: csrf_token(&ring, jwt),
        jwt: jwt.to_string(),
        lease_id: who.lease_id.unwrap_or_default(),
        user_token: who.self_user,
    }))
}

/// A data subject's session, or a redirect to sign-in that drops a stale cookie.
async fn me(st: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    match session(st, headers, SESSION_COOKIE, "user-self").await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            let mut res = Redirect::to("/portal/").into_response();
            let (k, v) = clear_cookie(st, SESSION_COOKIE);
            res.headers_mut().append(k, v);
            Err(res)
        }
        Err(f) => Err(f.into_response()),
    }
}

macro_rules! signed_in {
    ($st:expr, $headers:expr) => {
        match me(&$st, &$headers).await {
            Ok(s) => s,
            Err(res) => return Ok(res),
        }
    };
}

impl Session {
    /// Refuses a form of this session without its CSRF token (or from another site).
    pub fn check_form(&self, st: &AppState, headers: &HeaderMap, csrf: &str) -> Result<(), Fail> {
        check_csrf(&*st.vault().keyring()?, headers, Some(&self.jwt), csrf)
    }

    fn own(&self) -> Value {
        json!({"mode": "token", "identity": self.user_token.as_deref().unwrap_or_default()})
    }

    fn with_own(&self, extra: Value) -> Value {
        let mut v = self.own();
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    /// Calls a v2 endpoint in-process with this session's lease token.
    pub async fn api(&self, api: &Api, peer: &Peer, endpoint: &str, body: Value) -> (StatusCode, Value) {
        call_api(api, peer, &self.tenant, &self.jwt, endpoint, body).await
    }

    /// Calls `direct` and, where the tenant's policy does not let the data subject change this
    /// directly (403), files `request` for the DPO instead. Returns the request uuid if filed.
    async fn direct_or_request(&self, api: &Api, peer: &Peer, direct: &str, request: &str, body: Value) -> Result<Option<String>, Fail> {
        let (status, v) = self.api(api, peer, direct, body.clone()).await;
        if status == StatusCode::FORBIDDEN {
            let v = api_ok(self.api(api, peer, request, body).await)?;
            return Ok(Some(v["requestuuid"].as_str().unwrap_or_default().to_string()));
        }
        api_ok((status, v))?;
        Ok(None)
    }

    fn nav<'a>(&'a self, current: &'a str) -> Nav<'a> {
        Nav { links: USER_LINKS, current, sign_out: "/portal/signout", csrf: &self.csrf }
    }

    fn page(&self, title: &str, current: &str, body: Markup) -> Response {
        page::render(title, Some(&self.nav(current)), body)
    }
}

/// Profile fields that are lookup identities (and so sign-in identities).
const SIGN_IN_FIELDS: &[&str] = &["email", "phone", "login"];

/// The most app-data entries a page or an export reads.
const MAX_APPS: usize = 100;

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null)
}

/// GET /portal/me: the profile, an edit form for its plain fields, and the user's requests.
pub async fn profile(State(st): State<AppState>, Extension(api): Extension<Api>, peer: Peer, headers: HeaderMap) -> Page {
    let s = signed_in!(st, headers);
    let user = api_ok(s.api(&api, &peer, "UserGet", s.own()).await)?;
    let requests = api_ok(s.api(&api, &peer, "UserRequestListUserRequests", s.own()).await)?;
    let profile = user["profile"].as_object().cloned().unwrap_or_default();
    let body = html! {
        h2 { (t(Msg::WhatWeHold)) }
        @if profile.is_empty() {
            p { (t(Msg::ProfileEmpty)) }
        } @else {
            dl id="profile" {
                @for (k, v) in &profile {
                    dt { (field_label(k)) }
                    dd.value { (value_text(v)) }
                }
            }
        }
        p.hint { (tf(Msg::RecordVersion, &[&page::plain(&user["version"])])) code { (s.user_token.as_deref().unwrap_or_default()) } }
        @let editable: Vec<(usize, &String, &Value)> = profile.iter().filter(|(_, v)| is_scalar(v)).enumerate().map(|(i, (k, v))| (i, k, v)).collect();
        @if !editable.is_empty() {
            h2 { (t(Msg::CorrectDetails)) }
            p.hint { (t(Msg::CorrectHint)) }
            form method="post" action="/portal/me/profile" {
                input type="hidden" name="csrf" value=(s.csrf);
                @for (i, k, v) in &editable {
                    label for=(format!("field-{i}")) { (field_label(k)) }
                    input type="text" id=(format!("field-{i}")) name=(format!("f:{k}")) value=(page::plain(v));
                }
                button type="submit" { (t(Msg::SaveChanges)) }
            }
        }
        h2 { (t(Msg::YourRequests)) }
        @match requests["rows"].as_array() {
            Some(rows) if !rows.is_empty() => {
                table id="requests" {
                    thead { tr { th scope="col" { (t(Msg::Filed)) } th scope="col" { (t(Msg::Request)) } th scope="col" { (t(Msg::Status)) } } }
                    tbody {
                        @for r in rows {
                            tr { td { (when(r["creationtime"].as_i64().unwrap_or_default())) } td { (request_label(r["requesttype"].as_str().unwrap_or_default())) } td { (status_label(r["status"].as_str().unwrap_or_default())) } }
                        }
                    }
                }
            }
            _ => { p { (t(Msg::NoRequests)) } }
        }
    };
    Ok(s.page(t(Msg::NavProfile), "/portal/me", body))
}

pub fn request_label(kind: &str) -> &'static str {
    t(match kind {
        "update" | "patch" => Msg::RequestProfile,
        "delete" | "forget-me" => Msg::RequestForget,
        "appdata" | "appdata-update" => Msg::RequestAppData,
        "agreement-cancel" | "cancel" => Msg::RequestConsent,
        _ => Msg::RequestOther,
    })
}

fn result_page(s: &Session, title: &str, current: &str, filed: Option<String>, done: &str) -> Response {
    let body = html! {
        @match &filed {
            Some(uuid) => {
                p.notice role="status" { (t(Msg::FiledNote)) code { (uuid) } }
            }
            None => { p.notice role="status" { (done) } }
        }
        p { a href=(current) { (t(Msg::Back)) } }
    };
    s.page(title, current, body)
}

/// RFC 6901 escaping of one object key for a JSON patch path.
fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// The typed value for an edited field, keeping the stored type.
fn typed(old: &Value, input: &str) -> Result<Value, Fail> {
    let bad = |what: Msg| Fail::new(StatusCode::BAD_REQUEST, t(what));
    Ok(match old {
        Value::Number(_) => {
            let t = input.trim();
            match t.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => serde_json::Number::from_f64(t.parse::<f64>().map_err(|_| bad(Msg::NotANumber))?)
                    .map(Value::Number)
                    .ok_or_else(|| bad(Msg::NotANumber))?,
            }
        }
        Value::Bool(_) => match input.trim().to_lowercase().as_str() {
            "true" | "yes" | "ja" => Value::Bool(true),
            "false" | "no" | "nein" => Value::Bool(false),
            _ => return Err(bad(Msg::NotABool)),
        },
        Value::Null if input.is_empty() => Value::Null,
        _ => Value::String(input.to_string()),
    })
}

/// POST /portal/me/profile: the changed plain fields, as a JSON patch applied at once or filed
/// as a request, per the tenant's policy. Fields the profile does not hold are ignored.
pub async fn edit_profile(
    State(st): State<AppState>,
    Extension(api): Extension<Api>,
    peer: Peer,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Page {
    let s = signed_in!(st, headers);
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map_or("", |(_, v)| v.as_str());
    s.check_form(&st, &headers, csrf)?;
    let user = api_ok(s.api(&api, &peer, "UserGet", s.own()).await)?;
    let profile = user["profile"].as_object().cloned().unwrap_or_default();
    let mut patch = Vec::new();
    for (name, input) in &fields {
        let Some(key) = name.strip_prefix("f:") else { continue };
        let Some(old) = profile.get(key).filter(|v| is_scalar(v)) else { continue };
        if input.len() > 4096 {
            return Err(Fail::new(StatusCode::BAD_REQUEST, t(Msg::TooLong)));
        }
        let new = typed(old, input)?;
        if &new != old {
            patch.push(json!({"op": "replace", "path": pointer(key), "value": new}));
        }
    }
    if patch.is_empty() {
        return Ok(result_page(&s, t(Msg::TitleNothingChanged), "/portal/me", None, t(Msg::NothingChanged)));
    }
    let body = s.with_own(json!({"patch": patch}));
    // A change of the identities one signs in with always goes past the DPO: a stolen session
    // must not be able to move the account to the thief's own email or phone.
    let filed = if patch.iter().any(|op| SIGN_IN_FIELDS.iter().any(|f| op["path"] == pointer(f))) {
        let v = api_ok(s.api(&api, &peer, "UserPatchRequest", body).await)?;
        Some(v["requestuuid"].as_str().unwrap_or_default().to_string())
    } else {
        s.direct_or_request(&api, &peer, "UserPatch", "UserPatchRequest", body).await?
    };
    let title = t(if filed.is_some() { Msg::TitleChangeRequested } else { Msg::TitleChangesSaved });
    Ok(result_page(&s, title, "/portal/me", filed, t(Msg::ChangesSaved)))
}

/// GET /portal/me/consents: the user's agreements, each active one with a withdraw button.
pub async fn consents(State(st): State<AppState>, Extension(api): Extension<Api>, peer: Peer, headers: HeaderMap) -> Page {
    let s = signed_in!(st, headers);
    let list = api_ok(s.api(&api, &peer, "AgreementListUserAgreements", s.own()).await)?;
    let rows = list["rows"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if rows.is_empty() {
            p { (t(Msg::NoConsents)) }
        } @else {
            table id="consents" {
                thead { tr { th scope="col" { (t(Msg::Purpose)) } th scope="col" { (t(Msg::Status)) } th scope="col" { span.visually-hidden { (t(Msg::Action)) } } } }
                tbody {
                    @for r in &rows {
                        @let brief = r["brief"].as_str().unwrap_or_default();
                        tr {
                            td { (brief) }
                            td { (status_label(r["status"].as_str().unwrap_or_default())) }
                            td {
                                @if matches!(r["status"].as_str(), Some("yes" | "active" | "pending")) {
                                    form method="post" action="/portal/me/consents/withdraw" {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="brief" value=(brief);
                                        button.secondary type="submit" aria-label=(tf(Msg::WithdrawLabel, &[brief])) { (t(Msg::Withdraw)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(s.page(t(Msg::NavConsents), "/portal/me/consents", body))
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    brief: String,
}

/// POST /portal/me/consents/withdraw: withdrawing is as easy as giving (GDPR art. 7(3)).
pub async fn withdraw(
    State(st): State<AppState>,
    Extension(api): Extension<Api>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<WithdrawForm>,
) -> Page {
    let s = signed_in!(st, headers);
    s.check_form(&st, &headers, &f.csrf)?;
    let filed =
        s.direct_or_request(&api, &peer, "AgreementCancel", "AgreementCancelRequest", s.with_own(json!({"brief": f.brief}))).await?;
    Ok(result_page(&s, t(Msg::TitleConsentWithdrawn), "/portal/me/consents", filed, t(Msg::ConsentWithdrawn)))
}

/// GET /portal/me/apps: data applications keep about the user.
pub async fn apps(State(st): State<AppState>, Extension(api): Extension<Api>, peer: Peer, headers: HeaderMap) -> Page {
    let s = signed_in!(st, headers);
    let all = app_data(&s, &api, &peer).await?;
    let body = html! {
        @if all.is_empty() {
            p { (t(Msg::NoApps)) }
        }
        @for (name, data) in &all {
            h2 { (name) }
            (data_list(data))
        }
    };
    Ok(s.page(t(Msg::NavApps), "/portal/me/apps", body))
}

async fn app_data(s: &Session, api: &Api, peer: &Peer) -> Result<Map<String, Value>, Fail> {
    let names = api_ok(s.api(api, peer, "AppdataListUserAppNames", s.own()).await)?;
    let mut all = Map::new();
    for name in names["apps"].as_array().cloned().unwrap_or_default().into_iter().take(MAX_APPS) {
        let Some(name) = name.as_str() else { continue };
        let v = api_ok(s.api(api, peer, "AppdataGet", s.with_own(json!({"appname": name}))).await)?;
        all.insert(name.to_string(), v["appdata"].clone());
    }
    Ok(all)
}

/// GET /portal/me/sessions: the user's stored sessions.
pub async fn sessions(State(st): State<AppState>, Extension(api): Extension<Api>, peer: Peer, headers: HeaderMap) -> Page {
    let s = signed_in!(st, headers);
    let list = api_ok(s.api(&api, &peer, "SessionListUserSessions", s.own()).await)?;
    let rows = list["rows"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if rows.is_empty() {
            p { (t(Msg::NoSessions)) }
        } @else {
            table id="sessions" {
                thead { tr { th scope="col" { (t(Msg::Session)) } th scope="col" { (t(Msg::LastChanged)) } th scope="col" { (t(Msg::Data)) } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { code { (page::plain(&r["sessionuuid"])) } }
                            td { @if let Some(w) = r["when"].as_i64() { (when(w)) } }
                            td { (data_list(&r["sessiondata"])) }
                        }
                    }
                }
            }
        }
    };
    Ok(s.page(t(Msg::NavSessions), "/portal/me/sessions", body))
}

/// Stored data (app data, session data) as a list of labelled values, never JSON syntax.
fn data_list(v: &Value) -> Markup {
    html! {
        @match v.as_object() {
            Some(m) => dl { @for (k, v) in m { dt { (field_label(k)) } dd.value { (value_text(v)) } } },
            None => p.value { (value_text(v)) },
        }
    }
}

/// Who did it, in words, from an audit actor (`role:credential` or `role:lease:id`).
pub fn actor_label(actor: &str) -> String {
    let role = actor.split(':').next().unwrap_or_default();
    match role {
        "user-self" => t(Msg::ActorYou).into(),
        "portal" | "api" | "expiration-link" => t(Msg::ActorPortal).into(),
        "dpo" => t(Msg::ActorDpo).into(),
        "tenant-admin" | "root" => t(Msg::ActorAdmin).into(),
        "app-writer" | "app-reader" => t(Msg::ActorApp).into(),
        "auditor" => t(Msg::ActorAuditor).into(),
        "anonymous" => t(Msg::ActorNobody).into(),
        r if r.starts_with("custom") => tf(Msg::ActorRole, &[actor.split(':').nth(1).unwrap_or_default()]),
        _ => t(Msg::ActorOrg).into(),
    }
}

/// GET /portal/me/activity: every access to the user's record, newest first.
pub async fn activity(State(st): State<AppState>, Extension(api): Extension<Api>, peer: Peer, headers: HeaderMap) -> Page {
    let s = signed_in!(st, headers);
    let list = api_ok(s.api(&api, &peer, "AuditListUserEvents", s.with_own(json!({"limit": 200}))).await)?;
    let rows = list["rows"].as_array().cloned().unwrap_or_default();
    let body = html! {
        p { (tf(Msg::ActivityIntro, &[&rows.len().to_string(), &page::plain(&list["total"])])) }
        table id="activity" {
            thead { tr { th scope="col" { (t(Msg::When)) } th scope="col" { (t(Msg::What)) } th scope="col" { (t(Msg::Who)) } th scope="col" { (t(Msg::Result)) } } }
            tbody {
                @for r in &rows {
                    tr {
                        td { (when_rfc3339(r["timestamp"].as_str().unwrap_or_default())) }
                        td { (event_label(r["eventtype"].as_str().unwrap_or_default())) }
                        td { (actor_label(r["actor"].as_str().unwrap_or_default())) }
                        td { (outcome_label(r["outcome"].as_str().unwrap_or_default())) }
                    }
                }
            }
        }
    };
    Ok(s.page(t(Msg::NavActivity), "/portal/me/activity", body))
}

/// GET /portal/me/export: what the download holds, and its button.
pub async fn export_page(State(st): State<AppState>, headers: HeaderMap) -> Page {
    let s = signed_in!(st, headers);
    let body = html! {
        p { (t(Msg::ExportIntro)) }
        form method="post" action="/portal/me/export" {
            input type="hidden" name="csrf" value=(s.csrf);
            button type="submit" { (t(Msg::ExportButton)) }
        }
    };
    Ok(s.page(t(Msg::NavExport), "/portal/me/export", body))
}

/// POST /portal/me/export: the portability export (GDPR art. 20) as a JSON attachment.
pub async fn export(
    State(st): State<AppState>,
    Extension(api): Extension<Api>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Page {
    let s = signed_in!(st, headers);
    s.check_form(&st, &headers, &f.csrf)?;
    let user = api_ok(s.api(&api, &peer, "UserGet", s.own()).await)?;
    let versions = api_ok(s.api(&api, &peer, "UserListVersions", s.own()).await)?;
    let consents = api_ok(s.api(&api, &peer, "AgreementListUserAgreements", s.own()).await)?;
    let sessions = api_ok(s.api(&api, &peer, "SessionListUserSessions", s.own()).await)?;
    let requests = api_ok(s.api(&api, &peer, "UserRequestListUserRequests", s.own()).await)?;
    let audit = api_ok(s.api(&api, &peer, "AuditListUserEvents", s.with_own(json!({"limit": 1000}))).await)?;
    let doc = json!({
        "format": "strongroom-portal-export/1",
        "exported_at": now_secs(),
        "organisation": s.tenant,
        "token": s.user_token,
        "profile": user["profile"],
        "version": user["version"],
        "versions": versions["versions"],
        "appdata": app_data(&s, &api, &peer).await?,
        "consents": consents["rows"],
        "sessions": sessions["rows"],
        "requests": requests["rows"],
        "access_log": audit["rows"],
    });
    let body = serde_json::to_vec_pretty(&doc).map_err(|e| Fail::from(crate::error::Error::Internal(e.into())))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"my-data.json\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// GET /portal/me/forget: what erasure means, and its button.
pub async fn forget_page(State(st): State<AppState>, headers: HeaderMap) -> Page {
    let s = signed_in!(st, headers);
    let body = html! {
        p { (t(Msg::ForgetIntro)) }
        form method="post" action="/portal/me/forget" {
            input type="hidden" name="csrf" value=(s.csrf);
            button.danger type="submit" { (t(Msg::NavForget)) }
        }
    };
    Ok(s.page(t(Msg::NavForget), "/portal/me/forget", body))
}

/// POST /portal/me/forget: erasure at once where the tenant allows it, else a request.
pub async fn forget(
    State(st): State<AppState>,
    Extension(api): Extension<Api>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Page {
    let s = signed_in!(st, headers);
    s.check_form(&st, &headers, &f.csrf)?;
    let filed = s.direct_or_request(&api, &peer, "UserDelete", "UserDeleteRequest", s.own()).await?;
    if filed.is_some() {
        return Ok(result_page(&s, t(Msg::TitleErasureRequested), "/portal/me/forget", filed, ""));
    }
    let mut res = page::render(t(Msg::TitleForgotten), None, html! { p role="status" { (t(Msg::Erased)) } });
    let (k, v) = clear_cookie(&st, SESSION_COOKIE);
    res.headers_mut().append(k, v);
    Ok(res)
}

/// POST /portal/signout: revokes the session's lease and drops the cookie.
pub async fn sign_out(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Page {
    end_session(&st, &headers, SESSION_COOKIE, "user-self", &f.csrf, "/portal/").await
}

pub async fn end_session(st: &AppState, headers: &HeaderMap, cookie: &str, role: &str, csrf: &str, to: &str) -> Page {
    let mut res = Redirect::to(to).into_response();
    if let Some(s) = session(st, headers, cookie, role).await? {
        s.check_form(st, headers, csrf)?;
        let mut tx = st.db().tenant_tx(s.tenant_id).await?;
        tx.revoke_lease(&s.lease_id).await?;
        tx.commit().await?;
    }
    let (k, v) = clear_cookie(st, cookie);
    res.headers_mut().append(k, v);
    Ok(res)
}
