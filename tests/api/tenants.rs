//! The tenant directory: create, get, update, list; who may call them; tenant resolution from the
//! header, a rename, and the Host subdomain.

use serde_json::json;

use crate::helpers::*;

/// `UserCreate` in `tenant` with `xtoken`.
async fn user_create_in(app: &TestApp, xtoken: &str, tenant: &str, login: &str) -> Reply {
    app.call("UserCreate", Some(xtoken), Some(tenant), json!({"profile": {"login": login}})).await
}

// ---------------------------------------------------------------- create

#[tokio::test]
async fn root_creates_a_tenant_and_its_xtoken_works_in_that_tenant() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("TenantCreate", json!({"tenantname": "acme", "tenantorg": "Acme Inc", "email": "ops@acme.example"})).await;

    // Assert
    let body = r.ok();
    let id = body["tenantid"].as_i64().expect("tenantid is an integer");
    assert!(id > 1, "tenant 1 is the main tenant: {id}");
    let xtoken = body["xtoken"].as_str().expect("xtoken is a string").to_string();
    assert!(!xtoken.is_empty());
    assert_ne!(xtoken, app.root_token);
    let user = user_create_in(&app, &xtoken, "acme", "in-acme").await;
    let token = user.ok()["token"].as_str().unwrap().to_string();
    let got = app.call("UserGet", Some(&xtoken), Some("acme"), json!({"mode": "login", "identity": "in-acme"})).await;
    assert_eq!(got.ok()["token"], token.as_str());
    let tenant = app.root("TenantGet", json!({ "tenantid": id })).await;
    assert_eq!(tenant.ok()["email"], "ops@acme.example");
}

#[tokio::test]
async fn tenants_get_distinct_ids_and_xtokens() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (a_id, a_token) = app.create_tenant("alpha").await;
    let (b_id, b_token) = app.create_tenant("beta").await;

    // Assert
    assert_ne!(a_id, b_id);
    assert_ne!(a_token, b_token);
    user_create_in(&app, &a_token, "beta", "cross").await.err(403);
    user_create_in(&app, &b_token, "alpha", "cross").await.err(403);
}

#[tokio::test]
async fn a_duplicate_tenant_name_is_409() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, _) = app.create_tenant("acme").await;

    // Act
    let r = app.root("TenantCreate", json!({"tenantname": "acme", "tenantorg": "Other Org"})).await;
    let default = app.root("TenantCreate", json!({"tenantname": "default", "tenantorg": "Other Org"})).await;

    // Assert
    assert!(r.err(409).contains("tenant name"));
    default.err(409);
    let kept = app.root("TenantGet", json!({ "tenantid": id })).await;
    assert_eq!(kept.ok()["tenantorg"], "acme Inc");
    let list = app.root("TenantListTenants", json!({})).await;
    assert_eq!(list.ok()["total"], 2);
}

#[tokio::test]
async fn invalid_tenant_names_are_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let too_long = "a".repeat(64);

    for name in ["Acme", "acme.eu", "", "   ", too_long.as_str(), "-acme", "acme-", "ac me", "acme_eu", "ünï"] {
        // Act
        let r = app.root("TenantCreate", json!({"tenantname": name, "tenantorg": "Org"})).await;

        // Assert
        assert!(r.err(400).contains("tenantname"), "{name:?}");
    }
    let list = app.root("TenantListTenants", json!({})).await;
    assert_eq!(list.ok()["total"], 1, "no tenant was created");
}

#[tokio::test]
async fn the_longest_valid_tenant_name_has_63_characters() {
    // Arrange
    let app = TestApp::spawn().await;
    let name = format!("a{}-9", "-b".repeat(30)); // 63 characters, inner hyphens

    // Act
    let r = app.root("TenantCreate", json!({"tenantname": name, "tenantorg": "Org"})).await;

    // Assert
    assert_eq!(name.len(), 63);
    let xtoken = r.ok()["xtoken"].as_str().unwrap().to_string();
    user_create_in(&app, &xtoken, &name, "long").await.ok();
}

