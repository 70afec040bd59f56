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

#[tokio::test]
async fn a_deny_in_pro_syntax_applies_and_what_cannot_be_evaluated_is_refused() {
    let t = tenant().await;
    let x = t.role_with("analyst", json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.profile.*"]})).await;
    assert_eq!(t.get(&x, Some(json!({"purpose": "marketing"}))).await.code, 200);
    t.admin(
        "PolicyCreate",
        json!({"policyname": "no-marketing", "policy": {"Effect": "Deny", "Principal": {"Role": ["analyst"]}, "Action": ["UserGet"],
               "Resource": ["users.profile.*"], "Condition": {"StringEquals": {"${request_metadata:purpose}": "marketing"}}}}),
    )
    .await
    .ok();
    t.get(&x, Some(json!({"purpose": "marketing"}))).await.err(403);
    assert_eq!(t.get(&x, Some(json!({"purpose": "support"}))).await.code, 200);
    // ForAnyValue:ListIntersect and Bool, Pro's operators.
    t.admin(
        "PolicyCreate",
        json!({"policyname": "no-flagged", "policy": {"Effect": "Deny", "Principal": {"Role": ["analyst"]}, "Action": ["UserGet"],
               "Resource": ["users.profile.*"], "Condition": {"ForAnyValue:ListIntersect": {"${request_metadata:tags}": ["export", "bulk"]}}}}),
    )
    .await
    .ok();
    t.get(&x, Some(json!({"purpose": "support", "tags": ["bulk"]}))).await.err(403);
    assert_eq!(t.get(&x, Some(json!({"purpose": "support", "tags": ["ticket"]}))).await.code, 200);

    // Every key, operator, resource or action the vault cannot evaluate: 400, nothing stored.
    let before = t.admin("PolicyListAllPolicies", json!({})).await.ok()["rows"].as_array().unwrap().len();
    for (bad, why) in [
        (
            json!({"Effect": "Deny", "Action": ["UserGet"], "Resource": ["users.profile.*"], "Condition": {"NumericLessThan": {"${request_metadata:n}": 3}}}),
            "operator",
        ),
        (
            json!({"Effect": "Deny", "Action": ["UserGet"], "Resource": ["users.profile.*"], "Condition": {"StringEquals": {"${request_meta:purpose}": "x"}}}),
            "key",
        ),
        (json!({"Effect": "Deny", "Action": ["UserGet"], "Resource": ["user.profile.*"]}), "Resource"),
        (json!({"Effect": "Deny", "Action": ["UserGett"], "Resource": ["users.profile.*"]}), "Action"),
        (json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["${target_group_members:child}.profile.*"]}), "Resource"),
        (
            json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["audit"], "Condition": {"StringEquals": {"${user_group_id}": "${target_group_id}"}}}),
            "user records",
        ),
    ] {
        let msg = t.admin("PolicyCreate", json!({"policyname": "bad", "policy": bad})).await.err(400);
        assert!(msg.contains(why), "{why}: {msg}");
    }
    let pid = t.admin("PolicyGet", json!({"policyname": "no-marketing"})).await.ok()["policyid"].as_i64().unwrap();
    t.admin("PolicyUpdate", json!({"policyid": pid, "policy": {"Effect": "Deny", "Action": ["UserGet"], "Resource": ["users.profil"]}}))
        .await
        .err(400);
    assert_eq!(t.admin("PolicyListAllPolicies", json!({})).await.ok()["rows"].as_array().unwrap().len(), before);
    // The refused update left the deny in force.
    t.get(&x, Some(json!({"purpose": "marketing"}))).await.err(403);
}

/// A family: a parent and two children in one group, and a stranger's child in another.
struct Family {
    t: Tenant,
    group: i64,
    parent: String,
    child: String,
    stranger_child: String,
}

async fn family(policy: Value) -> Family {
    let t = tenant().await;
    for role in ["parent", "child"] {
        t.admin("RoleCreate", json!({"rolename": role})).await.ok();
    }
    let pid = t.admin("PolicyCreate", json!({"policyname": "parental", "policy": policy})).await.ok()["policyid"].as_i64().unwrap();
    t.admin("RoleLinkPolicy", json!({"rolename": "parent", "policyid": pid})).await.ok();
    let group = t.admin("GroupCreate", json!({"groupname": "smiths"})).await.ok()["groupid"].as_i64().unwrap();
    let other = t.admin("GroupCreate", json!({"groupname": "joneses"})).await.ok()["groupid"].as_i64().unwrap();
    let parent = t.app.create_user(&t.admin, Some("pol"), json!({"name": "Pat Smith", "email": "pat@example.com"})).await;
    let child = t.app.create_user(&t.admin, Some("pol"), json!({"name": "Kim Smith", "email": "kim@example.com", "ssn": "1"})).await;
    let stranger_child = t.app.create_user(&t.admin, Some("pol"), json!({"name": "Lee Jones", "email": "lee@example.com"})).await;
    for (who, g, role) in [(&parent, group, "parent"), (&child, group, "child"), (&t.user, group, ""), (&stranger_child, other, "child")] {
        let mut body = json!({"mode": "token", "identity": who, "groupid": g});
        if !role.is_empty() {
            body["rolename"] = json!(role);
        }
        t.admin("GroupAddUser", body).await.ok();
    }
    Family { t, group, parent, child, stranger_child }
}

