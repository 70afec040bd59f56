//! The casbin enforcer. Invariant: every authenticated call is decided here before it does
//! anything; deny wins over allow; the built-in model and roles ship in the binary
//! (`policies/model.conf`, `policies/policy.csv`), so an instance never starts without them.

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use tokio::sync::RwLock;

pub const MODEL: &str = include_str!("../../policies/model.conf");
pub const BUILT_IN: &str = include_str!("../../policies/policy.csv");

/// The built-in roles, as credential kinds.
pub const ROLES: &[&str] = &["root", "tenant-admin", "dpo", "auditor", "app-writer", "app-reader", "vault-plugin", "user-self"];

/// `(policies, groupings)` of a policy CSV: `p, …` and `g, …` lines, comments skipped.
pub fn parse_csv(text: &str) -> anyhow::Result<(Vec<Vec<String>>, Vec<Vec<String>>)> {
    let (mut p, mut g) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<String> = line.split(',').map(|f| f.trim().to_string()).collect();
        match fields.first().map(String::as_str) {
            Some("p") if fields.len() == 6 && matches!(fields[5].as_str(), "allow" | "deny") => p.push(fields[1..].to_vec()),
            Some("g") if fields.len() == 3 => g.push(fields[1..].to_vec()),
            _ => anyhow::bail!("policy.csv line {}: expected `p, role, tenant, resource, endpoint, allow|deny` or `g, role, parent`", n + 1),
        }
    }
    Ok((p, g))
}

pub struct Authorizer {
    enforcer: RwLock<Enforcer>,
}

impl Authorizer {
    /// The enforcer with the built-in model and roles.
    pub async fn built_in() -> anyhow::Result<Authorizer> {
        let model = DefaultModel::from_str(MODEL).await?;
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await?;
        let (p, g) = parse_csv(BUILT_IN)?;
        enforcer.add_policies(p).await?;
        if !g.is_empty() {
            enforcer.add_grouping_policies(g).await?;
        }
        Ok(Authorizer { enforcer: RwLock::new(enforcer) })
    }

    /// Whether `role` may call `endpoint` on `resource` in `tenant`. An enforcer error denies.
    pub async fn allows(&self, role: &str, tenant: &str, resource: &str, endpoint: &str) -> bool {
        let e = self.enforcer.read().await;
        match e.enforce((role, tenant, resource, endpoint)) {
            Ok(ok) => ok,
            Err(err) => {
                tracing::error!(error = %err, "policy evaluation failed; denying");
                false
            }
        }
    }
}

/// The resource an endpoint acts on (the object of the policy request).
pub fn resource_of(endpoint: &str) -> &'static str {
    match endpoint {
        e if e.starts_with("Tenant") => "tenants",
        e if e.starts_with("Audit") => "audit",
        e if e.starts_with("User") => "users.profile",
        e if e.starts_with("Vault") => "vault",
        e if e.starts_with("Credential") || e.starts_with("XToken") => "credentials",
        _ => "system",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn can(a: &Authorizer, role: &str, endpoint: &str) -> bool {
        a.allows(role, "acme", resource_of(endpoint), endpoint).await
    }

    #[tokio::test]
    async fn the_built_in_roles_allow_and_deny_as_documented() {
        let a = Authorizer::built_in().await.unwrap();
        // tenant-admin: data and audit of its tenant, not tenant or system management.
        for ep in ["UserCreate", "UserGet", "UserDelete", "AuditGetEvent", "TenantGet", "CredentialCreate"] {
            assert!(can(&a, "tenant-admin", ep).await, "tenant-admin {ep}");
        }
        for ep in ["TenantCreate", "TenantListTenants", "SystemGenerateWrappingKey", "VaultCreds"] {
            assert!(!can(&a, "tenant-admin", ep).await, "tenant-admin {ep}");
        }
        // root: everything in the main tenant only.
        assert!(a.allows("root", "default", "tenants", "TenantCreate").await);
        assert!(!a.allows("root", "acme", "tenants", "TenantCreate").await);
        // app-writer inherits app-reader; neither deletes.
        assert!(can(&a, "app-writer", "UserGet").await && can(&a, "app-writer", "UserCreateBulk").await);
        assert!(!can(&a, "app-writer", "UserDelete").await && !can(&a, "app-reader", "UserCreate").await);
        // auditor: events, never data.
        assert!(can(&a, "auditor", "AuditListUserEvents").await && !can(&a, "auditor", "UserGet").await);
        // dpo: read and erase, not create.
        assert!(can(&a, "dpo", "UserDelete").await && !can(&a, "dpo", "UserCreate").await);
        // vault-plugin: leases only.
        assert!(can(&a, "vault-plugin", "VaultCreds").await && !can(&a, "vault-plugin", "UserGet").await);
        // user-self: an explicit deny beats any allow.
        assert!(!can(&a, "user-self", "UserDelete").await && can(&a, "user-self", "UserGet").await);
        assert!(!can(&a, "nobody", "UserGet").await);
    }

    #[test]
    fn malformed_policy_lines_are_refused() {
        assert!(parse_csv("p, a, *, x, y, maybe").is_err());
        assert!(parse_csv("q, a").is_err());
        let (p, g) = parse_csv("# c\np, a, *, x, y, allow\ng, b, a\n").unwrap();
        assert_eq!((p.len(), g.len()), (1, 1));
    }
}