#[tokio::test]
async fn a_missing_or_empty_tenantorg_is_400() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let missing = app.root("TenantCreate", json!({"tenantname": "acme"})).await;
    let empty = app.root("TenantCreate", json!({"tenantname": "acme", "tenantorg": "  "})).await;
    let wrong_type = app.root("TenantCreate", json!({"tenantname": "acme", "tenantorg": 7})).await;

    // Assert
    assert!(missing.err(400).contains("tenantorg"));
    assert!(empty.err(400).contains("tenantorg"));
    assert!(wrong_type.err(400).contains("tenantorg"));
    let list = app.root("TenantListTenants", json!({})).await;
    assert_eq!(list.ok()["total"], 1);
}

#[tokio::test]
async fn a_missing_tenantname_is_400() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("TenantCreate", json!({"tenantorg": "Org"})).await;

    // Assert
    assert!(r.err(400).contains("tenantname"));
}

#[tokio::test]
async fn a_tenant_admin_cannot_create_tenants() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("acme").await;

    // Act
    let r = app.call("TenantCreate", Some(&xtoken), Some("acme"), json!({"tenantname": "evil", "tenantorg": "Evil"})).await;

    // Assert
    r.err(403);
    app.root("TenantGet", json!({"tenantid": 3})).await.err(404);
    let list = app.root("TenantListTenants", json!({})).await;
    assert_eq!(list.ok()["total"], 2);
}

#[tokio::test]
async fn tenant_create_without_a_valid_token_is_403() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let none = app.call("TenantCreate", None, None, json!({"tenantname": "acme", "tenantorg": "Org"})).await;
    let wrong = app.call("TenantCreate", Some("not-a-token"), None, json!({"tenantname": "acme", "tenantorg": "Org"})).await;

    // Assert
    none.err(403);
    wrong.err(403);
    let list = app.root("TenantListTenants", json!({})).await;
    assert_eq!(list.ok()["total"], 1);
}

// ---------------------------------------------------------------- get

#[tokio::test]
async fn tenant_get_accepts_an_integer_or_a_numeric_string_id() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, _) = app.create_tenant("acme").await;
    assert_eq!(id, 2);

    // Act
    let by_int = app.root("TenantGet", json!({"tenantid": 2})).await;
    let by_string = app.root("TenantGet", json!({"tenantid": "2"})).await;

    // Assert
    for r in [by_int, by_string] {
        let body = r.ok();
        assert_eq!(body["tenantid"], 2);
        assert_eq!(body["tenantname"], "acme");
        assert_eq!(body["tenantorg"], "acme Inc");
    }
}

#[tokio::test]
async fn tenant_get_of_the_main_tenant_names_it_default() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("TenantGet", json!({"tenantid": 1})).await;

    // Assert
    assert_eq!(r.ok()["tenantname"], "default");
}

#[tokio::test]
async fn tenant_get_of_an_unknown_id_is_404() {
    // Arrange
    let app = TestApp::spawn().await;
    app.create_tenant("acme").await;

    // Act
    let r = app.root("TenantGet", json!({"tenantid": 99})).await;

    // Assert
    assert_eq!(r.err(404), "tenant not found");
}

#[tokio::test]
async fn tenant_get_with_a_missing_or_invalid_id_is_400() {
    // Arrange
    let app = TestApp::spawn().await;

    for body in [json!({}), json!({"tenantid": 0}), json!({"tenantid": -1}), json!({"tenantid": "two"}), json!({"tenantid": 1.5})] {
        // Act
        let r = app.root("TenantGet", body.clone()).await;

        // Assert
        assert!(r.err(400).contains("tenantid"), "{body}");
    }
}

#[tokio::test]
async fn a_tenant_admin_reads_its_own_tenant_but_gets_404_for_another() {
    // Arrange
    let app = TestApp::spawn().await;
    let (acme_id, acme_token) = app.create_tenant("acme").await;
    let (beta_id, _) = app.create_tenant("beta").await;

    // Act
    let own = app.call("TenantGet", Some(&acme_token), Some("acme"), json!({ "tenantid": acme_id })).await;
    let other = app.call("TenantGet", Some(&acme_token), Some("acme"), json!({ "tenantid": beta_id })).await;
    let main = app.call("TenantGet", Some(&acme_token), Some("acme"), json!({"tenantid": 1})).await;
    let missing = app.call("TenantGet", Some(&acme_token), Some("acme"), json!({"tenantid": 99})).await;

    // Assert
    assert_eq!(own.ok()["tenantname"], "acme");
    assert_eq!(other.err(404), "tenant not found");
    assert_eq!(main.err(404), "tenant not found");
    assert_eq!(missing.err(404), "tenant not found");
}

