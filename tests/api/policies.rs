//! Pro-style roles and JSON policies, translated into casbin rules: field masking, conditions on
//! request_metadata, deny over allow, changes visible on every instance at once.

use serde_json::{json, Value};

use crate::helpers::*;

struct Tenant {
    app: TestApp,
    admin: String,
    user: String,
}

async fn tenant() -> Tenant {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("pol").await;
    let user =
        app.create_user(&admin, Some("pol"), json!({"name": "Ada", "email": "ada@example.com", "age": 36, "ssn": "123-45-6789"})).await;
    Tenant { app, admin, user }
}

impl Tenant {
    async fn admin(&self, ep: &str, body: Value) -> Reply {
        self.app.call(ep, Some(&self.admin), Some("pol"), body).await
    }

    /// A role with one policy linked; returns an xtoken for it.
    async fn role_with(&self, role: &str, policy: Value) -> String {
        let rid = self.admin("RoleCreate", json!({"rolename": role, "roledesc": "test"})).await.ok()["roleid"].as_i64().unwrap();
        let pid = self.admin("PolicyCreate", json!({"policyname": format!("{role}-policy"), "policy": policy})).await.ok()["policyid"]
            .as_i64()
            .unwrap();
        self.admin("RoleLinkPolicy", json!({"roleid": rid, "policyid": pid})).await.ok();
        let x = self.admin("XTokenCreateForRole", json!({"rolename": role})).await;
        x.ok()["xtoken"].as_str().unwrap().to_string()
    }

    async fn get(&self, token: &str, meta: Option<Value>) -> Reply {
        let mut body = json!({"mode": "token", "identity": self.user});
        if let Some(m) = meta {
            body["request_metadata"] = m;
        }
        self.app.call("UserGet", Some(token), Some("pol"), body).await
    }
}