impl Family {
    async fn parent_xtoken(&self) -> String {
        let r = self.t.admin("XTokenCreateForUser", json!({"mode": "token", "identity": self.parent})).await;
        r.ok()["xtoken"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn a_parent_reads_its_own_childs_record_through_the_group_role_and_nothing_else() {
    let f = family(json!({"Effect": "Allow", "Action": ["UserGet", "BulkListGroupUsers"],
                          "Resource": ["${target_group_members:role/child}.profile.name", "${target_group_members:role/child}.group"]}))
    .await;
    let x = f.parent_xtoken().await;
    let get = |who: &str| f.t.app.call("UserGet", Some(&x), Some("pol"), json!({"mode": "token", "identity": who}));
    // Its own record, whole.
    assert_eq!(get(&f.parent).await.ok()["profile"]["email"], "pat@example.com");
    // Its child: only what the policy grants (the name), the rest masked.
    let kid = get(&f.child).await;
    assert_eq!(kid.ok()["profile"]["name"], "Kim Smith");
    assert_eq!(kid.ok()["profile"]["email"], "***");
    assert_eq!(kid.ok()["profile"]["ssn"], "***");
    // A group member without the child role, and a child of another family: not found.
    get(&f.t.user).await.err(404);
    get(&f.stranger_child).await.err(404);
    f.t.app.call("UserGet", Some(&x), Some("pol"), json!({"mode": "email", "identity": "lee@example.com"})).await.err(404);
    // No write reaches the child: the grant is a read of one field.
    f.t.app
        .call("UserUpdate", Some(&x), Some("pol"), json!({"mode": "token", "identity": f.child, "profile": {"name": "X"}}))
        .await
        .err(403);
    // The family list shows the children only, with their role, masked the same way.
    // Listing is a bulk call: the parent needs an unlock of its own, which a plain rule grants.
    let pid =
        f.t.admin(
            "PolicyCreate",
            json!({"policyname": "unlock", "policy": {"Effect": "Allow", "Action": ["BulkListUnlock"], "Resource": ["users.bulk"]}}),
        )
        .await
        .ok()["policyid"]
            .as_i64()
            .unwrap();
    f.t.admin("RoleLinkPolicy", json!({"rolename": "parent", "policyid": pid})).await.ok();
    let unlock = f.t.app.call("BulkListUnlock", Some(&x), Some("pol"), json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string();
    let list = f.t.app.call("BulkListGroupUsers", Some(&x), Some("pol"), json!({"unlockuuid": unlock, "groupid": f.group})).await;
    let rows = list.ok()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["token"].as_str(), rows[0]["rolename"].as_str()), (Some(f.child.as_str()), Some("child")));
    assert_eq!(rows[0]["profile"]["email"], "***");
    // Another family's group is not the parent's to list.
    f.t.app.call("BulkListGroupUsers", Some(&x), Some("pol"), json!({"unlockuuid": unlock, "groupname": "joneses"})).await.err(404);
    // The admin's list carries every member's role name.
    let admin_unlock = f.t.admin("BulkListUnlock", json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string();
    let all = f.t.admin("BulkListGroupUsers", json!({"unlockuuid": admin_unlock, "groupid": f.group})).await;
    let mut roles: Vec<Value> = all.ok()["rows"].as_array().unwrap().iter().map(|r| r["rolename"].clone()).collect();
    roles.sort_by_key(|v| v.to_string());
    assert_eq!(roles, vec![json!("child"), json!("parent"), Value::Null]);
    // Once the child leaves the group the parent no longer reaches it.
    f.t.admin("GroupDeleteUser", json!({"mode": "token", "identity": f.child, "groupid": f.group})).await.ok();
    get(&f.child).await.err(404);
}

#[tokio::test]
async fn a_group_relative_deny_wins_and_a_user_token_without_a_grant_reaches_only_itself() {
    let f = family(json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["${target_group_members:role/child}.profile.*"]})).await;
    let x = f.parent_xtoken().await;
    let get = |who: &str, meta: Value| {
        f.t.app.call("UserGet", Some(&x), Some("pol"), json!({"mode": "token", "identity": who, "request_metadata": meta}))
    };
    assert_eq!(get(&f.child, json!({})).await.ok()["profile"]["ssn"], "1");
    f.t.admin(
        "PolicyCreate",
        json!({"policyname": "not-for-ads", "policy": {"Effect": "Deny", "Principal": {"Role": ["parent"]}, "Action": ["UserGet"],
               "Resource": ["${target_group_members:role/child}.*"], "Condition": {"StringEquals": {"${request_metadata:purpose}": "ads"}}}}),
    )
    .await
    .ok();
    get(&f.child, json!({"purpose": "ads"})).await.err(404);
    assert_eq!(get(&f.child, json!({"purpose": "homework"})).await.code, 200);
    // The child's own token has no parental grant: it reaches itself, and neither parent nor sibling.
    let kx =
        f.t.admin("XTokenCreateForUser", json!({"mode": "token", "identity": f.child})).await.ok()["xtoken"].as_str().unwrap().to_string();
    let kget = |who: &str| f.t.app.call("UserGet", Some(&kx), Some("pol"), json!({"mode": "token", "identity": who}));
    assert_eq!(kget(&f.child).await.ok()["profile"]["name"], "Kim Smith");
    kget(&f.parent).await.err(404);
    kget(&f.stranger_child).await.err(404);
}
