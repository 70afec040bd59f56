//! Pro-compatible roles and JSON policies: RoleCreate, RoleUpdate, RoleLinkPolicy, PolicyCreate,
//! PolicyUpdate, PolicyGet, PolicyListAllPolicies. Every change re-translates the tenant's
//! policies into casbin rules in the same transaction and bumps the tenant's policy version.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{int_or_string, Body, Metadata};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::policy::{check_actions, parse_policy, translate, ParsedPolicy, ROLES};
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::store::TenantTx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/RoleCreate", post(role_create))
        .route("/v2/RoleUpdate", post(role_update))
        .route("/v2/RoleLinkPolicy", post(role_link_policy))
        .route("/v2/PolicyCreate", post(policy_create))
        .route("/v2/PolicyUpdate", post(policy_update))
        .route("/v2/PolicyGet", post(policy_get))
        .route("/v2/PolicyListAllPolicies", post(policy_list))
}

fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !ok {
        return Err(Error::bad(format!("{field} must be 1-64 letters, digits, '_', '-' or '.'")));
    }
    if field == "rolename" && ROLES.contains(&name) {
        return Err(Error::bad(format!("{name} is a built-in role")));
    }
    Ok(())
}

/// A policy document as PolicyCreate/PolicyUpdate accept it: every key, operator, resource and
/// action must be one the vault evaluates (400 otherwise), so no stored policy silently fails
/// to apply.
fn checked_policy(doc: &Value) -> Result<ParsedPolicy> {
    let parsed = parse_policy(doc)?;
    check_actions(&parsed.actions, &super::known_endpoints())?;
    Ok(parsed)
}

/// Re-translates every linked policy (RoleLinkPolicy, and roles named in Principal.Role).
async fn rebuild_rules(tx: &mut TenantTx) -> Result<()> {
    let roles = tx.role_names().await?;
    let mut pairs = tx.linked_policies().await?;
    for p in tx.list_policies().await? {
        let doc: Value = serde_json::from_str(&p.document)?;
        for r in parse_policy(&doc)?.principal_roles {
            if roles.contains(&r) {
                pairs.push((r, p.document.clone()));
            }
        }
    }
    let mut rules = Vec::new();
    for (role, doc) in pairs {
        for rule in translate(&role, &parse_policy(&serde_json::from_str(&doc)?)?) {
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
    }
    tx.replace_policy_rules(&rules).await?;
    Ok(())
}

#[derive(Deserialize)]
struct RoleReq {
    #[serde(default, deserialize_with = "int_or_string")]
    roleid: Option<i64>,
    #[serde(default)]
    rolename: Option<String>,
    #[serde(default)]
    roledesc: Option<String>,
    /// Our extension: whether the Vault/OpenBao plugin may mint leases of this role (never
    /// while one of its policies grants a management right; see `auth::roles`).
    #[serde(default)]
    mintable: Option<bool>,
    #[serde(default, deserialize_with = "int_or_string")]
    policyid: Option<i64>,
    #[serde(default)]
    policyname: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

async fn role_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RoleReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "RoleCreate", req.request_metadata).await?;
    let result = async {
        let name = req.rolename.as_deref().map(str::trim).ok_or_else(|| Error::bad("missing field `rolename`"))?;
        check_name("rolename", name)?;
        let id = call.tx.insert_role(name, req.roledesc.as_deref().unwrap_or(""), req.mintable.unwrap_or(false)).await?;
        call.note("roleid", id);
        Ok(fields([("roleid", id.into())]))
    }
    .await;
    call.finish(result).await
}

