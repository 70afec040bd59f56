//! Every endpoint, declared once: its name (the wire's and the audit's), where it comes from,
//! the resource it acts on (what casbin authorizes) and whether it changes anything (a read's
//! event is group-committed). `Call::open` takes its authorization from here, the OpenAPI
//! document (`GET /v2/openapi.json`) is made from here, and tests compare this table with the
//! wire contract and with the router.

use serde_json::{json, Map, Value};

use crate::auth::policy::Resource::{self, *};

/// Where an endpoint comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The Databunker Pro v2 wire contract.
    Contract,
    /// Called by the vendor's SDKs, missing from the contract file.
    Sdk,
    /// Our own, under /v2.
    Extension,
    /// The vault's own operations under /v1 (named by policies and audit events).
    Internal,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Contract => "contract",
            Origin::Sdk => "sdk",
            Origin::Extension => "extension",
            Origin::Internal => "internal",
        }
    }
}

/// Whether a call of the endpoint normally changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A read: when its transaction wrote nothing, its event is group-committed
    /// (`Call::finish`).
    Reads,
    Changes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub name: &'static str,
    pub origin: Origin,
    pub resource: Resource,
    pub effect: Effect,
}

const fn e(name: &'static str, origin: Origin, resource: Resource, effect: Effect) -> Endpoint {
    Endpoint { name, origin, resource, effect }
}

use Effect::*;
use Origin::*;

