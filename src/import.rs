//! `strongroom import`: copies a tenant from a running Databunker Pro (its v2 API; another
//! Strongroom speaks it too) into a Strongroom tenant through that tenant's own API, keeping
//! every user's token (UserImport), so the application tables holding tokens stay valid.
//!
//! Copied: legal bases, processing activities, groups, users (profile, retention), their app
//! data, consents, files (with tags), sessions and group memberships. Not copied, because the
//! source API does not expose them: tokenization tokens (no listing), audit history, profile
//! versions before the current one, shared records (short-lived links), custom roles and
//! policies (no listing); the summary says so.
//!
//! The source may instead speak the open-source Databunker's v1 API (`SourceApi::V1`; it needs
//! `generic.list_users` there): legal bases, processing activities with their links, users,
//! app records, consents and sessions are copied the same way; files and groups do not exist in
//! v1.
//!
//! Idempotent: what the target already has (a token, an app record, a legal basis, a group) is
//! skipped, so a rerun copies nothing twice. Resumable: the state file records the last page of
//! users done, and a rerun starts after it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Users per page read from the source.
const PAGE: i64 = 100;

/// Where to read and where to write.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Endpoint,
    pub target: Endpoint,
    /// Progress between runs; absent: start from the beginning every time.
    pub state: Option<PathBuf>,
    /// The life given to copied sessions (the source API does not tell a session's expiry).
    pub session_ttl: String,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Which wire API the source speaks.
    pub source_api: SourceApi,
}

/// The source's wire API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SourceApi {
    /// Databunker Pro's v2 (or another Strongroom).
    #[default]
    V2,
    /// The open-source Databunker's v1 REST API.
    V1,
}

/// A v2 API: base URL, credential, tenant.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub token: String,
    pub tenant: Option<String>,
}

/// What a run did, by kind: copied, already there, and what could not be copied.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub users: Counts,
    pub legal_bases: Counts,
    pub processing_activities: Counts,
    pub groups: Counts,
    pub memberships: Counts,
    pub appdata: Counts,
    pub agreements: Counts,
    pub files: Counts,
    pub sessions: Counts,
    /// Human notes: each thing not copied, and why.
    pub not_copied: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub copied: u64,
    pub present: u64,
    pub failed: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Users of the source done, in BulkListAllUsers order.
    users_done: i64,
}

/// An error answer of an API.
#[derive(Debug)]
struct Refused {
    status: u16,
    message: String,
}

struct Api {
    http: reqwest::Client,
    end: Endpoint,
}

impl Api {
    fn new(end: Endpoint) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        Ok(Api { http, end })
    }

    /// Calls a v2 endpoint: `Ok` with the answer, `Err(Refused)` for an error answer, and an
    /// outer error when the server cannot be reached at all.
    async fn call(&self, endpoint: &str, body: Value) -> anyhow::Result<Result<Value, Refused>> {
        let mut req = self.http.post(format!("{}/v2/{endpoint}", self.end.url.trim_end_matches('/'))).json(&body);
        req = req.header("X-Bunker-Token", &self.end.token);
        if let Some(t) = &self.end.tenant {
            req = req.header("X-Bunker-Tenant", t);
        }
        let res = req.send().await.with_context(|| format!("{endpoint}: cannot reach {}", self.end.url))?;
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        if status < 300 && v["status"] == "ok" {
            Ok(Ok(v))
        } else {
            Ok(Err(Refused { status, message: v["message"].as_str().unwrap_or("no message").to_string() }))
        }
    }

    /// A v1 call (`path` under the base URL), answered like [`Api::call`].
    async fn v1(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Result<Value, Refused>> {
        let mut req = self.http.request(method, format!("{}{path}", self.end.url.trim_end_matches('/')));
        req = req.header("X-Bunker-Token", &self.end.token);
        if let Some(t) = &self.end.tenant {
            req = req.header("X-Bunker-Tenant", t);
        }
        let res = req.send().await.with_context(|| format!("{path}: cannot reach {}", self.end.url))?;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status < 300 && v["status"] == "ok" {
            Ok(Ok(v))
        } else {
            let message = v["message"].as_str().map_or_else(|| text.chars().take(200).collect(), str::to_string);
            Ok(Err(Refused { status, message }))
        }
    }

    /// As [`Api::v1`], where any refusal stops the run.
    async fn v1_must(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        match self.v1(method, path).await? {
            Ok(v) => Ok(v),
            Err(r) => bail!("{path} at {} answered {}: {}", self.end.url, r.status, r.message),
        }
    }

    /// As [`Api::call`], where any refusal stops the run.
    async fn must(&self, endpoint: &str, body: Value) -> anyhow::Result<Value> {
        match self.call(endpoint, body).await? {
            Ok(v) => Ok(v),
            Err(r) => bail!("{endpoint} at {} answered {}: {}", self.end.url, r.status, r.message),
        }
    }
}

