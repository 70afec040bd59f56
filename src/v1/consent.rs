//! v1 legal bases, processing activities and agreements, over the v2 LegalBasis*,
//! ProcessingActivity* and Agreement* endpoints.
//!
//! Unlike Databunker, accepting or withdrawing a consent by email or phone needs a credential
//! like every other call: an anonymous caller could otherwise change anyone's consents.

use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{duration_secs, ok, request_created, string_field, Answer, Ctx, Fail, V1Body, V1Path, Who};
use crate::app::AppState;
use crate::store::now_secs;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/lbasis", get(basis_list))
        .route("/v1/lbasis/{brief}", post(basis_upsert).delete(basis_delete))
        .route("/v1/pactivity", get(activity_list))
        .route("/v1/pactivity/{activity}", post(activity_upsert).delete(activity_delete))
        .route("/v1/pactivity/{activity}/{brief}", post(activity_link).delete(activity_unlink))
        .route("/v1/agreement/{brief}", delete(agreement_revoke_all))
        .route("/v1/agreement/{brief}/{mode}/{identity}", get(agreement_get).post(agreement_accept).delete(agreement_withdraw))
        .route("/v1/agreements/{mode}/{identity}", get(agreement_list))
}

/// A brief or activity name: `^[a-z][a-z0-9-]{1,64}$` after lower-casing, else `message`.
fn brief(s: &str, message: &str) -> Result<String, Fail> {
    let s = s.trim().to_lowercase();
    let valid = (2..=65).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(s)
    } else {
        Err(Fail::v1(message))
    }
}

/// Creates `create` unless it exists (409), then updates it with `update`: Databunker's POSTs
/// are upserts.
async fn upsert(ctx: &Ctx, create: (&str, Value), update: (&str, Value)) -> Result<(), Fail> {
    match ctx.raw(create.0, create.1).await {
        (StatusCode::CONFLICT, _) => ctx.call(update.0, update.1).await.map(|_| ()),
        other => super::from_v2(other).map(|_| ()),
    }
}

/// Copies the string fields `names` of a v1 body into a v2 request.
fn copy_strings(from: &Map<String, Value>, to: &mut Value, names: &[&str]) {
    for n in names {
        if let Some(v) = string_field(from, n) {
            to[*n] = v.into();
        }
    }
}

/// A v1 boolean: true/false, or 0/1 as Databunker's SQLite stores them.
fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_f64() != Some(0.0)),
        Value::String(s) => Some(matches!(s.trim().to_lowercase().as_str(), "1" | "true" | "yes" | "on")),
        _ => None,
    }
}

// ---- legal bases ----

fn basis_v1(b: &Value) -> Value {
    let status = match b["status"].as_str() {
        Some("inactive") => "disabled",
        Some(s) => s,
        None => "active",
    };
    json!({
        "brief": b["brief"], "status": status, "module": b["module"], "shortdesc": b["shortdesc"],
        "fulldesc": b["fulldesc"], "basistype": b["basistype"], "requiredmsg": b["requiredmsg"],
        "requiredflag": b["requiredflag"], "creationtime": b["creationtime"],
    })
}

async fn bases(ctx: &Ctx) -> Result<Vec<Value>, Fail> {
    let v = ctx.call("LegalBasisListAgreements", json!({})).await?;
    Ok(v["rows"].as_array().cloned().unwrap_or_default())
}

async fn basis_list(ctx: Ctx) -> Answer {
    let rows: Vec<Value> = bases(&ctx).await?.iter().map(basis_v1).collect();
    ok(json!({"total": rows.len(), "rows": rows}))
}

