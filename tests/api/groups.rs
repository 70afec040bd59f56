//! Groups: CRUD with its errors, memberships carrying tenant roles (UserGet grouproles,
//! GroupListUserGroups), UserCreate/UserCreateBulk with a group, isolation per tenant, role
//! gates, and memberships gone with the user or the group.

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

async fn mint(app: &TestApp, admin: &str, tenant: &str, role: &str) -> String {
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", admin), ("x-bunker-tenant", tenant)],
            serde_json::to_vec(&json!({"role": role})).unwrap(),
        )
        .await;
    r.ok()["token"].as_str().unwrap().to_string()
}

/// A tenant and its admin credential.
struct As<'a> {
    app: &'a TestApp,
    tenant: String,
    token: String,
}

impl As<'_> {
    async fn call(&self, endpoint: &str, body: Value) -> Reply {
        self.app.call(endpoint, Some(&self.token), Some(&self.tenant), body).await
    }

    async fn user(&self, profile: Value) -> String {
        self.app.create_user(&self.token, Some(&self.tenant), profile).await
    }

    async fn group(&self, name: &str) -> i64 {
        self.call("GroupCreate", json!({"groupname": name, "groupdesc": format!("{name} desc")})).await.ok()["groupid"].as_i64().unwrap()
    }

    async fn user_groups(&self, token: &str) -> Value {
        self.call("GroupListUserGroups", json!({"mode": "token", "identity": token})).await.ok()["rows"].clone()
    }
}

async fn tenant<'a>(app: &'a TestApp, name: &str) -> As<'a> {
    let (_, token) = app.create_tenant(name).await;
    As { app, tenant: name.to_string(), token }
}