pub const ENDPOINTS: &[Endpoint] = &[
    // The v2 wire contract (tests/contract/v2-endpoints.md).
    e("UserCreate", Contract, UsersProfile, Changes),
    e("UserGet", Contract, UsersProfile, Reads),
    e("UserUpdate", Contract, UsersProfile, Changes),
    e("UserPatch", Contract, UsersProfile, Changes),
    e("UserDelete", Contract, UsersProfile, Changes),
    e("UserSearch", Contract, UsersBulk, Reads),
    e("UserListVersions", Contract, UsersProfile, Reads),
    e("UserDeleteRequest", Contract, RequestsFile, Changes),
    e("UserRequestGet", Contract, Requests, Reads),
    e("UserRequestCancel", Contract, Requests, Changes),
    e("UserRequestApprove", Contract, Requests, Changes),
    e("UserRequestListUserRequests", Contract, Requests, Reads),
    e("UserUpdateRequest", Contract, RequestsFile, Changes),
    e("UserPatchRequest", Contract, RequestsFile, Changes),
    e("UserCreateBulk", Contract, UsersProfile, Changes),
    e("BulkListUnlock", Contract, UsersBulk, Changes),
    e("BulkListUsers", Contract, UsersBulk, Reads),
    e("BulkListAllUsers", Contract, UsersBulk, Reads),
    e("BulkListGroupUsers", Contract, UsersBulk, Reads),
    e("BulkListAllUserRequests", Contract, UsersBulk, Reads),
    e("BulkListAllAuditEvents", Contract, UsersBulk, Reads),
    e("BulkListTokens", Contract, Tokens, Reads),
    e("BulkDeleteTokens", Contract, Tokens, Changes),
    e("AppdataCreate", Contract, UsersAppdata, Changes),
    e("AppdataGet", Contract, UsersAppdata, Reads),
    e("AppdataUpdate", Contract, UsersAppdata, Changes),
    e("AppdataListAppNames", Contract, UsersAppdata, Reads),
    e("AppdataListUserAppNames", Contract, UsersAppdata, Reads),
    e("AppdataDelete", Contract, UsersAppdata, Changes),
    e("AppdataListVersions", Contract, UsersAppdata, Reads),
    e("AppdataUpdateRequest", Contract, RequestsFile, Changes),
    e("FileCreate", Contract, UsersFiles, Changes),
    e("FileGet", Contract, UsersFiles, Reads),
    e("FileListUserFiles", Contract, UsersFiles, Reads),
    e("FileDelete", Contract, UsersFiles, Changes),
    e("LegalBasisCreate", Contract, Consent, Changes),
    e("LegalBasisUpdate", Contract, Consent, Changes),
    e("LegalBasisDelete", Contract, Consent, Changes),
    e("LegalBasisListAgreements", Contract, Consent, Reads),
    e("AgreementAccept", Contract, Consent, Changes),
    e("AgreementGet", Contract, Consent, Reads),
    e("AgreementListUserAgreements", Contract, Consent, Reads),
    e("AgreementCancel", Contract, Consent, Changes),
    e("AgreementCancelRequest", Contract, RequestsFile, Changes),
    e("AgreementRevokeAll", Contract, Consent, Changes),
    e("ProcessingActivityCreate", Contract, Consent, Changes),
    e("ProcessingActivityUpdate", Contract, Consent, Changes),
    e("ProcessingActivityDelete", Contract, Consent, Changes),
    e("ProcessingActivityLinkLegalBasis", Contract, Consent, Changes),
    e("ProcessingActivityUnlinkLegalBasis", Contract, Consent, Changes),
    e("ProcessingActivityListActivities", Contract, Consent, Reads),
    e("TokenCreate", Contract, Tokens, Changes),
    e("TokenGet", Contract, Tokens, Reads),
    e("TokenDelete", Contract, Tokens, Changes),
    e("TokenCreateBulk", Contract, Tokens, Changes),
    e("GroupCreate", Contract, Groups, Changes),
    e("GroupGet", Contract, Groups, Reads),
    e("GroupListAllGroups", Contract, Groups, Reads),
    e("GroupUpdate", Contract, Groups, Changes),
    e("GroupDelete", Contract, Groups, Changes),
    e("GroupListUserGroups", Contract, Groups, Reads),
    e("GroupAddUser", Contract, Groups, Changes),
    e("GroupDeleteUser", Contract, Groups, Changes),
    e("RoleCreate", Contract, Policies, Changes),
    e("RoleUpdate", Contract, Policies, Changes),
    e("RoleLinkPolicy", Contract, Policies, Changes),
    e("PolicyCreate", Contract, Policies, Changes),
    e("PolicyUpdate", Contract, Policies, Changes),
    e("PolicyGet", Contract, Policies, Reads),
    e("PolicyListAllPolicies", Contract, Policies, Reads),
    e("XTokenCreateForUser", Contract, Credentials, Changes),
    e("XTokenCreateForRole", Contract, Credentials, Changes),
    e("AuditListUserEvents", Contract, Audit, Reads),
    e("AuditGetEvent", Contract, Audit, Reads),
    e("TenantCreate", Contract, Tenants, Changes),
    e("TenantGet", Contract, Tenants, Reads),
    e("TenantUpdate", Contract, Tenants, Changes),
    e("TenantListTenants", Contract, Tenants, Reads),
    e("SharedRecordCreate", Contract, Shared, Changes),
    e("SharedRecordGet", Contract, Shared, Reads),
    e("SessionUpsert", Contract, Sessions, Changes),
    e("SessionDelete", Contract, Sessions, Changes),
    e("SessionListUserSessions", Contract, Sessions, Reads),
    e("SessionGet", Contract, Sessions, Reads),
    e("SystemGenerateWrappingKey", Contract, System, Changes),
    e("SystemGetSystemStats", Contract, System, Reads),
    e("SystemGetUserReport", Contract, System, Reads),
    e("SystemGetUserProfiles", Contract, System, Reads),
    e("SystemSearchUserProfiles", Contract, System, Reads),
    e("SystemDeleteUserProfiles", Contract, System, Changes),
    e("SystemRestoreUserProfile", Contract, System, Changes),
    e("SystemGetUserHTMLReport", Contract, System, Reads),
    // Pro endpoints the vendor SDKs call that the contract file does not list.
    e("FileReplaceTags", Sdk, UsersFiles, Changes),
    e("BulkListFilesByTag", Sdk, UsersBulk, Reads),
    e("UserDeleteBulk", Sdk, UsersProfile, Changes),
    e("SystemSetLicenseKey", Sdk, System, Changes),
    e("TenantGetUIConf", Sdk, Ui, Reads),
    e("CaptchaCreate", Sdk, System, Changes),
    e("UserPrelogin", Sdk, UsersProfile, Changes),
    e("UserLogin", Sdk, UsersProfile, Changes),
    // Our own v2 endpoints (each documented in README.md).
    e("TenantDelete", Extension, Tenants, Changes),
    e("TenantSetUIConf", Extension, Ui, Changes),
    e("UserImport", Extension, UsersProfile, Changes),
    e("UserExpirationStart", Extension, UsersProfile, Changes),
    e("UserExpirationGet", Extension, UsersProfile, Reads),
    e("UserExpirationCancel", Extension, UsersProfile, Changes),
    e("CredentialOidcTrustSet", Extension, Credentials, Changes),
    e("CredentialOidcTrustList", Extension, Credentials, Reads),
    e("CredentialOidcTrustDelete", Extension, Credentials, Changes),
    // The vault's own /v1 operations (keys, credentials, the Vault plugin): policies may name them.
    e("CredentialCreate", Internal, Credentials, Changes),
    e("CredentialRevoke", Internal, Credentials, Changes),
    e("SystemRekey", Internal, System, Changes),
    e("SystemRevokeRoot", Internal, System, Changes),
    e("SystemRotateRoot", Internal, System, Changes),
    e("SystemRotateTenantKey", Internal, System, Changes),
    e("SystemTenantKeyStatus", Internal, System, Changes),
    e("SystemSeal", Internal, System, Changes),
    e("SystemGetMetrics", Internal, System, Reads),
    e("VaultCreds", Internal, Vault, Changes),
    e("VaultRenew", Internal, Vault, Changes),
    e("VaultRevoke", Internal, Vault, Changes),
];