/// Creates or overwrites a legal basis; a `brief` in the body renames it.
async fn basis_upsert(ctx: Ctx, V1Path(b): V1Path<String>, body: V1Body) -> Answer {
    let b = brief(&b, "bad brief format")?;
    let m = body.object()?.unwrap_or_default();
    let mut fields = json!({});
    copy_strings(&m, &mut fields, &["module", "fulldesc", "shortdesc", "basistype"]);
    let required = flag(m.get("requiredflag")).unwrap_or(false);
    fields["requiredflag"] = required.into();
    if required {
        copy_strings(&m, &mut fields, &["requiredmsg"]);
    }
    let disabled = string_field(&m, "status").is_some_and(|s| s == "disabled");
    fields["status"] = if disabled { "inactive" } else { "active" }.into();
    let newbrief = match string_field(&m, "brief") {
        Some(n) => brief(&n, "bad brief format")?,
        None => b.clone(),
    };
    let mut create = fields.clone();
    create["brief"] = newbrief.clone().into();
    let mut update = fields;
    update["brief"] = b.clone().into();
    update["newbrief"] = newbrief.into();
    upsert(&ctx, ("LegalBasisCreate", create), ("LegalBasisUpdate", update)).await?;
    ok(json!({}))
}

async fn basis_delete(ctx: Ctx, V1Path(b): V1Path<String>) -> Answer {
    let b = brief(&b, "bad brief format")?;
    ctx.call("LegalBasisDelete", json!({ "brief": b })).await?;
    ok(json!({}))
}

// ---- processing activities ----

async fn activity_list(ctx: Ctx) -> Answer {
    let v = ctx.call("ProcessingActivityListActivities", json!({})).await?;
    let all = bases(&ctx).await?;
    let rows: Vec<Value> = v["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let linked: Vec<String> =
                a["legalbases"].as_array().map(|l| l.iter().filter_map(|b| b.as_str().map(str::to_string)).collect()).unwrap_or_default();
            let briefs: Vec<Value> = all.iter().filter(|b| linked.iter().any(|l| b["brief"] == l.as_str())).map(basis_v1).collect();
            json!({
                "activity": a["activity"], "title": a["title"], "script": a["script"], "fulldesc": a["fulldesc"],
                "applicableto": a["applicableto"], "legalbasis": linked.join(","), "creationtime": a["creationtime"],
                // Go marshals an empty list as null here.
                "briefs": if briefs.is_empty() { Value::Null } else { Value::Array(briefs) },
            })
        })
        .collect();
    ok(json!({"total": rows.len(), "rows": rows}))
}

async fn activity_upsert(ctx: Ctx, V1Path(a): V1Path<String>, body: V1Body) -> Answer {
    let a = brief(&a, "bad activity format")?;
    let m = body.object()?.unwrap_or_default();
    let mut fields = json!({ "activity": a });
    copy_strings(&m, &mut fields, &["script", "fulldesc", "applicableto"]);
    fields["title"] = string_field(&m, "title").unwrap_or_else(|| a.clone()).into();
    let mut update = fields.clone();
    update["newactivity"] = a.clone().into();
    upsert(&ctx, ("ProcessingActivityCreate", fields), ("ProcessingActivityUpdate", update)).await?;
    ok(json!({}))
}

async fn activity_delete(ctx: Ctx, V1Path(a): V1Path<String>) -> Answer {
    let a = brief(&a, "bad activity format")?;
    ctx.call("ProcessingActivityDelete", json!({ "activity": a })).await?;
    ok(json!({}))
}

async fn activity_link(ctx: Ctx, V1Path((a, b)): V1Path<(String, String)>) -> Answer {
    let (a, b) = (brief(&a, "bad activity format")?, brief(&b, "bad brief format")?);
    ctx.call("ProcessingActivityLinkLegalBasis", json!({"activity": a, "brief": b})).await?;
    ok(json!({}))
}

async fn activity_unlink(ctx: Ctx, V1Path((a, b)): V1Path<(String, String)>) -> Answer {
    let (a, b) = (brief(&a, "bad activity format")?, brief(&b, "bad brief format")?);
    ctx.call("ProcessingActivityUnlinkLegalBasis", json!({"activity": a, "brief": b})).await?;
    ok(json!({}))
}

// ---- agreements ----

/// Databunker's consent values: these mean yes, everything else no.
fn consent_given(s: &str) -> bool {
    const YES: [&str; 13] = ["1", "active", "accept", "agree", "approve", "given", "good", "ok", "on", "true", "y", "yes", "allow"];
    YES.contains(&s.trim().to_lowercase().as_str())
}

