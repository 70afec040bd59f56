//! The casbin enforcer. Invariant: every authenticated call is decided here before it does
//! anything; deny wins over allow; the built-in model and roles ship in the binary
//! (`policies/model.conf`, `policies/policy.csv`); a tenant's own roles and JSON policies are
//! translated into rules stored in its database rows and loaded into an enforcer of its own,
//! rebuilt whenever the tenant's policy version moves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use casbin::function_map::OperatorFunction;
use casbin::rhai::Dynamic;
use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use serde_json::Value;
use tokio::sync::RwLock;

use super::conditions::{Condition, Holds, MetaFacts};
use crate::error::{Error, Result};
use crate::store::roles::Rule;
use crate::store::TenantTx;

pub const MODEL: &str = include_str!("../../policies/model.conf");
pub const BUILT_IN: &str = include_str!("../../policies/policy.csv");

/// The built-in roles, as credential kinds.
pub const ROLES: &[&str] = &["root", "tenant-admin", "dpo", "auditor", "app-writer", "app-reader", "vault-plugin", "user-self"];
/// Casbin subjects of a tenant's own roles are `role:<name>`.
pub const CUSTOM_PREFIX: &str = super::roles::TENANT_PREFIX;
/// The resource a read endpoint asks for when a role may see only some profile fields.
pub const PARTIAL_PROFILE: &str = "users.profile#partial";

/// Rows of casbin rules, each a list of fields.
pub type Rows = Vec<Vec<String>>;

/// `(policies, groupings)` of a policy CSV: `p, …` and `g, …` lines, comments skipped.
pub fn parse_csv(text: &str) -> anyhow::Result<(Rows, Rows)> {
    let (mut p, mut g) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<String> = line.split(',').map(|f| f.trim().to_string()).collect();
        match fields.first().map(String::as_str) {
            Some("p") if fields.len() == 6 && matches!(fields[5].as_str(), "allow" | "deny") => {
                let mut rule = fields[1..].to_vec();
                rule.push(String::new());
                p.push(rule)
            }
            Some("g") if fields.len() == 3 => g.push(fields[1..].to_vec()),
            _ => {
                anyhow::bail!("policy.csv line {}: expected `p, role, tenant, resource, endpoint, allow|deny` or `g, role, parent`", n + 1)
            }
        }
    }
    Ok((p, g))
}

fn text(d: &Dynamic) -> String {
    d.clone().into_string().unwrap_or_default()
}

/// `metaMatch(request_metadata JSON, condition JSON)`: an empty condition always holds.
fn meta_match(meta: Dynamic, cond: Dynamic) -> Dynamic {
    condition_holds(&text(&meta), &text(&cond)).into()
}

/// Evaluates a stored Condition (a Pro `Condition` document) against request_metadata: the
/// conditions casbin sees name request_metadata only (see [`TenantPolicy::build`]); anything
/// unparseable does not hold.
pub fn condition_holds(meta: &str, cond: &str) -> bool {
    if cond.is_empty() {
        return true;
    }
    let (Ok(doc), meta) = (serde_json::from_str::<Value>(cond), serde_json::from_str::<Value>(meta).unwrap_or(Value::Null)) else {
        return false;
    };
    match Condition::parse(&doc) {
        Ok(c) => c.eval(&MetaFacts(&meta)) == Holds::Yes,
        Err(_) => false,
    }
}

/// A Pro JSON policy, validated.
pub struct ParsedPolicy {
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub principal_roles: Vec<String>,
    pub condition: String,
}

fn strings(v: Option<&Value>, field: &str, required: bool) -> Result<Vec<String>> {
    let out: Vec<String> = match v {
        None | Some(Value::Null) if !required => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| Error::bad(format!("policy.{field} must hold strings"))))
            .collect::<Result<_>>()?,
        _ => return Err(Error::bad(format!("policy.{field} must be a string or an array of strings"))),
    };
    if required && (out.is_empty() || out.iter().any(|s| s.trim().is_empty() || s.contains(','))) {
        return Err(Error::bad(format!("policy.{field} needs at least one non-empty entry without commas")));
    }
    Ok(out)
}