#[tokio::test]
async fn a_role_granted_only_the_name_sees_the_name_masked_strings_and_no_numbers() {
    let t = tenant().await;
    let x = t.role_with("support", json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile.name"]})).await;
    let r = t.get(&x, None).await;
    let p = r.ok()["profile"].clone();
    assert_eq!(p["name"], "Ada");
    assert_eq!(p["email"], "***");
    assert_eq!(p["ssn"], "***");
    assert!(p.get("age").is_none(), "a number field the role may not read is absent: {p}");
    // The record itself is untouched.
    let full = t.admin("UserGet", json!({"mode": "token", "identity": t.user})).await;
    assert_eq!(full.ok()["profile"]["email"], "ada@example.com");
    assert_eq!(full.ok()["profile"]["age"], 36);
    // Nothing else is granted.
    t.app.call("UserUpdate", Some(&x), Some("pol"), json!({"mode": "token", "identity": t.user, "profile": {"name": "X"}})).await.err(403);
}

#[tokio::test]
async fn a_request_metadata_condition_allows_with_the_right_purpose_only() {
    let t = tenant().await;
    let x = t
        .role_with("kyc", json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile.*"], "Condition": {"StringEquals": {"request_metadata.purpose": "kyc-check"}}}))
        .await;
    assert_eq!(t.get(&x, Some(json!({"purpose": "kyc-check"}))).await.ok()["profile"]["email"], "ada@example.com");
    t.get(&x, Some(json!({"purpose": "marketing"}))).await.err(403);
    t.get(&x, None).await.err(403);
}

#[tokio::test]
async fn deny_wins_over_allow_for_actions_and_fields() {
    let t = tenant().await;
    let x = t.role_with("ops", json!({"Effect": "Allow", "Action": ["User*"], "Resource": ["users.profile.*"]})).await;
    let deny = t.admin("PolicyCreate", json!({"policyname": "no-ssn", "policy": {"Effect": "Deny", "Principal": {"Role": ["ops"]}, "Action": ["UserGet"], "Resource": ["users.profile.ssn"]}})).await;
    deny.ok();
    t.admin("PolicyCreate", json!({"policyname": "no-delete", "policy": {"Effect": "Deny", "Principal": {"Role": "ops"}, "Action": "UserDelete", "Resource": "users.profile.*"}})).await.ok();
    let p = t.get(&x, None).await.ok()["profile"].clone();
    assert_eq!((p["email"].as_str(), p["ssn"].as_str()), (Some("ada@example.com"), Some("***")));
    t.app.call("UserDelete", Some(&x), Some("pol"), json!({"mode": "token", "identity": t.user})).await.err(403);
    t.app.call("UserUpdate", Some(&x), Some("pol"), json!({"mode": "token", "identity": t.user, "profile": {"city": "Paris"}})).await.ok();
}

#[tokio::test]
async fn policy_changes_take_effect_at_once_on_every_instance() {
    let t = tenant().await;
    let x = t.role_with("reader", json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile.*"]})).await;
    let mut b = TestApp::serve_on(t.app.db_url.clone()).await;
    b.root_token = t.app.root_token.clone();
    b.unseal(&t.app.shares[0]).await.ok();
    b.unseal(&t.app.shares[1]).await.ok();
    let lookup = json!({"mode": "token", "identity": t.user});
    assert_eq!(b.call("UserGet", Some(&x), Some("pol"), lookup.clone()).await.code, 200);
    let pid = t.admin("PolicyGet", json!({"policyname": "reader-policy"})).await.ok()["policyid"].as_i64().unwrap();
    t.admin("PolicyUpdate", json!({"policyid": pid, "policy": {"Effect": "Deny", "Action": ["UserGet"], "Resource": ["users.profile.*"]}}))
        .await
        .ok();
    assert_eq!(b.call("UserGet", Some(&x), Some("pol"), lookup).await.code, 403);
    assert_eq!(t.get(&x, None).await.code, 403);
}

#[tokio::test]
async fn roles_and_policies_are_managed_with_clear_errors() {
    let t = tenant().await;
    let doc = json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile.name"]});
    let pid =
        t.admin("PolicyCreate", json!({"policyname": "p1", "policydesc": "first", "policy": doc})).await.ok()["policyid"].as_i64().unwrap();
    let got = t.admin("PolicyGet", json!({"policyid": pid})).await;
    assert_eq!((got.ok()["policyname"].as_str(), got.ok()["policydesc"].as_str()), (Some("p1"), Some("first")));
    assert_eq!(got.ok()["policy"], doc);
    assert_eq!(t.admin("PolicyListAllPolicies", json!({})).await.ok()["rows"][0]["policyname"], "p1");
    t.admin("PolicyCreate", json!({"policyname": "p1", "policy": doc})).await.err(409);
    t.admin("PolicyCreate", json!({"policyname": "p2", "policy": {"Effect": "Sometimes", "Action": ["x"], "Resource": ["y"]}}))
        .await
        .err(400);
    t.admin("PolicyCreate", json!({"policyname": "p3"})).await.err(400);
    t.admin("PolicyUpdate", json!({"policyid": 999, "policydesc": "x"})).await.err(404);
    t.admin("PolicyGet", json!({"policyname": "nope"})).await.err(404);
    let rid = t.admin("RoleCreate", json!({"rolename": "clerk"})).await.ok()["roleid"].as_i64().unwrap();
    t.admin("RoleCreate", json!({"rolename": "clerk"})).await.err(409);
    t.admin("RoleCreate", json!({"rolename": "tenant-admin"})).await.err(400);
    t.admin("RoleCreate", json!({"rolename": "bad name"})).await.err(400);
    t.admin("RoleUpdate", json!({"roleid": rid, "roledesc": "desk"})).await.ok();
    t.admin("RoleUpdate", json!({"roleid": 999, "roledesc": "x"})).await.err(404);
    t.admin("RoleLinkPolicy", json!({"roleid": rid, "policyid": 999})).await.err(404);
    t.admin("RoleLinkPolicy", json!({"rolename": "ghost", "policyid": pid})).await.err(404);
    t.admin("RoleLinkPolicy", json!({"rolename": "clerk", "policyname": "p1"})).await.ok();
    t.admin("XTokenCreateForRole", json!({"roleid": rid})).await.ok();
    t.admin("XTokenCreateForRole", json!({"roleid": 999})).await.err(404);
    // Another tenant sees none of it; a working role cannot manage it.
    let (_, other) = t.app.create_tenant("pol2").await;
    t.app.call("PolicyGet", Some(&other), Some("pol2"), json!({"policyid": pid})).await.err(404);
    let reader = t.admin("XTokenCreateForRole", json!({"rolename": "app-reader"})).await.ok()["xtoken"].as_str().unwrap().to_string();
    t.app.call("RoleCreate", Some(&reader), Some("pol"), json!({"rolename": "sneaky"})).await.err(403);
}
