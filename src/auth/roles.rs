//! Roles as a type. Invariant: a principal's role is one of the built-in roles of
//! `policies/policy.csv` or a tenant's own role (casbin subject `role:<name>`), and the rules of
//! who may mint what are decided here, in one place: a token never mints a token or credential
//! with more rights than its own, only credentials (never leases or xtokens) create credentials,
//! and a lease mints only leases of its own role.

use std::fmt;

use crate::error::{Error, Result};

/// Casbin subjects of a tenant's own roles are `role:<name>`.
pub const TENANT_PREFIX: &str = "role:";

/// The tenant role whose policies every `user-self` token inherits (`policies/policy.csv`). It
/// is meaningful only bound to a record, so no lease is ever minted for it.
pub const SELF_SERVICE: &str = "self-service";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Root,
    TenantAdmin,
    Dpo,
    Auditor,
    AppWriter,
    AppReader,
    VaultPlugin,
    /// A data subject's own token, bound to one record.
    UserSelf,
    /// A tenant-defined role (RoleCreate), held as its casbin subject `role:<name>` (build it
    /// with [`Role::tenant`]).
    Tenant(String),
}

impl Role {
    /// Every built-in role, in `policies/policy.csv` order.
    pub const BUILT_IN: [Role; 8] =
        [Role::Root, Role::TenantAdmin, Role::Dpo, Role::Auditor, Role::AppWriter, Role::AppReader, Role::VaultPlugin, Role::UserSelf];

    /// The working roles: what applications and officers use day to day, and all that the Vault
    /// plugin, an identity token or an xtoken of a built-in role may carry.
    pub const WORKING: [Role; 4] = [Role::AppReader, Role::AppWriter, Role::Dpo, Role::Auditor];

    /// Roles a stored credential can be created for: not root (one per vault, from init) and not
    /// user-self (a data subject's token is a lease from XTokenCreateForUser or sign-in).
    pub const CREDENTIAL_KINDS: [Role; 6] =
        [Role::TenantAdmin, Role::Dpo, Role::Auditor, Role::AppWriter, Role::AppReader, Role::VaultPlugin];