#[tokio::test]
async fn groups_are_created_read_listed_updated_and_deleted() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "grpcrud").await;

    let r = t.call("GroupCreate", json!({"groupname": "staff", "groupdesc": "All staff", "grouptype": "team"})).await;
    let staff = r.ok()["groupid"].as_i64().unwrap();
    let ops = t.group("ops").await;
    assert_ne!(staff, ops);

    // Duplicates and bad names.
    assert_eq!(t.call("GroupCreate", json!({"groupname": "staff"})).await.err(409), "group name already exists");
    t.call("GroupCreate", json!({"groupname": "bad name"})).await.err(400);
    t.call("GroupCreate", json!({"groupname": ""})).await.err(400);
    t.call("GroupCreate", json!({"groupname": "x".repeat(65)})).await.err(400);
    t.call("GroupCreate", json!({})).await.err(400);

    // Read by id (also as a string) or name.
    let got = t.call("GroupGet", json!({"groupid": staff})).await;
    let got = got.ok();
    assert_eq!(
        (got["groupname"].as_str(), got["groupdesc"].as_str(), got["grouptype"].as_str()),
        (Some("staff"), Some("All staff"), Some("team"))
    );
    assert_eq!(t.call("GroupGet", json!({"groupname": "ops"})).await.ok()["groupid"], ops);
    assert_eq!(t.call("GroupGet", json!({"groupid": ops.to_string()})).await.ok()["groupname"], "ops");
    assert_eq!(t.call("GroupGet", json!({"groupid": 999_999})).await.err(404), "group not found");
    t.call("GroupGet", json!({"groupname": "nobody"})).await.err(404);
    t.call("GroupGet", json!({})).await.err(400);

    let all = t.call("GroupListAllGroups", json!({})).await;
    let names: Vec<&str> = all.ok()["rows"].as_array().unwrap().iter().map(|g| g["groupname"].as_str().unwrap()).collect();
    assert_eq!(names, ["staff", "ops"]);
    assert_eq!(all.ok()["rows"][0]["groupdesc"], "All staff");
    assert_eq!(all.ok()["rows"][0]["groupid"], staff);

    // Update: only the given fields change; a taken name is 409, an unknown group 404.
    t.call("GroupUpdate", json!({"groupid": staff, "groupname": "crew"})).await.ok();
    let got = t.call("GroupGet", json!({"groupid": staff})).await;
    assert_eq!((got.ok()["groupname"].as_str(), got.ok()["groupdesc"].as_str()), (Some("crew"), Some("All staff")));
    t.call("GroupUpdate", json!({"groupid": staff, "groupdesc": "Crew", "grouptype": "t2"})).await.ok();
    let got = t.call("GroupGet", json!({"groupname": "crew"})).await;
    assert_eq!((got.ok()["groupdesc"].as_str(), got.ok()["grouptype"].as_str()), (Some("Crew"), Some("t2")));
    assert_eq!(t.call("GroupUpdate", json!({"groupid": staff, "groupname": "ops"})).await.err(409), "group name already exists");
    t.call("GroupUpdate", json!({"groupid": 999_999, "groupdesc": "x"})).await.err(404);
    t.call("GroupUpdate", json!({"groupname": "x"})).await.err(400);
    t.call("GroupUpdate", json!({"groupid": staff, "groupname": "no way"})).await.err(400);

    // Delete. An id with another group's name names no group: nothing is deleted.
    t.call("GroupDelete", json!({"groupid": staff, "groupname": "ops"})).await.err(404);
    t.call("GroupGet", json!({"groupid": staff, "groupname": "crew"})).await.ok();
    t.call("GroupDelete", json!({"groupid": staff})).await.ok();
    t.call("GroupGet", json!({"groupid": staff})).await.err(404);
    t.call("GroupDelete", json!({"groupid": staff})).await.err(404);
    t.call("GroupDelete", json!({})).await.err(400);
    // The name is free again.
    t.group("crew").await;
    let all = t.call("GroupListAllGroups", json!({})).await;
    assert_eq!(all.ok()["rows"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn memberships_carry_tenant_roles_into_user_get_and_group_lists() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "grpmem").await;
    let clerk = t.call("RoleCreate", json!({"rolename": "clerk"})).await.ok()["roleid"].as_i64().unwrap();
    let staff = t.group("staff").await;
    let ops = t.group("ops").await;
    let ada = t.user(json!({"login": "ada", "email": "ada@example.com"})).await;
    assert_eq!(t.call("UserGet", json!({"mode": "token", "identity": ada})).await.ok()["grouproles"], json!([]));
    assert_eq!(t.user_groups(&ada).await, json!([]));

    // With a role by name, twice (idempotent); another group by name without a role, by email.
    let add = json!({"mode": "token", "identity": ada, "groupid": staff, "rolename": "clerk"});
    t.call("GroupAddUser", add.clone()).await.ok();
    t.call("GroupAddUser", add).await.ok();
    t.call("GroupAddUser", json!({"mode": "email", "identity": "ada@example.com", "groupname": "ops"})).await.ok();
    // Adding again without a role keeps the role it has.
    t.call("GroupAddUser", json!({"mode": "login", "identity": "ada", "groupname": "staff"})).await.ok();

    let got = t.call("UserGet", json!({"mode": "token", "identity": ada})).await;
    assert_eq!(
        got.ok()["grouproles"],
        json!([
            {"groupid": staff, "groupname": "staff", "roleid": clerk, "rolename": "clerk"},
            {"groupid": ops, "groupname": "ops", "roleid": null, "rolename": null},
        ])
    );
    assert_eq!(
        t.user_groups(&ada).await,
        json!([
            {"groupid": staff, "groupname": "staff", "groupdesc": "staff desc", "roleid": clerk, "rolename": "clerk"},
            {"groupid": ops, "groupname": "ops", "groupdesc": "ops desc", "roleid": null, "rolename": null},
        ])
    );

    // Unknown group, role, or user: 404; no group named: 400; a role alone: 400.
    assert_eq!(t.call("GroupAddUser", json!({"mode": "token", "identity": ada, "groupid": 999_999})).await.err(404), "group not found");
    assert_eq!(
        t.call("GroupAddUser", json!({"mode": "token", "identity": ada, "groupid": ops, "rolename": "ghost"})).await.err(404),
        "role not found"
    );
    t.call("GroupAddUser", json!({"mode": "token", "identity": ada, "groupid": ops, "roleid": 999_999})).await.err(404);
    t.call("GroupAddUser", json!({"mode": "login", "identity": "nobody", "groupid": ops})).await.err(404);
    t.call("GroupAddUser", json!({"mode": "token", "identity": ada})).await.err(400);
    t.call("GroupAddUser", json!({"mode": "token", "identity": ada, "rolename": "clerk"})).await.err(400);
    t.call("GroupAddUser", json!({"mode": "bogus", "identity": ada, "groupid": ops})).await.err(400);
    t.call("GroupListUserGroups", json!({"mode": "login", "identity": "nobody"})).await.err(404);

    // Changing the role by id.
    let boss = t.call("RoleCreate", json!({"rolename": "boss"})).await.ok()["roleid"].as_i64().unwrap();
    t.call("GroupAddUser", json!({"mode": "token", "identity": ada, "groupid": ops, "roleid": boss})).await.ok();
    assert_eq!(t.user_groups(&ada).await[1]["rolename"], "boss");

    // Leaving a group.
    t.call("GroupDeleteUser", json!({"mode": "token", "identity": ada, "groupname": "staff"})).await.ok();
    assert_eq!(
        t.call("GroupDeleteUser", json!({"mode": "token", "identity": ada, "groupid": staff})).await.err(404),
        "group membership not found"
    );
    t.call("GroupDeleteUser", json!({"mode": "token", "identity": ada, "groupid": 999_999})).await.err(404);
    t.call("GroupDeleteUser", json!({"mode": "token", "identity": ada})).await.err(400);
    let rows = t.user_groups(&ada).await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["groupid"], ops);

    // Deleting a group removes its memberships.
    t.call("GroupDelete", json!({"groupid": ops})).await.ok();
    assert_eq!(t.user_groups(&ada).await, json!([]));

    // Deleting a user removes its memberships.
    t.call("GroupAddUser", json!({"mode": "token", "identity": ada, "groupid": staff})).await.ok();
    let mut su = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM group_members").fetch_one(&mut su).await.unwrap();
    assert_eq!(n, 1);
    t.call("UserDelete", json!({"mode": "token", "identity": ada})).await.ok();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM group_members").fetch_one(&mut su).await.unwrap();
    assert_eq!(n, 0);
    t.call("GroupGet", json!({"groupid": staff})).await.ok();
}