async fn role_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RoleReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "RoleUpdate", req.request_metadata).await?;
    let result = async {
        // By id, `rolename` renames; without an id (as the SDKs also call it) it names the role.
        let (id, name) = match (req.roleid, req.rolename.as_deref().map(str::trim)) {
            (Some(id), name) => (id, name),
            (None, Some(name)) => (call.tx.find_role(None, Some(name)).await?.ok_or_else(|| Error::not_found("role"))?.id, None),
            (None, None) => return Err(Error::bad("give roleid or rolename")),
        };
        call.note("roleid", id);
        if let Some(n) = name {
            check_name("rolename", n)?;
        }
        if name.is_none() && req.roledesc.is_none() && req.mintable.is_none() {
            return Err(Error::bad("nothing to update: give rolename, roledesc or mintable"));
        }
        if !call.tx.update_role(id, name, req.roledesc.as_deref(), req.mintable).await? {
            return Err(Error::not_found("role"));
        }
        rebuild_rules(&mut call.tx).await?;
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn role_link_policy(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RoleReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "RoleLinkPolicy", req.request_metadata).await?;
    let result = async {
        if req.roleid.is_none() && req.rolename.is_none() || req.policyid.is_none() && req.policyname.is_none() {
            return Err(Error::bad("give roleid or rolename, and policyid or policyname"));
        }
        let role = call.tx.find_role(req.roleid, req.rolename.as_deref()).await?.ok_or_else(|| Error::not_found("role"))?;
        let policy = call.tx.find_policy(req.policyid, req.policyname.as_deref()).await?.ok_or_else(|| Error::not_found("policy"))?;
        call.tx.link_role_policy(role.id, policy.id).await?;
        call.note("roleid", role.id);
        call.note("policyid", policy.id);
        rebuild_rules(&mut call.tx).await?;
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

#[derive(Deserialize)]
struct PolicyReq {
    #[serde(default, deserialize_with = "int_or_string")]
    policyid: Option<i64>,
    #[serde(default)]
    policyname: Option<String>,
    #[serde(default)]
    policydesc: Option<String>,
    #[serde(default)]
    policy: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

async fn policy_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PolicyReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "PolicyCreate", req.request_metadata).await?;
    let result = async {
        let name = req.policyname.as_deref().map(str::trim).ok_or_else(|| Error::bad("missing field `policyname`"))?;
        check_name("policyname", name)?;
        let doc = req.policy.as_ref().ok_or_else(|| Error::bad("missing field `policy`"))?;
        checked_policy(doc)?;
        let id = call.tx.insert_policy(name, req.policydesc.as_deref().unwrap_or(""), &doc.to_string()).await?;
        call.note("policyid", id);
        rebuild_rules(&mut call.tx).await?;
        Ok(fields([("policyid", id.into())]))
    }
    .await;
    call.finish(result).await
}

async fn policy_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PolicyReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "PolicyUpdate", req.request_metadata).await?;
    let result = async {
        // By id, `policyname` renames; without an id it names the policy.
        let (id, name) = match (req.policyid, req.policyname.as_deref().map(str::trim)) {
            (Some(id), name) => (id, name),
            (None, Some(name)) => (call.tx.find_policy(None, Some(name)).await?.ok_or_else(|| Error::not_found("policy"))?.id, None),
            (None, None) => return Err(Error::bad("give policyid or policyname")),
        };
        call.note("policyid", id);
        if let Some(n) = name {
            check_name("policyname", n)?;
        }
        if let Some(doc) = &req.policy {
            checked_policy(doc)?;
        }
        if name.is_none() && req.policydesc.is_none() && req.policy.is_none() {
            return Err(Error::bad("nothing to update: give policyname, policydesc or policy"));
        }
        let doc = req.policy.as_ref().map(Value::to_string);
        if !call.tx.update_policy(id, name, req.policydesc.as_deref(), doc.as_deref()).await? {
            return Err(Error::not_found("policy"));
        }
        rebuild_rules(&mut call.tx).await?;
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn policy_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PolicyReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "PolicyGet", req.request_metadata).await?;
    let result = async {
        if req.policyid.is_none() && req.policyname.is_none() {
            return Err(Error::bad("give policyid or policyname"));
        }
        let p = call.tx.find_policy(req.policyid, req.policyname.as_deref()).await?.ok_or_else(|| Error::not_found("policy"))?;
        Ok(fields([
            ("policyid", p.id.into()),
            ("policyname", p.name.into()),
            ("policydesc", p.description.into()),
            ("policy", serde_json::from_str(&p.document)?),
        ]))
    }
    .await;
    call.finish(result).await
}

async fn policy_list(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PolicyReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "PolicyListAllPolicies", req.request_metadata).await?;
    let result = async {
        let rows: Vec<Value> = call
            .tx
            .list_policies()
            .await?
            .into_iter()
            .map(|p| json!({"policyid": p.id, "policyname": p.name, "policydesc": p.description}))
            .collect();
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}