pub fn parse_policy(doc: &Value) -> Result<ParsedPolicy> {
    let Value::Object(o) = doc else { return Err(Error::bad("policy must be a JSON object")) };
    let allow = match o.get("Effect").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(Error::bad("policy.Effect must be Allow or Deny")),
    };
    let principal_roles = match o.get("Principal") {
        None | Some(Value::Null) => vec![],
        Some(Value::Object(p)) => strings(p.get("Role"), "Principal.Role", false)?,
        Some(_) => return Err(Error::bad("policy.Principal must be an object")),
    };
    let condition = match o.get("Condition") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(c)) if c.is_empty() => String::new(),
        Some(c) => {
            Condition::parse(c)?;
            c.to_string()
        }
    };
    let resources = strings(o.get("Resource"), "Resource", true)?;
    let contextual = !condition.is_empty() && Condition::parse(&serde_json::from_str(&condition)?)?.is_contextual();
    for r in &resources {
        match relative_resource(r)? {
            Some(_) => {}
            None if contextual && !(r == "*" || r.starts_with("users.")) => {
                return Err(Error::bad(format!(
                    "policy.Resource {r}: a condition on the caller's groups or the target record applies to user records only"
                )))
            }
            None => check_resource(r)?,
        }
    }
    Ok(ParsedPolicy { allow, actions: strings(o.get("Action"), "Action", true)?, resources, principal_roles, condition })
}

/// What an endpoint acts on: the object of its policy request. Declared per endpoint in
/// `api::endpoints`; the text is what policies name (`users.profile.<field>` names one field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    UsersProfile,
    UsersAppdata,
    UsersFiles,
    UsersBulk,
    Requests,
    RequestsFile,
    Audit,
    Tenants,
    Ui,
    System,
    Vault,
    Credentials,
    Policies,
    Tokens,
    Groups,
    Shared,
    Sessions,
    Consent,
}

impl Resource {
    pub const ALL: [Resource; 18] = [
        Resource::UsersProfile,
        Resource::UsersAppdata,
        Resource::UsersFiles,
        Resource::UsersBulk,
        Resource::Requests,
        Resource::RequestsFile,
        Resource::Audit,
        Resource::Tenants,
        Resource::Ui,
        Resource::System,
        Resource::Vault,
        Resource::Credentials,
        Resource::Policies,
        Resource::Tokens,
        Resource::Groups,
        Resource::Shared,
        Resource::Sessions,
        Resource::Consent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::UsersProfile => "users.profile",
            Resource::UsersAppdata => "users.appdata",
            Resource::UsersFiles => "users.files",
            Resource::UsersBulk => "users.bulk",
            Resource::Requests => "requests",
            Resource::RequestsFile => "requests.file",
            Resource::Audit => "audit",
            Resource::Tenants => "tenants",
            Resource::Ui => "ui",
            Resource::System => "system",
            Resource::Vault => "vault",
            Resource::Credentials => "credentials",
            Resource::Policies => "policies",
            Resource::Tokens => "tokens",
            Resource::Groups => "groups",
            Resource::Shared => "shared",
            Resource::Sessions => "sessions",
            Resource::Consent => "consent",
        }
    }
}

/// A plain resource pattern must name, or (with `*`) cover, at least one resource: a typo in a
/// Deny would otherwise deny nothing.
fn check_resource(r: &str) -> Result<()> {
    let field = r.strip_prefix("users.profile.").is_some_and(|f| !f.is_empty() && !f.contains('*'));
    let covers = Resource::ALL.iter().any(|res| keymatch(res.as_str(), r)) || keymatch("users.profile.x", r);
    if r.starts_with("${") || !(field || covers) {
        return Err(Error::bad(format!(
            "policy.Resource {r} names no resource (one of {}, users.profile.<field>, a * pattern, or ${{target_group_members:role/<role>}}.<part>)",
            Resource::ALL.map(Resource::as_str).join(", ")
        )));
    }
    Ok(())
}

/// Each action (an endpoint name, or a `*` pattern) must name or cover at least one of `known`.
pub fn check_actions(actions: &[String], known: &[&str]) -> Result<()> {
    for a in actions {
        if !known.iter().any(|k| keymatch(k, a)) {
            return Err(Error::bad(format!("policy.Action {a} names no endpoint")));
        }
    }
    Ok(())
}

/// casbin's keyMatch: `key` matches `pattern` when equal, or when `pattern` has a `*` and `key`
/// starts with what comes before it.
pub fn keymatch(key: &str, pattern: &str) -> bool {
    match pattern.find('*') {
        Some(i) => key.len() >= i && key.as_bytes()[..i] == pattern.as_bytes()[..i],
        None => key == pattern,
    }
}

