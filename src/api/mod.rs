//! HTTP only. Invariant: handlers parse, open a [`Call`] (seal check, tenant, credential), call
//! the domain (`records`, ...) and store/keys, and [`Call::finish`] writes the audit event in the
//! same transaction as the change before committing. A failed call, and a read that wrote
//! nothing ([`Call::finish_read`]), is audited through the group commit (`audit::batch`),
//! durable before the answer.

pub mod appdata;
pub mod audit;
pub mod body;
pub mod bulk;
pub mod bulk_lists;
pub mod consent;
pub mod cors;
pub mod credentials;
pub mod endpoints;
pub mod expiration;
pub mod files;
pub mod groups;
pub mod idempotency;
pub mod inprocess;
pub mod login;
pub mod oidc_trust;
pub mod relations;
pub mod requests;
pub mod roles;
pub mod sessions;
pub mod shared;
pub mod sys;
pub mod system;
pub mod system_ops;
pub mod tenants;
pub mod tokens;
pub mod ui_conf;
pub mod users;
pub mod vault_plugin;
pub mod when;
pub mod xtokens;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::audit::Draft;
use crate::auth::{self, Claimed, Principal};
use crate::error::{Error, Result};
use crate::keys::keyring::{Keyring, TenantKeys};
use crate::store::TenantTx;

/// One authenticated call in progress: a tenant transaction, the verified principal and keys.
pub struct Call {
    pub tx: TenantTx,
    pub who: Principal,
    pub keys: Arc<TenantKeys>,
    pub ring: Arc<Keyring>,
    pub audit: Draft,
    policy: Arc<auth::policy::TenantPolicy>,
    /// request_metadata as JSON, for policy conditions.
    meta: String,
    /// Group-relative rules and what was decided with them (see `relations`).
    pub relative: relations::Relative,
    endpoint: &'static str,
    /// Whether the endpoint normally changes something (its declaration): a read's event may
    /// be group-committed.
    effect: endpoints::Effect,
    state: AppState,
    /// A first call under an `Idempotency-Key`: its answer is kept with its change.
    idem: Option<idempotency::Pending>,
    /// Counts this call as in flight (group commit decides by it: `finish_read`).
    _presence: crate::audit::batch::Presence,
}