#[tokio::test]
async fn user_create_puts_the_user_in_a_group_or_stores_nothing() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "grpnew").await;
    let clerk = t.call("RoleCreate", json!({"rolename": "clerk"})).await.ok()["roleid"].as_i64().unwrap();
    let staff = t.group("staff").await;
    let ops = t.group("ops").await;

    let r = t.call("UserCreate", json!({"profile": {"login": "u1"}, "groupname": "staff"})).await;
    let u1 = r.ok()["token"].as_str().unwrap().to_string();
    assert_eq!(t.user_groups(&u1).await[0]["groupid"], staff);
    let r = t.call("UserCreate", json!({"profile": {"login": "u2"}, "groupid": ops.to_string(), "rolename": "clerk"})).await;
    let u2 = r.ok()["token"].as_str().unwrap().to_string();
    let got = t.call("UserGet", json!({"mode": "token", "identity": u2})).await;
    assert_eq!(got.ok()["grouproles"], json!([{"groupid": ops, "groupname": "ops", "roleid": clerk, "rolename": "clerk"}]));

    // Unknown group or role: 404 and no user; a role alone: 400; bad retention: 400.
    assert_eq!(t.call("UserCreate", json!({"profile": {"login": "u3"}, "groupname": "ghosts"})).await.err(404), "group not found");
    t.call("UserCreate", json!({"profile": {"login": "u4"}, "groupid": 999_999})).await.err(404);
    t.call("UserCreate", json!({"profile": {"login": "u5"}, "groupname": "staff", "rolename": "ghost"})).await.err(404);
    t.call("UserCreate", json!({"profile": {"login": "u6"}, "rolename": "clerk"})).await.err(400);
    t.call("UserCreate", json!({"profile": {"login": "u7"}, "groupname": "staff", "finaltime": "bogus"})).await.err(400);
    for login in ["u3", "u4", "u5", "u6", "u7"] {
        t.call("UserGet", json!({"mode": "login", "identity": login})).await.err(404);
    }

    // Bulk: the request's group for every record, a record's own group overriding it.
    let r = t
        .call(
            "UserCreateBulk",
            json!({"groupname": "staff", "records": [
                {"profile": {"login": "b1"}},
                {"profile": {"login": "b2"}, "groupname": "ops", "rolename": "clerk"},
            ]}),
        )
        .await;
    let created = r.ok()["created"].as_array().unwrap().clone();
    let b1 = created[0]["token"].as_str().unwrap();
    let b2 = created[1]["token"].as_str().unwrap();
    assert_eq!(
        t.user_groups(b1).await,
        json!([{"groupid": staff, "groupname": "staff", "groupdesc": "staff desc", "roleid": null, "rolename": null}])
    );
    assert_eq!(t.user_groups(b2).await[0]["rolename"], "clerk");
    assert_eq!(t.user_groups(b2).await.as_array().unwrap().len(), 1);

    // One unknown group fails the whole batch.
    let r = t
        .call("UserCreateBulk", json!({"records": [{"profile": {"login": "b3"}}, {"profile": {"login": "b4"}, "groupname": "ghosts"}]}))
        .await;
    r.err(404);
    t.call("UserGet", json!({"mode": "login", "identity": "b3"})).await.err(404);
    t.call("UserGet", json!({"mode": "login", "identity": "b4"})).await.err(404);
}