/// What a group-relative rule grants of the target record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Everything about the record (`.*`, or no suffix).
    Record,
    /// Its whole profile (`.profile.*`).
    Profile,
    /// One profile field (`.profile.<field>`).
    Field(String),
    /// Its membership: it may be listed with its group (`.group`, BulkListGroupUsers).
    Group,
}

/// `${target_group_members:role/<role>}.<part>`: `(role, view)`; `None` for a plain resource;
/// 400 for any other `${...}` form.
pub fn relative_resource(r: &str) -> Result<Option<(String, View)>> {
    let Some(rest) = r.strip_prefix("${") else { return Ok(None) };
    let bad = || {
        Error::bad(format!(
            "policy.Resource {r} cannot be evaluated (group-relative resources are ${{target_group_members:role/<role>}} with .*, \
             .profile.*, .profile.<field> or .group)"
        ))
    };
    let (inner, part) = rest.split_once('}').ok_or_else(bad)?;
    let role = inner
        .strip_prefix("target_group_members:role/")
        .filter(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)))
        .ok_or_else(bad)?;
    let view = match part {
        "" | ".*" => View::Record,
        ".profile" | ".profile.*" => View::Profile,
        ".group" => View::Group,
        p => match p.strip_prefix(".profile.") {
            Some(f) if !f.is_empty() && !f.contains(['*', '.']) => View::Field(f.to_string()),
            _ => return Err(bad()),
        },
    };
    Ok(Some((role.to_string(), view)))
}

/// A rule that needs the caller's groups or the target record to decide: a group-relative
/// resource, or a condition on groups or the target. Kept out of casbin and decided where the
/// target is known (see `api::relations`).
#[derive(Debug, Clone)]
pub struct RelativeGrant {
    /// The casbin subject it is for (`role:<name>`).
    pub subject: String,
    /// An endpoint name or `*` pattern.
    pub action: String,
    /// The target must hold this role in one of its groups.
    pub target_role: Option<String>,
    pub view: View,
    pub allow: bool,
    pub condition: Condition,
}

impl RelativeGrant {
    fn from_rule((sub, obj, act, eft, cond): &Rule) -> Option<RelativeGrant> {
        let condition = if cond.is_empty() { Condition::default() } else { Condition::parse(&serde_json::from_str(cond).ok()?).ok()? };
        let (target_role, view) = match relative_resource(obj).ok()? {
            Some((role, view)) => (Some(role), view),
            None if condition.is_contextual() => (None, plain_view(obj)),
            None => return None,
        };
        Some(RelativeGrant { subject: sub.clone(), action: act.clone(), target_role, view, allow: eft == "allow", condition })
    }
}

/// The view a plain users.* resource gives of a record.
fn plain_view(obj: &str) -> View {
    match obj.strip_prefix("users.profile.") {
        Some(f) if !f.contains('*') => View::Field(f.to_string()),
        Some(_) => View::Profile,
        None if obj == "users.profile" => View::Profile,
        None => View::Record,
    }
}

/// Casbin rules for `role` from one policy. `users.profile.*` also grants `users.profile` (the
/// object endpoints ask for), and an allowed single field lets reads through with masking.
pub fn translate(role: &str, p: &ParsedPolicy) -> Vec<Rule> {
    let sub = format!("{CUSTOM_PREFIX}{role}");
    let eft = if p.allow { "allow" } else { "deny" };
    let mut out = Vec::new();
    let contextual = !p.condition.is_empty()
        && serde_json::from_str::<Value>(&p.condition).ok().and_then(|d| Condition::parse(&d).ok()).is_some_and(|c| c.is_contextual());
    for act in &p.actions {
        for res in &p.resources {
            let mut push = |obj: &str| out.push((sub.clone(), obj.to_string(), act.clone(), eft.to_string(), p.condition.clone()));
            push(res);
            if contextual || res.starts_with("${") {
                // Decided where the target is known, from this one rule (RelativeGrant).
                continue;
            }
            if let Some(base) = res.strip_suffix(".*") {
                push(base);
            }
            if p.allow && res.starts_with("users.profile.") && !res.contains('*') {
                push(PARTIAL_PROFILE);
            }
        }
    }
    out
}