impl Call {
    /// Checks the seal, resolves the tenant, verifies the credential. A refused credential is
    /// itself audited in the tenant it tried.
    pub async fn open(state: &AppState, claimed: &Claimed, endpoint: &'static str, metadata: body::Metadata) -> Result<Call> {
        // Every name a handler opens with is declared (a test walks them all); one that is not
        // is refused rather than guessed at.
        let Some(declared) = endpoints::declared(endpoint) else {
            return Err(Error::Internal(anyhow::anyhow!("endpoint {endpoint} is not declared in api::endpoints")));
        };
        let ring = state.vault().keyring()?;
        let Some(mut tx) = state.db().tenant_tx_by_name(&claimed.tenant).await? else {
            tracing::info!(endpoint, "request for an unknown tenant refused");
            return Err(Error::denied());
        };
        let keys = crate::custody::rotation::tenant_keys(state.vault().tenant_keks(), &ring, &mut tx).await?;
        let mut audit = Draft::default();
        let meta = metadata.0.as_ref().map_or_else(|| "null".to_string(), Value::to_string);
        if let Some(m) = metadata.0 {
            audit.details.insert("request_metadata".into(), m);
        }
        // A locked-out address still has its secrets checked (slowly, unless they verified
        // before), so that a neighbour's wrong secrets never lock out a working credential.
        let fingerprint = claimed.token.as_deref().map(|t| crate::auth::ratelimit::Limits::fingerprint(t));
        let gate = match &fingerprint {
            Some(f) => Some(state.limits().gate(claimed.ip, f).await?),
            None => None,
        };
        let who = match &claimed.token {
            // A JWT is one of our leases or an identity token of an OIDC trust, told by its issuer.
            Some(token) if auth::lease::looks_like_jwt(token) => match auth::oidc::unverified_issuer(token) {
                Some(iss) if iss != auth::lease::ISSUER => {
                    auth::oidc::verify(&mut tx, state.oidc_keys(), &claimed.tenant, token, &iss).await?
                }
                _ => auth::verify_lease(&mut tx, &ring, &claimed.tenant, token).await?,
            },
            Some(token) => auth::verify(&mut tx, &ring, state.verified(), &claimed.tenant, token).await?,
            None => None,
        };
        let Some(who) = who else {
            let reason = if claimed.token.is_some() { "invalid credential" } else { "missing credential" };
            audit.details.insert("message".into(), reason.into());
            crate::audit::append(&mut tx, &keys, endpoint, "anonymous", crate::audit::Outcome::Denied, audit).await?;
            tx.commit().await?;
            return Err(match gate {
                Some(gate) => state.limits().refuse(claimed.ip, gate),
                None => Error::Forbidden("missing X-Bunker-Token".into()),
            });
        };
        if let Some(f) = fingerprint {
            state.limits().verified(f);
        }
        state.limits().check_credential(&who.actor())?;
        let policy = state.authorizer().for_tenant(&mut tx).await?;
        let profile = declared.resource == auth::policy::Resource::UsersProfile;
        let resource = declared.resource.as_str();
        let subject = who.role.as_str();
        let mut allowed = policy.allows(subject, &claimed.tenant, resource, endpoint, &meta).await;
        if !allowed && profile {
            // A role that may read only some fields gets through; the handler masks the rest.
            allowed = policy.allows(subject, &claimed.tenant, auth::policy::PARTIAL_PROFILE, endpoint, &meta).await;
        }
        let mut relative = relations::Relative::default();
        if policy.has_tenant_rules() {
            // A user token also carries the tenant roles its record holds in groups; and rules
            // that need the target are collected here and decided when it is found.
            if let Some(token) = &who.self_user {
                if let Some(id) = tx.live_user_id(token).await? {
                    relative.caller = Some((id, tx.memberships_of(id).await?));
                }
            }
            let mut subjects = vec![subject.to_string()];
            for s in relative.group_subjects() {
                if !allowed {
                    allowed = policy.allows(&s, &claimed.tenant, resource, endpoint, &meta).await
                        || (profile && policy.allows(&s, &claimed.tenant, auth::policy::PARTIAL_PROFILE, endpoint, &meta).await);
                }
                subjects.push(s);
            }
            let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
            relative.grants = policy.relative_for(&refs, endpoint);
            if !allowed && relative.grants.iter().any(|g| g.allow) {
                allowed = true;
                relative.required = true;
            }
        }
        // Tenant and system management reach across tenants: only the main tenant's own root
        // credential, whatever a tenant's roles and policies say.
        if auth::policy::main_root_only(declared.resource, endpoint)
            && !(who.is_root() && who.tenant_id == crate::vault::DEFAULT_TENANT_ID && who.lease_id.is_none())
        {
            allowed = false;
        }
        if !allowed {
            audit.details.insert("message".into(), format!("role {} may not call {endpoint}", who.role).into());
            crate::audit::append(&mut tx, &keys, endpoint, &who.actor(), crate::audit::Outcome::Denied, audit).await?;
            tx.commit().await?;
            return Err(Error::denied());
        }
        // Authorized like a first call, a retry under its key hears the first answer.
        let idem = match &claimed.idempotency {
            Some(claim) => match idempotency::admit(&mut tx, &keys, &who, endpoint, claim).await {
                Ok(pending) => Some(pending),
                Err(Error::Replayed(answer)) => {
                    audit.details.insert("replayed".into(), true.into());
                    crate::audit::append(&mut tx, &keys, endpoint, &who.actor(), crate::audit::Outcome::Ok, audit).await?;
                    tx.commit().await?;
                    return Err(Error::Replayed(answer));
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        tracing::debug!(endpoint, tenant = who.tenant_id, actor = %who.actor(), "call");
        let _presence = state.audit_batch().presence(who.tenant_id);
        let effect = declared.effect;
        Ok(Call { tx, who, keys, ring, audit, policy, meta, relative, endpoint, effect, state: state.clone(), idem, _presence })
    }

    /// Whether this call's role may also call `endpoint` on `resource` (for calls that reach
    /// data another endpoint guards, such as a shared record snapshotting app data).
    pub async fn may(&self, resource: &str, endpoint: &str) -> bool {
        self.policy.allows(self.who.role.as_str(), &self.who.tenant_name, resource, endpoint, &self.meta).await
    }

    /// Field-level masking of a profile this call read: for a tenant-defined role, a top-level
    /// field the role may not read under this endpoint becomes "***" (strings) or disappears
    /// (other types). Built-in roles see whole records.
    pub async fn mask_profile(&self, profile: &mut Value) {
        if let Some(views) = &self.relative.views {
            relations::apply_views(profile, views);
            return;
        }
        if !self.who.role.is_tenant_role() {
            return;
        }
        let Value::Object(fields) = profile else { return };
        let subject = self.who.role.as_str();
        let mut hidden = Vec::new();
        for (name, value) in fields.iter_mut() {
            let resource = format!("users.profile.{name}");
            if !self.policy.allows(subject, &self.who.tenant_name, &resource, self.endpoint, &self.meta).await {
                if value.is_string() {
                    *value = Value::String("***".into());
                } else {
                    hidden.push(name.clone());
                }
            }
        }
        for name in hidden {
            fields.remove(&name);
        }
    }

    /// The endpoint this call serves.
    pub fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    /// The request's request_metadata (null when absent).
    pub fn metadata(&self) -> Value {
        serde_json::from_str(&self.meta).unwrap_or(Value::Null)
    }

    /// Queues a callback reporting `event` in this call's transaction, when callbacks are
    /// configured (`STRONGROOM_CALLBACK_URL`; without, nothing is queued).
    pub async fn callback(&mut self, event: crate::privacy::callbacks::Event, user_token: Option<&str>, extra: Value) -> Result<()> {
        if self.state.config().callback_url.is_none() {
            return Ok(());
        }
        crate::privacy::callbacks::enqueue(&mut self.tx, &self.who.tenant_name, event, user_token, extra).await
    }

    /// Records a detail in this call's audit event (encrypted at rest).
    pub fn note(&mut self, key: &str, value: impl Into<Value>) {
        self.audit.details.insert(key.to_string(), value.into());
    }

    /// Records the user this call acted on; the event's details are then wrapped by that user's
    /// key, so they die with the user.
    pub fn note_user(&mut self, token: &str, key: Arc<crate::keys::envelope::Key>) {
        self.audit.user_token = Some(token.to_string());
        self.audit.user_key = Some(key);
    }

    /// Audits and commits on success; on failure rolls back, audits the failure on its own
    /// (group-committed: nothing of the call is left to commit with it), and returns the error.
    /// A successful read may have its event group-committed instead ([`Call::finish_read`]).
    pub async fn finish(self, result: Result<Map<String, Value>>) -> Result<Json<Value>> {
        match self.effect {
            endpoints::Effect::Reads => self.finish_read(result).await,
            endpoints::Effect::Changes => self.finish_in_tx(result).await,
        }
    }

    /// The event in the call's own transaction, committed with whatever it changed.
    async fn finish_in_tx(self, result: Result<Map<String, Value>>) -> Result<Json<Value>> {
        // Let through by a group-relative rule alone, the call must have checked its target.
        let result = match result {
            Ok(_) if self.unchecked() => Err(Error::denied()),
            other => other,
        };
        let Call { mut tx, who, keys, mut audit, endpoint, state, idem, .. } = self;
        match result {
            Ok(fields) => {
                crate::audit::append(&mut tx, &keys, endpoint, &who.actor(), crate::audit::Outcome::Ok, audit).await?;
                let answer = ok_answer(fields);
                if let Some(pending) = &idem {
                    if let Err(e) = idempotency::keep(&mut tx, pending, &answer).await {
                        let _ = tx.rollback().await;
                        return Err(e);
                    }
                }
                tx.commit().await?;
                Ok(Json(answer))
            }
            Err(err) => {
                let _ = tx.rollback().await;
                audit.details.insert("message".into(), err.public_message().into());
                let outcome = crate::audit::Outcome::Failed(err.status().as_u16());
                let recorded = async {
                    let event = crate::audit::seal(&keys, endpoint, &who.actor(), outcome, audit)?;
                    state.audit_batch().record(who.tenant_id, event).await
                };
                if let Err(e) = recorded.await {
                    tracing::error!(endpoint, error = %e, "could not audit a failed call");
                }
                Err(err)
            }
        }
    }

    /// For an endpoint declared as a read ([`endpoints::Effect::Reads`]). When other calls of
    /// its tenant are in flight on this instance and this one's transaction wrote nothing, the
    /// transaction is discarded and the event is group-committed with other calls' events
    /// ([`crate::audit::batch`]); the answer still waits until its event is durable. Whether it
    /// wrote is asked of PostgreSQL, so a read that did change something (a sliding expiry
    /// extended) commits the change with its event, as `finish` does; so does a call alone in
    /// its tenant.
    async fn finish_read(mut self, result: Result<Map<String, Value>>) -> Result<Json<Value>> {
        let fields = match result {
            Ok(fields) if self.idem.is_none() && !self.unchecked() && !self.state.audit_batch().alone(self.who.tenant_id) => fields,
            other => return self.finish_in_tx(other).await,
        };
        match self.tx.wrote_nothing().await {
            Ok(true) => {}
            Ok(false) => return self.finish_in_tx(Ok(fields)).await,
            Err(e) => return self.finish_in_tx(Err(e.into())).await,
        }
        let Call { tx, who, keys, audit, endpoint, state, .. } = self;
        tx.discard();
        let event = crate::audit::seal(&keys, endpoint, &who.actor(), crate::audit::Outcome::Ok, audit)?;
        state.audit_batch().record(who.tenant_id, event).await?;
        Ok(Json(ok_answer(fields)))
    }

    /// Let through by a group-relative rule alone, and never checked its target.
    fn unchecked(&self) -> bool {
        self.relative.required && !self.relative.checked
    }
}

/// A successful call's answer: its fields and `"status": "ok"`.
fn ok_answer(mut fields: Map<String, Value>) -> Value {
    fields.insert("status".into(), "ok".into());
    Value::Object(fields)
}

impl Call {
    /// As [`Call::finish`], then adds `secret` (a token or key shown once) under `field` of the
    /// response; the secret never enters the audit event.
    pub async fn finish_revealing(self, result: Result<Map<String, Value>>, field: &str, secret: Option<String>) -> Result<Json<Value>> {
        let Json(mut body) = self.finish(result).await?;
        if let Some(s) = secret {
            body[field] = Value::String(s);
        }
        Ok(Json(body))
    }
}

/// Builds a response object from `(key, value)` pairs.
pub fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Every v2 endpoint answers 503 while this instance is sealed.
async fn require_unsealed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.vault().keyring() {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The Databunker Pro v2 surface.
pub fn v2_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(users::routes())
        .merge(expiration::routes())
        .merge(login::routes())
        .merge(tenants::routes())
        .merge(ui_conf::routes())
        .merge(audit::routes())
        .merge(system::routes())
        .merge(system_ops::routes())
        .merge(bulk_lists::routes())
        .merge(credentials::routes())
        .merge(roles::routes())
        .merge(appdata::routes())
        .merge(sessions::routes())
        .merge(files::routes())
        .merge(consent::routes())
        .merge(bulk::routes())
        .merge(tokens::routes())
        .merge(requests::routes())
        .merge(groups::routes())
        .merge(shared::routes())
        .merge(vault_plugin::routes())
        .merge(oidc_trust::routes())
        .merge(xtokens::routes())
        .route("/v2/{name}", post(unknown_endpoint))
        .layer(axum::middleware::from_fn_with_state(state.config().max_body_bytes, idempotency::digest))
        .layer(axum::middleware::from_fn_with_state(state, require_unsealed))
}

/// An endpoint name no route serves: 404, whatever its spelling (a percent-encoded name such as
/// `%55serGet` reaches here too, and is not an alias).
async fn unknown_endpoint(axum::extract::Path(name): axum::extract::Path<String>) -> Error {
    Error::NotFound(format!("unknown endpoint {}", name.chars().filter(|c| c.is_ascii_alphanumeric()).take(64).collect::<String>()))
}

/// Every v2 endpoint this vault serves (declared in [`endpoints`]).
pub fn v2_endpoints() -> impl Iterator<Item = &'static str> {
    endpoints::ENDPOINTS.iter().filter(|e| e.origin != endpoints::Origin::Internal).map(|e| e.name)
}

/// Every endpoint name of the v2 wire contract.
pub fn contract_endpoints() -> impl Iterator<Item = &'static str> {
    endpoints::of(endpoints::Origin::Contract)
}

/// Every endpoint name a call can carry (what a policy's Action may name).
pub fn known_endpoints() -> Vec<&'static str> {
    endpoints::ENDPOINTS.iter().map(|e| e.name).collect()
}

/// The vault's own POST endpoints under /v1 (seal, keys, credentials, the Vault plugin).
pub const V1_VAULT_POSTS: &[&str] = &[
    "/v1/sys/init",
    "/v1/sys/unseal",
    "/v1/sys/generate-root",
    "/v1/sys/rekey",
    "/v1/sys/seal",
    "/v1/sys/root-token/rotate",
    "/v1/sys/root-token/revoke",
    "/v1/sys/rotate-tenant-key",
    "/v1/sys/tenant-key-status",
    "/v1/credentials/create",
    "/v1/credentials/revoke",
    "/v1/vault/creds",
    "/v1/vault/renew",
    "/v1/vault/revoke",
];

/// Of [`V1_VAULT_POSTS`], those that take no arguments and change the vault for every caller
/// (a robustness test that sends them anything as root would seal the vault or retire its own
/// token).
pub const V1_ARGUMENTLESS_SWITCHES: &[&str] = &["/v1/sys/seal", "/v1/sys/root-token/rotate", "/v1/sys/root-token/revoke"];

#[cfg(test)]
mod tests {
    #[test]
    fn the_contract_has_92_endpoints() {
        assert_eq!(super::contract_endpoints().count(), 92);
    }
}