#[tokio::test]
async fn groups_of_another_tenant_are_not_found() {
    let app = TestApp::spawn().await;
    let a = tenant(&app, "grpa").await;
    let b = tenant(&app, "grpb").await;
    let ga = a.group("secret").await;
    let ua = a.user(json!({"login": "alice"})).await;
    a.call("GroupAddUser", json!({"mode": "token", "identity": ua, "groupid": ga})).await.ok();
    let ub = b.user(json!({"login": "bob"})).await;

    b.call("GroupGet", json!({"groupid": ga})).await.err(404);
    b.call("GroupGet", json!({"groupname": "secret"})).await.err(404);
    b.call("GroupUpdate", json!({"groupid": ga, "groupdesc": "pwned"})).await.err(404);
    b.call("GroupDelete", json!({"groupid": ga})).await.err(404);
    b.call("GroupAddUser", json!({"mode": "token", "identity": ub, "groupid": ga})).await.err(404);
    b.call("GroupAddUser", json!({"mode": "token", "identity": ua, "groupid": ga})).await.err(404);
    b.call("GroupDeleteUser", json!({"mode": "token", "identity": ua, "groupid": ga})).await.err(404);
    b.call("GroupListUserGroups", json!({"mode": "token", "identity": ua})).await.err(404);
    b.call("UserCreate", json!({"profile": {"login": "x"}, "groupid": ga})).await.err(404);
    assert_eq!(b.call("GroupListAllGroups", json!({})).await.ok()["rows"], json!([]));
    // A's group is untouched; the same name is free in B.
    assert_eq!(a.call("GroupGet", json!({"groupid": ga})).await.ok()["groupdesc"], "secret desc");
    assert_eq!(a.user_groups(&ua).await.as_array().unwrap().len(), 1);
    b.group("secret").await;
}

#[tokio::test]
async fn group_endpoints_follow_the_role_policy() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "grprole").await;
    let reader = mint(&app, &t.token, "grprole", "app-reader").await;
    let writer = mint(&app, &t.token, "grprole", "app-writer").await;
    let g = t.group("staff").await;
    let user = t.user(json!({"login": "ada"})).await;
    let call = |token: &str, endpoint: &str, body: Value| {
        let token = token.to_string();
        let endpoint = endpoint.to_string();
        let app = &app;
        async move { app.call(&endpoint, Some(&token), Some("grprole"), body).await }
    };

    call(&reader, "GroupCreate", json!({"groupname": "r"})).await.err(403);
    call(&reader, "GroupAddUser", json!({"mode": "token", "identity": user, "groupid": g})).await.err(403);
    call(&reader, "GroupDelete", json!({"groupid": g})).await.err(403);
    call(&reader, "GroupGet", json!({"groupid": g})).await.ok();
    call(&reader, "GroupListAllGroups", json!({})).await.ok();
    call(&writer, "GroupCreate", json!({"groupname": "w"})).await.err(403);
    call(&writer, "GroupUpdate", json!({"groupid": g, "groupdesc": "w"})).await.err(403);
    call(&writer, "GroupAddUser", json!({"mode": "token", "identity": user, "groupid": g})).await.ok();
    let rows = call(&reader, "GroupListUserGroups", json!({"mode": "token", "identity": user})).await;
    assert_eq!(rows.ok()["rows"][0]["groupid"], g);
    call(&writer, "GroupDeleteUser", json!({"mode": "token", "identity": user, "groupid": g})).await.ok();
}