    /// A built-in role by name, or a tenant role written `role:<name>`; `None` otherwise.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "root" => Role::Root,
            "tenant-admin" => Role::TenantAdmin,
            "dpo" => Role::Dpo,
            "auditor" => Role::Auditor,
            "app-writer" => Role::AppWriter,
            "app-reader" => Role::AppReader,
            "vault-plugin" => Role::VaultPlugin,
            "user-self" => Role::UserSelf,
            other => {
                let name = other.strip_prefix(TENANT_PREFIX)?;
                if name.is_empty() {
                    return None;
                }
                Role::Tenant(other.to_string())
            }
        })
    }

    /// The tenant role called `name`.
    pub fn tenant(name: &str) -> Role {
        Role::Tenant(format!("{TENANT_PREFIX}{name}"))
    }

    /// A tenant role's own name (`ops` for `role:ops`); `None` for a built-in role.
    pub fn tenant_name(&self) -> Option<&str> {
        match self {
            Role::Tenant(subject) => subject.strip_prefix(TENANT_PREFIX),
            _ => None,
        }
    }

    /// The casbin subject (and the stored spelling): `app-reader`, `role:ops`.
    pub fn as_str(&self) -> &str {
        match self {
            Role::Tenant(subject) => subject,
            Role::Root => "root",
            Role::TenantAdmin => "tenant-admin",
            Role::Dpo => "dpo",
            Role::Auditor => "auditor",
            Role::AppWriter => "app-writer",
            Role::AppReader => "app-reader",
            Role::VaultPlugin => "vault-plugin",
            Role::UserSelf => "user-self",
        }
    }

    /// [`Role::as_str`], owned.
    pub fn subject(&self) -> String {
        self.as_str().to_string()
    }

    pub fn is_tenant_role(&self) -> bool {
        matches!(self, Role::Tenant(_))
    }

    pub fn is_working(&self) -> bool {
        Role::WORKING.contains(self)
    }

    /// Whether a **credential** of role `self` may create a credential of role `target` in its
    /// own tenant: never one with more rights. Root and tenant admins hold every right inside a
    /// tenant that a credential kind can carry; nobody else creates credentials.
    pub fn may_create_credential(&self, target: &Role) -> bool {
        Role::CREDENTIAL_KINDS.contains(target) && matches!(self, Role::Root | Role::TenantAdmin)
    }

    /// The names a caller may write, for error messages.
    pub fn names(roles: &[Role]) -> String {
        roles.iter().map(Role::subject).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Role {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Role {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Who asks for a new lease, and how: what [`check_lease_mint`] decides on.
pub struct MintRequest<'a> {
    /// The caller's role.
    pub caller: &'a Role,
    /// Whether the caller presented a lease (an xtoken, a Vault lease, a portal session) rather
    /// than a stored credential.
    pub caller_is_lease: bool,
    pub target: &'a Role,
    pub purpose: MintPurpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintPurpose {
    /// `/v1/vault/creds`: the Vault/OpenBao plugin turning a Vault lease into a Strongroom one.
    Vault,
    /// XTokenCreateForRole.
    RoleXToken,
    /// XTokenCreateForUser (a `user-self` lease bound to one record).
    UserXToken,
}

/// What a tenant role is, as far as minting goes (looked up by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantRoleStatus {
    Missing,
    /// Exists; `mintable`: the tenant marked it mintable for the Vault plugin; `manages`: one of
    /// its allow rules reaches a management resource (credentials, policies, tenants, system,
    /// vault).
    Exists {
        mintable: bool,
        manages: bool,
    },
}

/// Decides whether a lease of `req.target` may be minted. `tenant_role` describes the target
/// when it is a tenant role. Refusals are 400 (a role that cannot be minted this way) or 403 (a
/// caller that may not mint it).
pub fn check_lease_mint(req: &MintRequest, tenant_role: Option<TenantRoleStatus>) -> Result<()> {
    // A lease mints only leases of its own role (never a user token, never another role), so a
    // chain of xtokens never gains a right its first link lacked.
    if req.caller_is_lease && (req.purpose == MintPurpose::UserXToken || req.caller != req.target) {
        return Err(Error::Forbidden("a leased token may mint only tokens of its own role".into()));
    }
    match (req.purpose, req.target) {
        (MintPurpose::UserXToken, Role::UserSelf) => Ok(()),
        (MintPurpose::UserXToken, _) | (_, Role::UserSelf) => Err(Error::bad("user tokens are minted for a user record only")),
        (_, target @ Role::Tenant(_)) if target.tenant_name() == Some(SELF_SERVICE) => {
            Err(Error::bad("role self-service applies to data subjects' own tokens only and cannot be minted"))
        }
        (purpose, Role::Tenant(_)) => match tenant_role {
            None | Some(TenantRoleStatus::Missing) => Err(Error::bad("no such role in this tenant")),
            Some(TenantRoleStatus::Exists { mintable, manages }) if purpose == MintPurpose::Vault => {
                if !mintable {
                    Err(Error::bad("this tenant role is not marked mintable for the Vault plugin (RoleUpdate with mintable: true)"))
                } else if manages {
                    Err(Error::bad("this tenant role holds a management right (credentials, policies, tenants, system or vault) and cannot be minted by the Vault plugin"))
                } else {
                    Ok(())
                }
            }
            Some(TenantRoleStatus::Exists { .. }) => Ok(()),
        },
        (_, target) if target.is_working() => Ok(()),
        _ => Err(Error::bad(format!("role must be one of {} or a tenant role role:<name>", Role::names(&Role::WORKING)))),
    }
}

/// The resources whose rights make a role a manager (see `auth::policy::Resource`).
pub const MANAGEMENT_RESOURCES: &[&str] = &["credentials", "policies", "tenants", "system", "vault"];

#[cfg(test)]
mod tests {
    use super::*;

    fn mint(caller: Role, lease: bool, target: Role, purpose: MintPurpose, t: Option<TenantRoleStatus>) -> Result<()> {
        check_lease_mint(&MintRequest { caller: &caller, caller_is_lease: lease, target: &target, purpose }, t)
    }

    #[test]
    fn roles_round_trip_through_their_subjects() {
        for r in Role::BUILT_IN {
            assert_eq!(Role::parse(&r.subject()), Some(r.clone()));
        }
        assert_eq!(Role::parse("role:ops"), Some(Role::tenant("ops")));
        assert_eq!(Role::tenant("ops").tenant_name(), Some("ops"));
        assert_eq!(Role::parse("role:"), None);
        assert_eq!(Role::parse("ops"), None);
        assert!(Role::tenant("ops") == "role:ops");
    }

    #[test]
    fn the_vault_plugin_mints_working_roles_and_only_mintable_non_managing_tenant_roles() {
        let plugin = || Role::VaultPlugin;
        for r in Role::WORKING {
            assert!(mint(plugin(), false, r, MintPurpose::Vault, None).is_ok());
        }
        for r in [Role::Root, Role::TenantAdmin, Role::VaultPlugin, Role::UserSelf] {
            assert!(mint(plugin(), false, r, MintPurpose::Vault, None).is_err());
        }
        let ops = || Role::tenant("ops");
        assert!(mint(plugin(), false, ops(), MintPurpose::Vault, Some(TenantRoleStatus::Missing)).is_err());
        let not_mintable = TenantRoleStatus::Exists { mintable: false, manages: false };
        assert!(mint(plugin(), false, ops(), MintPurpose::Vault, Some(not_mintable)).is_err());
        let manager = TenantRoleStatus::Exists { mintable: true, manages: true };
        assert!(mint(plugin(), false, ops(), MintPurpose::Vault, Some(manager)).is_err());
        let fine = TenantRoleStatus::Exists { mintable: true, manages: false };
        assert!(mint(plugin(), false, ops(), MintPurpose::Vault, Some(fine)).is_ok());
        assert!(mint(plugin(), false, Role::tenant(SELF_SERVICE), MintPurpose::Vault, Some(fine)).is_err());
    }

    #[test]
    fn a_lease_mints_only_its_own_role_and_never_a_user_token() {
        let ops = || Role::tenant("ops");
        let exists = Some(TenantRoleStatus::Exists { mintable: false, manages: false });
        assert!(mint(ops(), true, ops(), MintPurpose::RoleXToken, exists).is_ok());
        assert!(mint(ops(), true, Role::AppWriter, MintPurpose::RoleXToken, None).is_err());
        assert!(mint(Role::AppReader, true, Role::AppWriter, MintPurpose::RoleXToken, None).is_err());
        assert!(mint(ops(), true, Role::UserSelf, MintPurpose::UserXToken, None).is_err());
        assert!(mint(Role::TenantAdmin, false, Role::UserSelf, MintPurpose::UserXToken, None).is_ok());
    }

    #[test]
    fn only_root_and_tenant_admin_credentials_create_credentials_and_never_root() {
        for target in Role::CREDENTIAL_KINDS {
            assert!(Role::TenantAdmin.may_create_credential(&target));
            assert!(Role::Root.may_create_credential(&target));
            assert!(!Role::Dpo.may_create_credential(&target));
            assert!(!Role::VaultPlugin.may_create_credential(&target));
        }
        assert!(!Role::Root.may_create_credential(&Role::Root));
        assert!(!Role::TenantAdmin.may_create_credential(&Role::UserSelf));
        assert!(!Role::TenantAdmin.may_create_credential(&Role::tenant("ops")));
    }
}