// ---------------------------------------------------------------- update

#[tokio::test]
async fn tenant_update_changes_are_visible_in_tenant_get() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, _) = app.create_tenant("acme").await;

    // Act
    let r = app
        .root("TenantUpdate", json!({"tenantid": id, "tenantname": "acme-eu", "tenantorg": "Acme Europe", "email": "eu@acme.example"}))
        .await;

    // Assert
    r.ok();
    let got = app.root("TenantGet", json!({ "tenantid": id })).await;
    let body = got.ok();
    assert_eq!(body["tenantname"], "acme-eu");
    assert_eq!(body["tenantorg"], "Acme Europe");
    assert_eq!(body["email"], "eu@acme.example");
}

#[tokio::test]
async fn tenant_update_changes_only_the_fields_it_is_given() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, _) = app.create_tenant("acme").await;

    // Act
    let r = app.root("TenantUpdate", json!({"tenantid": id.to_string(), "tenantorg": "Acme Renamed"})).await;

    // Assert
    r.ok();
    let body = app.root("TenantGet", json!({ "tenantid": id })).await.ok().clone();
    assert_eq!(body["tenantname"], "acme");
    assert_eq!(body["tenantorg"], "Acme Renamed");
}

#[tokio::test]
async fn tenantorg_is_trimmed_on_update_as_it_is_on_create() {
    // Arrange
    let app = TestApp::spawn().await;
    let created = app.root("TenantCreate", json!({"tenantname": "acme", "tenantorg": "  Acme Inc  "})).await;
    let id = created.ok()["tenantid"].as_i64().unwrap();
    let after_create = app.root("TenantGet", json!({ "tenantid": id })).await.ok()["tenantorg"].clone();

    // Act
    app.root("TenantUpdate", json!({"tenantid": id, "tenantorg": "  Acme Europe  "})).await.ok();

    // Assert
    assert_eq!(after_create, "Acme Inc");
    let after_update = app.root("TenantGet", json!({ "tenantid": id })).await;
    assert_eq!(after_update.ok()["tenantorg"], "Acme Europe");
}

#[tokio::test]
async fn renaming_a_tenant_to_an_existing_name_is_409_and_changes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let (acme, _) = app.create_tenant("acme").await;
    app.create_tenant("beta").await;

    // Act
    let r = app.root("TenantUpdate", json!({"tenantid": acme, "tenantname": "beta", "tenantorg": "Changed"})).await;
    let to_default = app.root("TenantUpdate", json!({"tenantid": acme, "tenantname": "default"})).await;

    // Assert
    r.err(409);
    to_default.err(409);
    let body = app.root("TenantGet", json!({ "tenantid": acme })).await.ok().clone();
    assert_eq!(body["tenantname"], "acme");
    assert_eq!(body["tenantorg"], "acme Inc");
}

#[tokio::test]
async fn tenant_update_with_nothing_to_update_is_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, _) = app.create_tenant("acme").await;

    // Act
    let r = app.root("TenantUpdate", json!({ "tenantid": id })).await;

    // Assert
    assert!(r.err(400).contains("nothing to update"));
}

#[tokio::test]
async fn tenant_update_with_invalid_values_is_400_and_changes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, _) = app.create_tenant("acme").await;

    for body in [
        json!({"tenantid": id, "tenantname": "Acme"}),
        json!({"tenantid": id, "tenantname": "acme.eu"}),
        json!({"tenantid": id, "tenantname": ""}),
        json!({"tenantid": id, "tenantorg": ""}),
        json!({"tenantid": id, "tenantorg": "x".repeat(257)}),
        json!({"tenantid": id, "tenantorg": "Valid", "email": " "}),
        json!({"tenantname": "acme2"}),
    ] {
        // Act
        let r = app.root("TenantUpdate", body.clone()).await;

        // Assert
        r.err(400);
    }
    let got = app.root("TenantGet", json!({ "tenantid": id })).await.ok().clone();
    assert_eq!(got["tenantname"], "acme");
    assert_eq!(got["tenantorg"], "acme Inc");
}