/// One tenant's enforcer (or the built-in one, for tenants without policies of their own).
pub struct TenantPolicy {
    enforcer: RwLock<Enforcer>,
    /// Rules casbin cannot decide without the target (see [`RelativeGrant`]).
    relative: Vec<RelativeGrant>,
    /// Whether the tenant has rules of its own (roles and policies).
    tenant_rules: bool,
    /// Decisions already made for requests without request_metadata, by role, tenant, resource
    /// and endpoint. Exact, not a guess: this enforcer's rules never change (a policy change
    /// builds a new `TenantPolicy` under a new policy version, read fresh in every transaction),
    /// and casbin's decision is a function of its rules and the request. It spares the matcher's script evaluation, which was 12 % of the server's CPU
    /// in a UserGet benchmark.
    decisions: std::sync::Mutex<HashMap<String, bool>>,
}

/// At most this many remembered decisions per enforcer (then it starts over): roles × tenants
/// × endpoints stays far below it in practice, and a flood of made-up role names cannot grow it.
const DECISIONS_MAX: usize = 8192;

impl TenantPolicy {
    async fn build(extra: &[Rule]) -> anyhow::Result<TenantPolicy> {
        let model = DefaultModel::from_str(MODEL).await?;
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await?;
        enforcer.add_function("metaMatch", OperatorFunction::Arg2(meta_match));
        let (mut p, g) = parse_csv(BUILT_IN)?;
        let mut relative = Vec::new();
        for rule in extra {
            match RelativeGrant::from_rule(rule) {
                Some(grant) => relative.push(grant),
                None => {
                    let (s, o, a, e, c) = rule;
                    p.push(vec![s.clone(), "*".into(), o.clone(), a.clone(), e.clone(), c.clone()]);
                }
            }
        }
        enforcer.add_policies(p).await?;
        if !g.is_empty() {
            enforcer.add_grouping_policies(g).await?;
        }
        Ok(TenantPolicy { enforcer: RwLock::new(enforcer), relative, tenant_rules: !extra.is_empty(), decisions: Default::default() })
    }

    /// Whether the tenant has roles and policies of its own (else group roles change nothing).
    pub fn has_tenant_rules(&self) -> bool {
        self.tenant_rules
    }

    /// The group-relative rules for any of `subjects` that cover `endpoint`.
    pub fn relative_for(&self, subjects: &[&str], endpoint: &str) -> Vec<RelativeGrant> {
        self.relative.iter().filter(|g| subjects.contains(&g.subject.as_str()) && keymatch(endpoint, &g.action)).cloned().collect()
    }

    /// Whether `role` may call `endpoint` on `resource` in `tenant` with this request_metadata
    /// (JSON). An enforcer error denies.
    pub async fn allows(&self, role: &str, tenant: &str, resource: &str, endpoint: &str, meta: &str) -> bool {
        // Conditions compare request_metadata, which differs per request: only requests without
        // it are remembered, keyed length-prefixed so no two requests share a key whatever
        // their names contain.
        let key = (meta == "null").then(|| {
            let mut k = String::with_capacity(role.len() + tenant.len() + resource.len() + endpoint.len() + 16);
            for part in [role, tenant, resource, endpoint] {
                k.push_str(&part.len().to_string());
                k.push(':');
                k.push_str(part);
            }
            k
        });
        if let Some(k) = &key {
            if let Some(known) = self.decisions.lock().unwrap_or_else(|p| p.into_inner()).get(k) {
                return *known;
            }
        }
        let e = self.enforcer.read().await;
        let decided = match e.enforce((role, tenant, resource, endpoint, meta)) {
            Ok(ok) => ok,
            Err(err) => {
                // Not remembered: an error is not a decision.
                tracing::error!(error = %err, "policy evaluation failed; denying");
                return false;
            }
        };
        if let Some(k) = key {
            let mut known = self.decisions.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() >= DECISIONS_MAX {
                known.clear();
            }
            known.insert(k, decided);
        }
        decided
    }
}

pub struct Authorizer {
    built_in: Arc<TenantPolicy>,
    tenants: Mutex<HashMap<i64, (i32, Arc<TenantPolicy>)>>,
}

impl Authorizer {
    pub async fn built_in() -> anyhow::Result<Authorizer> {
        Ok(Authorizer { built_in: Arc::new(TenantPolicy::build(&[]).await?), tenants: Mutex::new(HashMap::new()) })
    }