/// A v2 agreement in Databunker's fields.
fn agreement_v1(a: &Value, who: &Who) -> Value {
    let status = match a["status"].as_str() {
        Some("active") => "yes",
        Some("expired") => "expired",
        _ => "no",
    };
    json!({
        "brief": a["brief"], "mode": who.mode.as_str(), "token": a["token"], "status": status,
        "when": a["lastmodifiedtime"], "creationtime": a["creationtime"], "starttime": a["starttime"],
        "endtime": a["finaltime"], "lastmodifiedby": a["lastmodifiedby"], "referencecode": a["referencecode"],
        "agreementmethod": a["agreementmethod"],
    })
}

/// Accept and get answer a missing legal basis (or person) with 404, unlike other calls.
fn not_found_is_404(e: Fail) -> Fail {
    match e {
        Fail::Error(_, m) if m == "not found" => Fail::Error(StatusCode::NOT_FOUND, m),
        other => other,
    }
}

async fn agreement_accept(ctx: Ctx, V1Path((b, mode, identity)): V1Path<(String, String, String)>, body: V1Body) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let b = brief(&b, "incorrect brief format")?;
    let m = body.object()?.unwrap_or_default();
    let mut req = who.body(json!({ "brief": b }));
    copy_strings(&m, &mut req, &["referencecode", "lastmodifiedby"]);
    req["agreementmethod"] = string_field(&m, "agreementmethod").unwrap_or_else(|| "api".into()).into();
    let now = now_secs();
    // A string is a duration from now (no cap); a number is stored as it is.
    let time = |key: &str| match m.get(key) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(v @ Value::String(_)) => duration_secs(v, now).map(|s| now + s),
        _ => None,
    };
    if let Some(end) = time("expiration") {
        req["finaltime"] = end.into();
    }
    if let Some(start) = time("starttime") {
        req["starttime"] = start.into();
    }
    ctx.call("AgreementAccept", req).await.map_err(not_found_is_404)?;
    if string_field(&m, "status").is_some_and(|s| !consent_given(&s)) {
        // A recorded refusal: the agreement exists, withdrawn.
        ctx.call("AgreementCancel", who.body(json!({ "brief": b }))).await?;
    }
    ok(json!({}))
}

async fn agreement_get(ctx: Ctx, V1Path((b, mode, identity)): V1Path<(String, String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let b = brief(&b, "bad brief format")?;
    let v = ctx.call("AgreementGet", who.body(json!({ "brief": b }))).await.map_err(not_found_is_404)?;
    ok(json!({"data": agreement_v1(&v["agreement"], &who)}))
}

/// Withdrawing sets `no`; a data subject's own token files a request when the basis needs one.
async fn agreement_withdraw(ctx: Ctx, V1Path((b, mode, identity)): V1Path<(String, String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let b = brief(&b, "bad brief format")?;
    let done =
        ctx.direct_or_request("AgreementCancel", "AgreementCancelRequest", who.body(json!({ "brief": b }))).await.map_err(|e| match e {
            // Databunker's message here has two spaces.
            Fail::Error(_, m) if m == "not found" => Fail::v1("not  found"),
            other => other,
        })?;
    match done {
        Some(rtoken) => request_created(rtoken),
        None => ok(json!({})),
    }
}

async fn agreement_revoke_all(ctx: Ctx, V1Path(b): V1Path<String>) -> Answer {
    let b = brief(&b, "bad brief format")?;
    ctx.call("AgreementRevokeAll", json!({ "brief": b })).await?;
    ok(json!({}))
}

async fn agreement_list(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let v = ctx.call("AgreementListUserAgreements", who.body(json!({}))).await?;
    let rows: Vec<Value> = v["rows"].as_array().cloned().unwrap_or_default().iter().map(|a| agreement_v1(a, &who)).collect();
    ok(json!({"total": rows.len(), "rows": rows}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn briefs_and_consent_values_follow_databunker() {
        assert_eq!(brief("Marketing-2", "x").unwrap(), "marketing-2");
        assert!(brief("2fa", "x").is_err() && brief("a", "x").is_err() && brief("a_b", "x").is_err());
        assert!(consent_given("Yes") && consent_given("ON") && consent_given("1"));
        assert!(!consent_given("no") && !consent_given("maybe"));
    }
}