/// The declaration of `name`.
pub fn declared(name: &str) -> Option<&'static Endpoint> {
    ENDPOINTS.iter().find(|e| e.name == name)
}

/// Names of the endpoints of `origin`, in declaration order.
pub fn of(origin: Origin) -> impl Iterator<Item = &'static str> {
    ENDPOINTS.iter().filter(move |e| e.origin == origin).map(|e| e.name)
}

/// The OpenAPI 3.1 document of the v2 surface: one `POST /v2/<Name>` per declared endpoint,
/// tagged with its resource. Bodies are described by the shape every call shares (a JSON
/// object that may carry `request_metadata`; `status` in every answer): per-field schemas are
/// in the contract, not yet declared here.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for ep in ENDPOINTS.iter().filter(|e| e.origin != Internal) {
        paths.insert(
            format!("/v2/{}", ep.name),
            json!({"post": {
                "operationId": ep.name,
                "tags": [ep.resource.as_str()],
                "x-strongroom-origin": ep.origin.as_str(),
                "x-strongroom-effect": match ep.effect { Reads => "reads", Changes => "changes" },
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Request"}}}},
                "responses": {
                    "200": {"description": "done", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ok"}}}},
                    "default": {"description": "refused or failed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                }
            }}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Strongroom v2 API (Databunker Pro wire compatible)", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Bunker-Token"},
                "tenant": {"type": "apiKey", "in": "header", "name": "X-Bunker-Tenant"}
            },
            "schemas": {
                "Request": {"type": "object", "properties": {"request_metadata": {"type": "object"}}},
                "Ok": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
                "Error": {"type": "object", "required": ["status", "message"],
                          "properties": {"status": {"const": "error"}, "message": {"type": "string"}}}
            }
        },
        "security": [{"token": [], "tenant": []}],
        "paths": paths
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_declared_once() {
        let mut names: Vec<&str> = ENDPOINTS.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "an endpoint is declared twice");
        assert_eq!(of(Contract).count(), 92);
    }
}