#[tokio::test]
async fn tenant_update_of_an_unknown_id_is_404() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("TenantUpdate", json!({"tenantid": 42, "tenantorg": "Nobody"})).await;

    // Assert
    assert_eq!(r.err(404), "tenant not found");
}

#[tokio::test]
async fn the_default_tenant_cannot_be_renamed() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("TenantUpdate", json!({"tenantid": 1, "tenantname": "main"})).await;
    let org = app.root("TenantUpdate", json!({"tenantid": 1, "tenantorg": "Main Org"})).await;

    // Assert
    r.err(400);
    org.ok();
    let got = app.root("TenantGet", json!({"tenantid": 1})).await.ok().clone();
    assert_eq!(got["tenantname"], "default");
    assert_eq!(got["tenantorg"], "Main Org");
    // Root still works in the main tenant without a tenant header.
    app.create_user(&app.root_token, None, json!({"login": "still-default"})).await;
}

#[tokio::test]
async fn a_tenant_admin_cannot_update_tenants() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, xtoken) = app.create_tenant("acme").await;

    // Act
    let own = app.call("TenantUpdate", Some(&xtoken), Some("acme"), json!({"tenantid": id, "tenantorg": "Hijacked"})).await;
    let main = app.call("TenantUpdate", Some(&xtoken), Some("acme"), json!({"tenantid": 1, "tenantorg": "Hijacked"})).await;

    // Assert
    own.err(403);
    main.err(403);
    assert_eq!(app.root("TenantGet", json!({ "tenantid": id })).await.ok()["tenantorg"], "acme Inc");
    assert_eq!(app.root("TenantGet", json!({"tenantid": 1})).await.ok()["tenantorg"], "Default tenant");
}

#[tokio::test]
async fn after_a_rename_the_xtoken_works_under_the_new_name_only() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, xtoken) = app.create_tenant("acme").await;
    let before = user_create_in(&app, &xtoken, "acme", "before").await.ok()["token"].as_str().unwrap().to_string();

    // Act
    app.root("TenantUpdate", json!({"tenantid": id, "tenantname": "acme-new"})).await.ok();

    // Assert
    user_create_in(&app, &xtoken, "acme-new", "after").await.ok();
    user_create_in(&app, &xtoken, "acme", "old-name").await.err(403);
    let found = app.call("UserGet", Some(&xtoken), Some("acme-new"), json!({"mode": "login", "identity": "before"})).await;
    assert_eq!(found.ok()["token"], before.as_str(), "the tenant's data moved with it");
    let by_old = app.call("UserGet", Some(&xtoken), Some("acme"), json!({"mode": "login", "identity": "before"})).await;
    by_old.err(403);
}

#[tokio::test]
async fn a_freed_tenant_name_can_be_taken_by_a_new_tenant_that_does_not_inherit_credentials() {
    // Arrange
    let app = TestApp::spawn().await;
    let (id, old_token) = app.create_tenant("acme").await;
    app.root("TenantUpdate", json!({"tenantid": id, "tenantname": "acme-old"})).await.ok();

    // Act
    let (new_id, new_token) = app.create_tenant("acme").await;

    // Assert
    assert_ne!(new_id, id);
    user_create_in(&app, &old_token, "acme", "stale").await.err(403);
    user_create_in(&app, &new_token, "acme", "fresh").await.ok();
}

// ---------------------------------------------------------------- list

#[tokio::test]
async fn tenant_list_tenants_returns_rows_and_total() {
    // Arrange
    let app = TestApp::spawn().await;
    let (acme, _) = app.create_tenant("acme").await;
    let (beta, _) = app.create_tenant("beta").await;

    // Act
    let r = app.root("TenantListTenants", json!({"offset": 0, "limit": 10})).await;

    // Assert
    let body = r.ok();
    assert_eq!(body["total"], 3);
    assert_eq!(
        body["rows"],
        json!([
            {"tenantid": 1, "tenantname": "default", "tenantorg": "Default tenant"},
            {"tenantid": acme, "tenantname": "acme", "tenantorg": "acme Inc"},
            {"tenantid": beta, "tenantname": "beta", "tenantorg": "beta Inc"}
        ])
    );
}