/// Records a write's outcome: 409 is "already there".
fn count(c: &mut Counts, r: &Result<Value, Refused>) {
    match r {
        Ok(_) => c.copied += 1,
        Err(r) if r.status == 409 => c.present += 1,
        Err(_) => c.failed += 1,
    }
}

fn rows(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

/// The fields of `row` named in `keys` that are set.
fn pick(row: &Value, keys: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for k in keys {
        match &row[*k] {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            v => {
                out.insert((*k).to_string(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn by_token(token: &str, extra: Value) -> Value {
    let mut body = json!({"mode": "token", "identity": token});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    body
}

fn load_state(path: &Option<PathBuf>) -> anyhow::Result<State> {
    match path {
        Some(p) if p.exists() => Ok(serde_json::from_slice(&std::fs::read(p)?).with_context(|| format!("state file {}", p.display()))?),
        _ => Ok(State::default()),
    }
}

fn save_state(path: &Option<PathBuf>, state: &State) -> anyhow::Result<()> {
    if let Some(p) = path {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(state)?)?;
        std::fs::rename(&tmp, p)?;
    }
    Ok(())
}

fn bar(done: i64, total: i64) {
    let width = 30;
    let filled = if total > 0 { (done * width / total).clamp(0, width) } else { width } as usize;
    eprint!("\r[{}{}] {done}/{total} users", "#".repeat(filled), ".".repeat(width as usize - filled));
}

/// Runs the import; see the module documentation.
pub async fn run(opts: &Options) -> anyhow::Result<Summary> {
    let src = Api::new(opts.source.clone())?;
    let dst = Api::new(opts.target.clone())?;
    let mut sum = Summary::default();
    let mut state = load_state(&opts.state)?;
    let v1 = opts.source_api == SourceApi::V1;

    // Tenant-wide definitions first: consents and memberships refer to them.
    if v1 {
        copy_v1_definitions(&src, &dst, &mut sum).await?;
    } else {
        copy_definitions(&src, &dst, &mut sum).await?;
    }

    let mut offset = state.users_done;
    loop {
        let page = if v1 {
            src.v1_must(reqwest::Method::POST, &format!("/v1/users?offset={offset}&limit={PAGE}")).await?
        } else {
            let unlock = src.must("BulkListUnlock", json!({})).await?["unlockuuid"].clone();
            src.must("BulkListAllUsers", json!({"unlockuuid": unlock, "offset": offset, "limit": PAGE})).await?
        };
        let total = page["total"].as_i64().unwrap_or(0);
        let users = rows(&page, "rows");
        if users.is_empty() {
            break;
        }
        for u in &users {
            if v1 {
                copy_v1_user(&src, &dst, opts, u, &mut sum).await?;
            } else {
                copy_user(&src, &dst, opts, u, &mut sum).await?;
            }
        }
        offset += users.len() as i64;
        state.users_done = offset;
        save_state(&opts.state, &state)?;
        if opts.progress {
            bar(offset, total);
        }
    }
    if opts.progress {
        eprintln!();
    }
    let mut not_copied: Vec<String> = vec![
        "audit history: the target audits the import itself; the source's trail stays there".into(),
        "shared records: short-lived links, made again where needed".into(),
    ];
    if v1 {
        not_copied.push("expiration flows in progress: start them again in the target (POST /v1/exp/start)".into());
        not_copied.push("user requests: decide them in the source first".into());
        not_copied.push(format!("session expiry: copied sessions live {}", opts.session_ttl));
    } else {
        not_copied.push("tokenization tokens (TokenCreate): the source API cannot list them".into());
        not_copied.push("profile versions before the current one".into());
        not_copied.push(
            "custom roles and policies: the source API cannot list them; group roles are kept where the target has a role of that name"
                .into(),
        );
        not_copied.push(format!("session expiry: the source does not expose it; copied sessions live {}", opts.session_ttl));
    }
    sum.not_copied = not_copied;
    Ok(sum)
}

/// Imports one user (UserImport, keeping its token); false when it could not be imported, so
/// nothing of it is copied.
async fn import_user(dst: &Api, body: Value, sum: &mut Summary) -> anyhow::Result<bool> {
    match dst.call("UserImport", body).await? {
        Ok(v) if v["imported"] == true => sum.users.copied += 1,
        Ok(_) => sum.users.present += 1,
        Err(r) => {
            tracing::warn!(status = r.status, message = %r.message, "a user could not be imported");
            sum.users.failed += 1;
            return Ok(false);
        }
    }
    Ok(true)
}

/// Legal bases, processing activities and groups of a v2 source.
async fn copy_definitions(src: &Api, dst: &Api, sum: &mut Summary) -> anyhow::Result<()> {
    for b in rows(&src.must("LegalBasisListAgreements", json!({})).await?, "rows") {
        let body = pick(&b, &["brief", "status", "module", "fulldesc", "shortdesc", "basistype", "requiredmsg", "requiredflag"]);
        count(&mut sum.legal_bases, &dst.call("LegalBasisCreate", body).await?);
    }
    for a in rows(&src.must("ProcessingActivityListActivities", json!({})).await?, "rows") {
        let body = pick(&a, &["activity", "title", "script", "fulldesc", "applicableto"]);
        count(&mut sum.processing_activities, &dst.call("ProcessingActivityCreate", body).await?);
    }
    for g in rows(&src.must("GroupListAllGroups", json!({})).await?, "rows") {
        count(&mut sum.groups, &dst.call("GroupCreate", pick(&g, &["groupname", "groupdesc", "grouptype"])).await?);
    }
    Ok(())
}

async fn copy_user(src: &Api, dst: &Api, opts: &Options, u: &Value, sum: &mut Summary) -> anyhow::Result<()> {
    let Some(token) = u["token"].as_str() else { return Ok(()) };
    let mut body = json!({"token": token, "profile": u["profile"]});
    if let Some(f) = u["finaltime"].as_i64().filter(|f| *f > 0) {
        body["finaltime"] = f.into();
    }
    if let Some(s) = u["slidingtime"].as_i64().filter(|s| *s > 0) {
        body["slidingtime"] = s.into();
    }
    if !import_user(dst, body, sum).await? {
        return Ok(());
    }

    if let Ok(names) = src.call("AppdataListUserAppNames", by_token(token, json!({}))).await? {
        for app in rows(&names, "apps") {
            let got = src.must("AppdataGet", by_token(token, json!({"appname": app}))).await?;
            let r = dst.call("AppdataCreate", by_token(token, json!({"appname": app, "appdata": got["appdata"]}))).await?;
            count(&mut sum.appdata, &r);
        }
    }
    if let Ok(list) = src.call("AgreementListUserAgreements", by_token(token, json!({}))).await? {
        for a in rows(&list, "rows") {
            let mut extra = pick(&a, &["brief", "agreementmethod", "referencecode", "lastmodifiedby"]);
            if let Some(s) = a["status"].as_str().filter(|s| ["pending", "active", "expired"].contains(s)) {
                extra["status"] = s.into();
            }
            // A withdrawn consent stays withdrawn: accept, then cancel, keeps the record.
            let r = dst.call("AgreementAccept", by_token(token, extra)).await?;
            if r.is_ok() && ["no", "withdrawn", "canceled", "cancelled"].contains(&a["status"].as_str().unwrap_or("")) {
                dst.call("AgreementCancel", by_token(token, json!({"brief": a["brief"]}))).await?.ok();
            }
            count(&mut sum.agreements, &r);
        }
    }
    if let Ok(files) = src.call("FileListUserFiles", by_token(token, json!({}))).await? {
        for f in rows(&files, "files") {
            let got = src.must("FileGet", by_token(token, json!({"fileuuid": f["fileuuid"]}))).await?;
            // The same content for the same user is a duplicate to the target: a rerun stores
            // nothing twice.
            let mut extra = pick(&got, &["filename", "mimetype", "tags"]);
            extra["filedata"] = got["filedata"].clone();
            match dst.call("FileCreate", by_token(token, extra)).await? {
                Ok(v) if v["duplicate"] == true => sum.files.present += 1,
                r => count(&mut sum.files, &r),
            }
        }
    }
    if let Ok(list) = src.call("SessionListUserSessions", by_token(token, json!({}))).await? {
        for s in rows(&list, "rows") {
            let body =
                by_token(token, json!({"sessionuuid": s["sessionuuid"], "sessiondata": s["sessiondata"], "finaltime": opts.session_ttl}));
            count(&mut sum.sessions, &dst.call("SessionUpsert", body).await?);
        }
    }
    for m in u["grouproles"].as_array().cloned().unwrap_or_default() {
        let mut extra = pick(&m, &["groupname"]);
        if let Some(role) = m["rolename"].as_str().filter(|r| !r.is_empty()) {
            extra["rolename"] = role.into();
        }
        let mut r = dst.call("GroupAddUser", by_token(token, extra.clone())).await?;
        if matches!(&r, Err(e) if e.status == 404) && extra.get("rolename").is_some() {
            // No role of that name in the target: keep the membership without it.
            r = dst.call("GroupAddUser", by_token(token, pick(&m, &["groupname"]))).await?;
        }
        count(&mut sum.memberships, &r);
    }
    Ok(())
}

/// A Databunker v1 user row's profile: an object, or (as Databunker's Go marshals the decrypted
/// bytes) base64 of its JSON.
fn v1_profile(row: &Value) -> Option<Value> {
    use base64::Engine;
    match &row["private"] {
        Value::Object(_) => Some(row["private"].clone()),
        Value::String(s) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
            serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
        }
        _ => None,
    }
}

/// Legal bases and processing activities (with their links) of a v1 source.
async fn copy_v1_definitions(src: &Api, dst: &Api, sum: &mut Summary) -> anyhow::Result<()> {
    use reqwest::Method;
    for b in rows(&src.v1_must(Method::GET, "/v1/lbasis").await?, "rows") {
        let mut body = pick(&b, &["brief", "module", "fulldesc", "shortdesc", "basistype", "requiredmsg"]);
        body["status"] = if b["status"] == "disabled" { "inactive" } else { "active" }.into();
        // A bool, or 0/1 from Databunker's SQLite.
        body["requiredflag"] = (b["requiredflag"] == true || b["requiredflag"] == 1).into();
        count(&mut sum.legal_bases, &dst.call("LegalBasisCreate", body).await?);
    }
    for a in rows(&src.v1_must(Method::GET, "/v1/pactivity").await?, "rows") {
        let body = pick(&a, &["activity", "title", "script", "fulldesc", "applicableto"]);
        count(&mut sum.processing_activities, &dst.call("ProcessingActivityCreate", body).await?);
        for brief in a["legalbasis"].as_str().unwrap_or("").split(',').map(str::trim).filter(|b| !b.is_empty()) {
            dst.call("ProcessingActivityLinkLegalBasis", json!({"activity": a["activity"], "brief": brief})).await?.ok();
        }
    }
    Ok(())
}

async fn copy_v1_user(src: &Api, dst: &Api, opts: &Options, u: &Value, sum: &mut Summary) -> anyhow::Result<()> {
    use reqwest::Method;
    let (Some(token), Some(profile)) = (u["token"].as_str(), v1_profile(u)) else {
        sum.users.failed += 1;
        return Ok(());
    };
    if !import_user(dst, json!({"token": token, "profile": profile}), sum).await? {
        return Ok(());
    }
    if let Ok(list) = src.v1(Method::GET, &format!("/v1/userapp/token/{token}")).await? {
        for app in rows(&list, "apps") {
            let Some(app) = app.as_str() else { continue };
            let got = src.v1_must(Method::GET, &format!("/v1/userapp/token/{token}/{app}")).await?;
            let r = dst.call("AppdataCreate", by_token(token, json!({"appname": app, "appdata": got["data"]}))).await?;
            count(&mut sum.appdata, &r);
        }
    }
    if let Ok(list) = src.v1(Method::GET, &format!("/v1/agreements/token/{token}")).await? {
        for a in rows(&list, "rows") {
            let extra = pick(&a, &["brief", "agreementmethod", "referencecode", "lastmodifiedby"]);
            let r = dst.call("AgreementAccept", by_token(token, extra)).await?;
            // Databunker's "no", "revoked" and "expired" are not in force: keep the record, withdrawn.
            if r.is_ok() && a["status"] != "yes" {
                dst.call("AgreementCancel", by_token(token, json!({"brief": a["brief"]}))).await?.ok();
            }
            count(&mut sum.agreements, &r);
        }
    }
    if let Ok(list) = src.v1(Method::GET, &format!("/v1/sessions/token/{token}")).await? {
        for s in rows(&list, "rows") {
            let body = by_token(token, json!({"sessionuuid": s["session"], "sessiondata": s["data"], "finaltime": opts.session_ttl}));
            count(&mut sum.sessions, &dst.call("SessionUpsert", body).await?);
        }
    }
    Ok(())
}