    /// The enforcer for the transaction's tenant at its current policy version.
    pub async fn for_tenant(&self, tx: &mut TenantTx) -> Result<Arc<TenantPolicy>> {
        let (id, version) = (tx.tenant_id(), tx.policy_version());
        if version == 0 {
            return Ok(self.built_in.clone());
        }
        if let Some((v, p)) = self.tenants.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            if *v == version {
                return Ok(p.clone());
            }
        }
        let rules = tx.policy_rules().await?;
        let policy = Arc::new(TenantPolicy::build(&rules).await.map_err(Error::Internal)?);
        self.tenants.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (version, policy.clone()));
        Ok(policy)
    }

    /// Built-in roles only (no tenant policies).
    pub async fn allows(&self, role: &str, tenant: &str, resource: &str, endpoint: &str) -> bool {
        self.built_in.allows(role, tenant, resource, endpoint, "null").await
    }
}

/// Endpoints that act across tenants (tenant and system management; TenantGet aside, which a
/// tenant's admin may call for its own tenant): the main tenant's root credential only, checked
/// in `Call::open` on top of casbin so that no tenant-defined policy can grant them.
pub fn main_root_only(resource: Resource, endpoint: &str) -> bool {
    matches!(resource, Resource::System | Resource::Tenants) && endpoint != "TenantGet"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource_of(endpoint: &str) -> &'static str {
        crate::api::endpoints::declared(endpoint).expect("declared").resource.as_str()
    }

    async fn can(a: &Authorizer, role: &str, endpoint: &str) -> bool {
        a.allows(role, "acme", resource_of(endpoint), endpoint).await
    }

    #[tokio::test]
    async fn the_built_in_roles_allow_and_deny_as_documented() {
        let a = Authorizer::built_in().await.unwrap();
        for ep in ["UserCreate", "UserGet", "UserDelete", "AuditGetEvent", "TenantGet", "CredentialCreate", "PolicyCreate"] {
            assert!(can(&a, "tenant-admin", ep).await, "tenant-admin {ep}");
        }
        for ep in ["TenantCreate", "TenantDelete", "TenantListTenants", "SystemGenerateWrappingKey", "VaultCreds"] {
            assert!(!can(&a, "tenant-admin", ep).await, "tenant-admin {ep}");
        }
        for ep in ["TenantCreate", "TenantDelete"] {
            assert_eq!(resource_of(ep), "tenants");
            assert!(a.allows("root", "default", "tenants", ep).await);
            assert!(!a.allows("root", "acme", "tenants", ep).await);
            for role in ["dpo", "auditor", "app-writer", "app-reader", "vault-plugin", "user-self"] {
                assert!(!a.allows(role, "default", "tenants", ep).await, "{role} {ep}");
            }
        }
        assert!(can(&a, "app-writer", "UserGet").await && can(&a, "app-writer", "UserCreateBulk").await);
        assert!(!can(&a, "app-writer", "UserDelete").await && !can(&a, "app-reader", "UserCreate").await);
        assert!(can(&a, "auditor", "AuditListUserEvents").await && !can(&a, "auditor", "UserGet").await);
        assert!(can(&a, "dpo", "UserDelete").await && !can(&a, "dpo", "UserCreate").await);
        assert!(can(&a, "vault-plugin", "VaultCreds").await && !can(&a, "vault-plugin", "UserGet").await);
        assert!(!can(&a, "user-self", "UserDelete").await && can(&a, "user-self", "UserGet").await);
        assert!(!can(&a, "nobody", "UserGet").await);
    }

    #[tokio::test]
    async fn remembered_decisions_are_the_enforcers_own() {
        let wide = parse_policy(&json!({"Effect": "Allow", "Action": ["User*"], "Resource": ["users.profile.*"]})).unwrap();
        let kyc_only = parse_policy(&json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile.name"],
            "Condition": {"StringEquals": {"request_metadata.purpose": "kyc"}}}))
        .unwrap();
        let mut rules = translate("ops", &wide);
        rules.extend(translate("support", &kyc_only));
        let remembered = TenantPolicy::build(&rules).await.unwrap();
        let cases = [
            ("role:ops", "acme", "users.profile.email", "UserGet"),
            ("role:ops", "acme", "users.profile.email", "UserDelete"),
            ("role:ops", "other", "users.profile.email", "UserGet"),
            ("role:support", "acme", "users.profile.name", "UserGet"),
            ("app-reader", "acme", "users.profile", "UserGet"),
            ("app-reader", "acme", "users.profile", "UserCreate"),
            // Names that run together differently must not share a decision.
            ("role:ops", "acmeusers.profile", "", "UserGet"),
        ];
        let kyc = r#"{"purpose":"kyc"}"#;
        for round in 0..3 {
            for (role, tenant, resource, endpoint) in cases {
                for meta in ["null", kyc] {
                    // A fresh enforcer per check: the truth, never remembered.
                    let truth = TenantPolicy::build(&rules).await.unwrap().allows(role, tenant, resource, endpoint, meta).await;
                    assert_eq!(
                        remembered.allows(role, tenant, resource, endpoint, meta).await,
                        truth,
                        "round {round}: {role} {tenant} {resource} {endpoint} {meta}"
                    );
                }
            }
        }
        // Requests with request_metadata are decided afresh every time.
        let n = remembered.decisions.lock().unwrap().len();
        assert_eq!(n, cases.len());
    }

    #[tokio::test]
    async fn translated_policies_honour_conditions_fields_and_deny() {
        let allow = parse_policy(&json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile.name"],
            "Condition": {"StringEquals": {"request_metadata.purpose": "kyc"}}}))
        .unwrap();
        let deny = parse_policy(&json!({"Effect": "Deny", "Action": "UserGet", "Resource": "users.profile.ssn"})).unwrap();
        let wide = parse_policy(&json!({"Effect": "Allow", "Action": ["User*"], "Resource": ["users.profile.*"]})).unwrap();
        let mut rules = translate("support", &allow);
        rules.extend(translate("ops", &wide));
        rules.extend(translate("ops", &deny));
        let p = TenantPolicy::build(&rules).await.unwrap();
        let kyc = r#"{"purpose":"kyc"}"#;
        assert!(p.allows("role:support", "acme", "users.profile.name", "UserGet", kyc).await);
        assert!(!p.allows("role:support", "acme", "users.profile.name", "UserGet", "null").await);
        assert!(!p.allows("role:support", "acme", "users.profile.email", "UserGet", kyc).await);
        assert!(p.allows("role:support", "acme", PARTIAL_PROFILE, "UserGet", kyc).await);
        assert!(!p.allows("role:support", "acme", "users.profile", "UserGet", kyc).await);
        assert!(p.allows("role:ops", "acme", "users.profile", "UserUpdate", "null").await);
        assert!(p.allows("role:ops", "acme", "users.profile.email", "UserGet", "null").await);
        assert!(!p.allows("role:ops", "acme", "users.profile.ssn", "UserGet", "null").await, "deny wins");
        assert!(!p.allows("role:support", "acme", "users.profile", "UserDelete", kyc).await);
    }

    #[test]
    fn conditions_and_policy_documents_are_checked() {
        assert!(condition_holds(r#"{"a":{"b":"x1"}}"#, r#"{"StringLike":{"request_metadata.a.b":"x*"}}"#));
        assert!(condition_holds("null", r#"{"StringNotEquals":{"request_metadata.p":"y"}}"#));
        assert!(!condition_holds(r#"{"p":"y"}"#, r#"{"StringEquals":{"request_metadata.p":["a","b"]}}"#));
        assert!(!condition_holds(r#"{"p":"y"}"#, r#"{"NumericEquals":{"request_metadata.p":"y"}}"#));
        assert!(parse_policy(&json!({"Effect": "Maybe", "Action": ["x"], "Resource": ["y"]})).is_err());
        assert!(parse_policy(&json!({"Effect": "Allow", "Action": [], "Resource": ["y"]})).is_err());
        assert!(parse_policy(&json!({"Effect": "Allow", "Action": ["a,b"], "Resource": ["y"]})).is_err());
        assert!(parse_policy(&json!({"Effect": "Allow", "Action": ["x"], "Resource": ["y"], "Condition": {"IpAddress": {}}})).is_err());
    }

    #[test]
    fn malformed_policy_lines_are_refused() {
        assert!(parse_csv("p, a, *, x, y, maybe").is_err());
        assert!(parse_csv("q, a").is_err());
        let (p, g) = parse_csv("# c\np, a, *, x, y, allow\ng, b, a\n").unwrap();
        assert_eq!((p.len(), g.len(), p[0].len()), (1, 1, 6));
    }
}