#[tokio::test]
async fn tenant_list_tenants_pages_with_offset_and_limit() {
    // Arrange
    let app = TestApp::spawn().await;
    for name in ["t1", "t2", "t3", "t4"] {
        app.create_tenant(name).await;
    }

    // Act
    let first = app.root("TenantListTenants", json!({"offset": 0, "limit": 2})).await;
    let second = app.root("TenantListTenants", json!({"offset": "2", "limit": "2"})).await;
    let last = app.root("TenantListTenants", json!({"offset": 4, "limit": 2})).await;
    let past = app.root("TenantListTenants", json!({"offset": 10, "limit": 2})).await;

    // Assert
    let names = |r: &Reply| -> Vec<String> {
        r.ok()["rows"].as_array().unwrap().iter().map(|t| t["tenantname"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&first), ["default", "t1"]);
    assert_eq!(names(&second), ["t2", "t3"]);
    assert_eq!(names(&last), ["t4"]);
    assert_eq!(names(&past), Vec::<String>::new());
    for r in [&first, &second, &last, &past] {
        assert_eq!(r.ok()["total"], 5);
    }
}

#[tokio::test]
async fn tenant_list_limit_zero_means_the_default_and_5000_is_capped() {
    // Arrange
    let app = TestApp::spawn().await;
    for i in 0..10 {
        app.create_tenant(&format!("t{i}")).await;
    }

    // Act
    let zero = app.root("TenantListTenants", json!({"limit": 0})).await;
    let absent = app.root("TenantListTenants", json!({})).await;
    let huge = app.root("TenantListTenants", json!({"limit": 5000})).await;
    let negative = app.root("TenantListTenants", json!({"offset": -1})).await;

    // Assert
    let count = |r: &Reply| r.ok()["rows"].as_array().unwrap().len();
    assert_eq!(count(&zero), 10, "11 tenants, default page of 10");
    assert_eq!(zero.ok()["total"], 11);
    assert_eq!(count(&absent), 10);
    assert_eq!(count(&huge), 11, "a limit above the cap is capped, as Pro does");
    negative.err(400);
}

#[tokio::test]
async fn a_tenant_admin_cannot_list_tenants() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("acme").await;

    // Act
    let r = app.call("TenantListTenants", Some(&xtoken), Some("acme"), json!({})).await;

    // Assert
    r.err(403);
}

// ---------------------------------------------------------------- Host subdomain

#[tokio::test]
async fn the_tenant_is_resolved_from_the_host_subdomain() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("acme").await;
    let body = serde_json::to_vec(&json!({"profile": {"login": "via-host"}})).unwrap();

    // Act
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v2/UserCreate",
            &[("content-type", "application/json"), ("x-bunker-token", &xtoken), ("host", "acme.localhost")],
            body,
        )
        .await;

    // Assert
    let token = r.ok()["token"].as_str().unwrap().to_string();
    let found = app.call("UserGet", Some(&xtoken), Some("acme"), json!({"mode": "login", "identity": "via-host"})).await;
    assert_eq!(found.ok()["token"], token.as_str());
    app.root("UserGet", json!({"mode": "login", "identity": "via-host"})).await.err(404);
}

#[tokio::test]
async fn a_host_subdomain_of_another_tenant_or_none_refuses_the_xtoken() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("acme").await;
    app.create_tenant("beta").await;
    let body = || serde_json::to_vec(&json!({"mode": "login", "identity": "x"})).unwrap();

    for host in ["beta.localhost", "localhost", "nosuch.localhost"] {
        // Act
        let r = app.raw(reqwest::Method::POST, "/v2/UserGet", &[("x-bunker-token", &xtoken), ("host", host)], body()).await;

        // Assert
        assert_eq!(r.err(403), "access denied", "{host}");
    }
}

#[tokio::test]
async fn the_tenant_header_wins_over_the_host_subdomain() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, acme) = app.create_tenant("acme").await;
    app.create_tenant("beta").await;
    let body = serde_json::to_vec(&json!({"profile": {"login": "header-wins"}})).unwrap();

    // Act
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v2/UserCreate",
            &[("content-type", "application/json"), ("x-bunker-token", &acme), ("x-bunker-tenant", "acme"), ("host", "beta.localhost")],
            body,
        )
        .await;

    // Assert
    r.ok();
    let found = app.call("UserGet", Some(&acme), Some("acme"), json!({"mode": "login", "identity": "header-wins"})).await;
    found.ok();
}
