//! The user record endpoints: create, get by every lookup mode, update (merge), patch, delete,
//! bulk create, versions, and how bad input and missing credentials are answered.

use serde_json::{json, Value};

use crate::helpers::*;

/// `UserGet` as root in the main tenant.
async fn get(app: &TestApp, mode: &str, identity: &str) -> Reply {
    app.root("UserGet", json!({"mode": mode, "identity": identity})).await
}

/// `UserCreate` as root in the main tenant; returns the user token.
async fn create(app: &TestApp, profile: Value) -> String {
    app.create_user(&app.root_token, None, profile).await
}

/// The current profile of the user with `token` (root, main tenant).
async fn profile_of(app: &TestApp, token: &str) -> Value {
    get(app, "token", token).await.ok()["profile"].clone()
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------- create and get

#[tokio::test]
async fn user_create_returns_a_token_and_user_get_returns_the_full_record() {
    // Arrange
    let app = TestApp::spawn().await;
    let profile = json!({"login": "alice", "email": "alice@example.com", "name": "Alice"});

    // Act
    let created = app.root("UserCreate", json!({ "profile": profile })).await;
    let token = created.ok()["token"].as_str().expect("token is a string").to_string();
    let got = get(&app, "token", &token).await;

    // Assert
    assert!(!token.is_empty());
    let body = got.ok();
    assert_eq!(body["token"], token.as_str());
    assert_eq!(body["profile"], profile);
    assert_eq!(body["version"], 1);
    assert_eq!(body["finaltime"], 0);
    assert_eq!(body["slidingtime"], 0);
    assert_eq!(body["expirationtime"], 0);
    assert_eq!(body["grouproles"], json!([]));
}

#[tokio::test]
async fn two_users_get_different_tokens() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let a = create(&app, json!({"name": "A"})).await;
    let b = create(&app, json!({"name": "B"})).await;

    // Assert
    assert_ne!(a, b);
    assert_eq!(profile_of(&app, &a).await["name"], "A");
    assert_eq!(profile_of(&app, &b).await["name"], "B");
}

#[tokio::test]
async fn user_get_finds_a_user_by_login_email_phone_and_custom() {
    // Arrange
    let app = TestApp::spawn().await;
    let token =
        create(&app, json!({"login": "bob", "email": "bob@example.com", "phone": "15550199", "custom": "EMP-7", "name": "Bob"})).await;
    create(&app, json!({"login": "other", "email": "other@example.com", "phone": "15550000", "custom": "EMP-8"})).await;

    for (mode, identity) in [("login", "bob"), ("email", "bob@example.com"), ("phone", "15550199"), ("custom", "EMP-7")] {
        // Act
        let r = get(&app, mode, identity).await;

        // Assert
        let body = r.ok();
        assert_eq!(body["token"], token.as_str(), "by {mode}");
        assert_eq!(body["profile"]["name"], "Bob", "by {mode}");
    }
}

#[tokio::test]
async fn user_get_of_an_unknown_identity_is_404_in_every_mode() {
    // Arrange
    let app = TestApp::spawn().await;
    create(&app, json!({"login": "bob", "email": "bob@example.com", "phone": "15550199", "custom": "EMP-7"})).await;

    for (mode, identity) in [
        ("token", "00000000-0000-4000-8000-000000000000"),
        ("login", "nobody"),
        ("email", "nobody@example.com"),
        ("phone", "15559999"),
        ("custom", "EMP-0"),
    ] {
        // Act
        let r = get(&app, mode, identity).await;

        // Assert
        assert_eq!(r.err(404), "user record not found", "by {mode}");
    }
}

#[tokio::test]
async fn login_lookup_is_case_sensitive() {
    // Arrange
    let app = TestApp::spawn().await;
    create(&app, json!({"login": "Carol"})).await;

    // Act
    let exact = get(&app, "login", "Carol").await;
    let lower = get(&app, "login", "carol").await;

    // Assert
    exact.ok();
    lower.err(404);
}

#[tokio::test]
async fn email_lookup_ignores_case_and_surrounding_whitespace() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"email": "Dana.Smith@Example.COM"})).await;

    for identity in ["dana.smith@example.com", "  DANA.SMITH@EXAMPLE.COM  ", "Dana.Smith@Example.COM"] {
        // Act
        let r = get(&app, "email", identity).await;

        // Assert
        assert_eq!(r.ok()["token"], token.as_str(), "{identity:?}");
    }
}

#[tokio::test]
async fn phone_lookup_compares_digits_only() {
    // Arrange
    let app = TestApp::spawn().await;
    let formatted = create(&app, json!({"phone": "+1 (555) 010-0"})).await;
    let plain = create(&app, json!({"phone": "4420794600"})).await;

    // Act
    let by_digits = get(&app, "phone", "15550100").await;
    let by_format = get(&app, "phone", "+44 20 7946 00").await;
    let other = get(&app, "phone", "15550101").await;

    // Assert
    assert_eq!(by_digits.ok()["token"], formatted.as_str());
    assert_eq!(by_format.ok()["token"], plain.as_str());
    other.err(404);
}

#[tokio::test]
async fn a_numeric_phone_in_the_profile_is_indexed_like_its_digits() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"phone": 15550123})).await;

    // Act
    let r = get(&app, "phone", "+1 555 0123").await;

    // Assert
    assert_eq!(r.ok()["token"], token.as_str());
    assert_eq!(r.ok()["profile"]["phone"], 15550123);
}

#[tokio::test]
async fn a_profile_round_trips_exactly_with_nested_objects_unicode_and_injection_strings() {
    // Arrange
    let app = TestApp::spawn().await;
    let profile = json!({
        "login": "'); DROP TABLE users;--",
        "email": "zoë@exämple.org",
        "custom": "{\"$ne\":null}",
        "name": "Zoë 日本語 🚀 \u{0000}\t\"quoted\" \\ back",
        "query": {"$ne": null},
        "sql": "1' OR '1'='1",
        "address": {"street": "Königstraße 1", "geo": {"lat": 52.52, "lng": 13.405}, "tags": ["a", "b", {"deep": [1, 2, 3]}]},
        "empty": {},
        "list": [],
        "flag": true,
        "nothing": null,
        "count": 12345678901234i64,
        "negative": -7
    });

    // Act
    let token = create(&app, profile.clone()).await;
    let by_token = get(&app, "token", &token).await;
    let by_login = get(&app, "login", "'); DROP TABLE users;--").await;
    let by_custom = get(&app, "custom", "{\"$ne\":null}").await;
    let by_email = get(&app, "email", "ZOË@EXÄMPLE.ORG").await;

    // Assert
    assert_eq!(by_token.ok()["profile"], profile);
    assert_eq!(by_login.ok()["token"], token.as_str());
    assert_eq!(by_custom.ok()["token"], token.as_str());
    assert_eq!(by_email.ok()["token"], token.as_str());
    // The injection string did nothing to the table: a second user still goes in and is found.
    let second = create(&app, json!({"login": "after"})).await;
    assert_eq!(get(&app, "login", "after").await.ok()["token"], second.as_str());
}

// ---------------------------------------------------------------- uniqueness

#[tokio::test]
async fn a_duplicate_unique_field_in_a_tenant_is_409_naming_the_mode_and_stores_nothing() {
    let cases = [
        ("login", json!({"login": "erin", "custom": "first"}), json!({"login": "erin", "custom": "second"})),
        ("email", json!({"email": "erin@example.com", "custom": "first"}), json!({"email": " ERIN@example.com ", "custom": "second"})),
        ("phone", json!({"phone": "+1 555 0142", "custom": "first"}), json!({"phone": "15550142", "custom": "second"})),
        ("custom", json!({"custom": "C-1", "login": "first"}), json!({"custom": "C-1", "login": "second"})),
    ];
    for (mode, existing, clash) in cases {
        // Arrange
        let app = TestApp::spawn().await;
        create(&app, existing).await;
        let (other_mode, other_identity) = if mode == "custom" { ("login", "second") } else { ("custom", "second") };

        // Act
        let r = app.root("UserCreate", json!({ "profile": clash })).await;

        // Assert
        let msg = r.err(409);
        assert!(msg.contains(mode), "{mode}: {msg}");
        get(&app, other_mode, other_identity).await.err(404);
    }
}

#[tokio::test]
async fn the_same_email_may_exist_in_two_different_tenants() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("acme").await;
    let main = create(&app, json!({"email": "frank@example.com", "name": "main"})).await;

    // Act
    let r = app.call("UserCreate", Some(&xtoken), Some("acme"), json!({"profile": {"email": "frank@example.com", "name": "acme"}})).await;

    // Assert
    let acme = r.ok()["token"].as_str().unwrap().to_string();
    assert_ne!(acme, main);
    let in_acme = app.call("UserGet", Some(&xtoken), Some("acme"), json!({"mode": "email", "identity": "frank@example.com"})).await;
    assert_eq!(in_acme.ok()["token"], acme.as_str());
    assert_eq!(in_acme.ok()["profile"]["name"], "acme");
    let in_main = get(&app, "email", "frank@example.com").await;
    assert_eq!(in_main.ok()["token"], main.as_str());
    assert_eq!(in_main.ok()["profile"]["name"], "main");
}

// ---------------------------------------------------------------- update

#[tokio::test]
async fn user_update_merges_per_rfc_7396_and_increments_the_version() {
    // Arrange
    let app = TestApp::spawn().await;
    let token =
        create(&app, json!({"login": "gina", "name": "Gina", "city": "Oslo", "address": {"street": "A 1", "zip": "0150"}, "tmp": "x"}))
            .await;

    // Act
    let r = app
        .root(
            "UserUpdate",
            json!({"mode": "login", "identity": "gina", "profile": {"name": "Gina B", "tmp": null, "address": {"zip": null, "country": "NO"}, "new": [1]}}),
        )
        .await;

    // Assert
    r.ok();
    let after = get(&app, "token", &token).await;
    assert_eq!(
        after.ok()["profile"],
        json!({"login": "gina", "name": "Gina B", "city": "Oslo", "address": {"street": "A 1", "country": "NO"}, "new": [1]})
    );
    assert_eq!(after.ok()["version"], 2);
}

#[tokio::test]
async fn old_versions_stay_readable_after_updates() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "v1"})).await;
    for name in ["v2", "v3"] {
        app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": name}})).await.ok();
    }

    // Act
    let v1 = app.root("UserGet", json!({"mode": "token", "identity": token, "version": 1})).await;
    let v2 = app.root("UserGet", json!({"mode": "token", "identity": token, "version": "2"})).await;
    let v3 = app.root("UserGet", json!({"mode": "token", "identity": token, "version": 3})).await;
    let current = get(&app, "token", &token).await;
    let v4 = app.root("UserGet", json!({"mode": "token", "identity": token, "version": 4})).await;
    let v0 = app.root("UserGet", json!({"mode": "token", "identity": token, "version": 0})).await;

    // Assert
    assert_eq!(v1.ok()["profile"], json!({"name": "v1"}));
    assert_eq!(v1.ok()["version"], 1);
    assert_eq!(v2.ok()["profile"], json!({"name": "v2"}));
    assert_eq!(v2.ok()["version"], 2);
    assert_eq!(v3.ok()["profile"], json!({"name": "v3"}));
    assert_eq!(current.ok()["profile"], json!({"name": "v3"}));
    assert_eq!(current.ok()["version"], 3);
    v4.err(404);
    v0.err(404);
}

#[tokio::test]
async fn changing_the_email_moves_the_lookup_index() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"email": "old@example.com", "login": "hank"})).await;

    // Act
    let r = app.root("UserUpdate", json!({"mode": "email", "identity": "old@example.com", "profile": {"email": "new@example.com"}})).await;

    // Assert
    r.ok();
    get(&app, "email", "old@example.com").await.err(404);
    assert_eq!(get(&app, "email", "new@example.com").await.ok()["token"], token.as_str());
    assert_eq!(get(&app, "login", "hank").await.ok()["token"], token.as_str(), "untouched indexes stay");
    // The old email is free again.
    let other = create(&app, json!({"email": "old@example.com"})).await;
    assert_eq!(get(&app, "email", "old@example.com").await.ok()["token"], other.as_str());
}

#[tokio::test]
async fn removing_the_email_with_null_removes_its_lookup() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"email": "ivy@example.com", "login": "ivy"})).await;

    // Act
    let r = app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"email": null}})).await;

    // Assert
    r.ok();
    get(&app, "email", "ivy@example.com").await.err(404);
    assert_eq!(profile_of(&app, &token).await, json!({"login": "ivy"}));
}

#[tokio::test]
async fn updating_to_an_email_another_user_holds_is_409_and_changes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let jack = create(&app, json!({"email": "jack@example.com", "name": "Jack"})).await;
    let jill = create(&app, json!({"email": "jill@example.com", "name": "Jill"})).await;

    // Act
    let r =
        app.root("UserUpdate", json!({"mode": "token", "identity": jack, "profile": {"email": "JILL@example.com", "name": "Jacky"}})).await;

    // Assert
    assert!(r.err(409).contains("email"));
    let after = get(&app, "token", &jack).await;
    assert_eq!(after.ok()["profile"], json!({"email": "jack@example.com", "name": "Jack"}));
    assert_eq!(after.ok()["version"], 1);
    assert_eq!(get(&app, "email", "jack@example.com").await.ok()["token"], jack.as_str());
    assert_eq!(get(&app, "email", "jill@example.com").await.ok()["token"], jill.as_str());
    let versions = app.root("UserListVersions", json!({"mode": "token", "identity": jack})).await;
    assert_eq!(versions.ok()["versions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_version() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"login": "kim", "name": "Kim"})).await;

    // Act
    let same = app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "Kim"}})).await;
    let absent = app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"missing": null}})).await;

    // Assert
    same.ok();
    absent.ok();
    let after = get(&app, "token", &token).await;
    assert_eq!(after.ok()["version"], 1);
    assert_eq!(after.ok()["profile"], json!({"login": "kim", "name": "Kim"}));
    let versions = app.root("UserListVersions", json!({"mode": "token", "identity": token})).await;
    assert_eq!(versions.ok()["versions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn user_update_of_an_unknown_user_is_404() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("UserUpdate", json!({"mode": "email", "identity": "ghost@example.com", "profile": {"name": "x"}})).await;

    // Assert
    assert_eq!(r.err(404), "user record not found");
}

#[tokio::test]
async fn user_update_with_an_empty_or_non_object_profile_is_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "Lee"})).await;

    for profile in [json!({}), json!("text"), json!([1]), json!(null)] {
        // Act
        let r = app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": profile})).await;

        // Assert
        r.err(400);
    }
    assert_eq!(get(&app, "token", &token).await.ok()["version"], 1);
}

// ---------------------------------------------------------------- patch

#[tokio::test]
async fn user_patch_applies_replace_add_and_remove() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"login": "mia", "name": "Mia", "tmp": 1, "tags": ["a"]})).await;

    // Act
    let r = app
        .root(
            "UserPatch",
            json!({"mode": "login", "identity": "mia", "patch": [
                {"op": "replace", "path": "/name", "value": "Mia K"},
                {"op": "add", "path": "/city", "value": "Rome"},
                {"op": "add", "path": "/tags/-", "value": "b"},
                {"op": "remove", "path": "/tmp"}
            ]}),
        )
        .await;

    // Assert
    r.ok();
    let after = get(&app, "token", &token).await;
    assert_eq!(after.ok()["profile"], json!({"login": "mia", "name": "Mia K", "city": "Rome", "tags": ["a", "b"]}));
    assert_eq!(after.ok()["version"], 2);
}

#[tokio::test]
async fn a_patch_changing_the_email_moves_the_lookup_index() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"email": "ned@example.com"})).await;

    // Act
    let r = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": token, "patch": [{"op": "replace", "path": "/email", "value": "ned@new.example"}]}),
        )
        .await;

    // Assert
    r.ok();
    get(&app, "email", "ned@example.com").await.err(404);
    assert_eq!(get(&app, "email", "ned@new.example").await.ok()["token"], token.as_str());
}

#[tokio::test]
async fn a_failed_test_operation_is_400_and_leaves_the_profile_unchanged() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "Olga", "role": "user"})).await;

    // Act
    let r = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": token, "patch": [
                {"op": "replace", "path": "/name", "value": "Changed"},
                {"op": "test", "path": "/role", "value": "admin"}
            ]}),
        )
        .await;

    // Assert
    r.err(400);
    let after = get(&app, "token", &token).await;
    assert_eq!(after.ok()["profile"], json!({"name": "Olga", "role": "user"}));
    assert_eq!(after.ok()["version"], 1);
}

#[tokio::test]
async fn a_passing_test_operation_lets_the_patch_apply() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "Pia", "role": "user"})).await;

    // Act
    let r = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": token, "patch": [
                {"op": "test", "path": "/role", "value": "user"},
                {"op": "replace", "path": "/role", "value": "admin"}
            ]}),
        )
        .await;

    // Assert
    r.ok();
    assert_eq!(profile_of(&app, &token).await, json!({"name": "Pia", "role": "admin"}));
}

#[tokio::test]
async fn an_invalid_patch_op_is_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "Quinn"})).await;

    // Act
    let r = app
        .root("UserPatch", json!({"mode": "token", "identity": token, "patch": [{"op": "frobnicate", "path": "/name", "value": "x"}]}))
        .await;

    // Assert
    r.err(400);
    assert_eq!(profile_of(&app, &token).await, json!({"name": "Quinn"}));
}

#[tokio::test]
async fn an_empty_patch_is_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "Rita"})).await;

    // Act
    let r = app.root("UserPatch", json!({"mode": "token", "identity": token, "patch": []})).await;

    // Assert
    assert!(r.err(400).contains("patch"));
}

#[tokio::test]
async fn a_patch_that_would_make_the_profile_not_an_object_is_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "Sam"})).await;

    for patch in [
        json!([{"op": "replace", "path": "", "value": [1, 2]}]),
        json!([{"op": "replace", "path": "", "value": "text"}]),
        json!([{"op": "remove", "path": "/name"}]),
    ] {
        // Act
        let r = app.root("UserPatch", json!({"mode": "token", "identity": token, "patch": patch})).await;

        // Assert
        r.err(400);
    }
    let after = get(&app, "token", &token).await;
    assert_eq!(after.ok()["profile"], json!({"name": "Sam"}));
    assert_eq!(after.ok()["version"], 1);
}

#[tokio::test]
async fn a_patch_to_an_email_another_user_holds_is_409_and_changes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let tom = create(&app, json!({"email": "tom@example.com"})).await;
    create(&app, json!({"email": "tina@example.com"})).await;

    // Act
    let r = app
        .root(
            "UserPatch",
            json!({"mode": "token", "identity": tom, "patch": [{"op": "replace", "path": "/email", "value": "tina@example.com"}]}),
        )
        .await;

    // Assert
    assert!(r.err(409).contains("email"));
    assert_eq!(profile_of(&app, &tom).await, json!({"email": "tom@example.com"}));
    assert_eq!(get(&app, "email", "tom@example.com").await.ok()["token"], tom.as_str());
}

// ---------------------------------------------------------------- delete

#[tokio::test]
async fn a_deleted_user_is_gone_and_its_email_can_be_reused() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"email": "una@example.com", "name": "Una"})).await;
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "Una 2"}})).await.ok();

    // Act
    let r = app.root("UserDelete", json!({"mode": "email", "identity": "una@example.com"})).await;

    // Assert
    r.ok();
    get(&app, "token", &token).await.err(404);
    get(&app, "email", "una@example.com").await.err(404);
    app.root("UserListVersions", json!({"mode": "token", "identity": token})).await.err(404);
    app.root("UserGet", json!({"mode": "token", "identity": token, "version": 1})).await.err(404);
    let again = create(&app, json!({"email": "una@example.com", "name": "New Una"})).await;
    assert_ne!(again, token);
    let found = get(&app, "email", "una@example.com").await;
    assert_eq!(found.ok()["token"], again.as_str());
    assert_eq!(found.ok()["profile"]["name"], "New Una");
    assert_eq!(found.ok()["version"], 1);
}

#[tokio::test]
async fn deleting_an_unknown_user_is_404() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let by_token = app.root("UserDelete", json!({"mode": "token", "identity": "00000000-0000-4000-8000-000000000000"})).await;
    let by_email = app.root("UserDelete", json!({"mode": "email", "identity": "nobody@example.com"})).await;

    // Assert
    assert_eq!(by_token.err(404), "user record not found");
    assert_eq!(by_email.err(404), "user record not found");
}

#[tokio::test]
async fn deleting_a_user_twice_is_404_the_second_time() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "Vic"})).await;
    let other = create(&app, json!({"name": "Other"})).await;

    // Act
    let first = app.root("UserDelete", json!({"mode": "token", "identity": token})).await;
    let second = app.root("UserDelete", json!({"mode": "token", "identity": token})).await;

    // Assert
    first.ok();
    second.err(404);
    assert_eq!(profile_of(&app, &other).await, json!({"name": "Other"}), "only the named user is deleted");
}

// ---------------------------------------------------------------- bulk

#[tokio::test]
async fn user_create_bulk_returns_the_created_records_in_order_and_each_is_retrievable() {
    // Arrange
    let app = TestApp::spawn().await;
    let profiles: Vec<Value> =
        (0..5).map(|i| json!({"login": format!("bulk{i}"), "email": format!("bulk{i}@example.com"), "n": i})).collect();
    let records: Vec<Value> = profiles.iter().map(|p| json!({ "profile": p })).collect();

    // Act
    let r = app.root("UserCreateBulk", json!({ "records": records })).await;

    // Assert
    let created = r.ok()["created"].as_array().expect("created is an array").clone();
    assert_eq!(created.len(), 5);
    let mut tokens = std::collections::HashSet::new();
    for (i, c) in created.iter().enumerate() {
        assert_eq!(c["profile"], profiles[i], "record {i}");
        let token = c["token"].as_str().unwrap();
        assert!(tokens.insert(token.to_string()), "tokens are distinct");
        let got = get(&app, "token", token).await;
        assert_eq!(got.ok()["profile"], profiles[i]);
        assert_eq!(got.ok()["version"], 1);
        let by_login = get(&app, "login", &format!("bulk{i}")).await;
        assert_eq!(by_login.ok()["token"], token);
    }
}

#[tokio::test]
async fn a_duplicate_inside_a_bulk_batch_is_409_and_nothing_is_stored() {
    // Arrange
    let app = TestApp::spawn().await;
    let records = json!([
        {"profile": {"login": "w1", "email": "same@example.com"}},
        {"profile": {"login": "w2"}},
        {"profile": {"login": "w3", "email": "SAME@example.com"}}
    ]);

    // Act
    let r = app.root("UserCreateBulk", json!({ "records": records })).await;

    // Assert
    assert!(r.err(409).contains("email"));
    for login in ["w1", "w2", "w3"] {
        get(&app, "login", login).await.err(404);
    }
    get(&app, "email", "same@example.com").await.err(404);
}

#[tokio::test]
async fn a_bulk_record_clashing_with_an_existing_user_is_409_and_nothing_is_stored() {
    // Arrange
    let app = TestApp::spawn().await;
    let existing = create(&app, json!({"phone": "15550177", "name": "existing"})).await;
    let records = json!([
        {"profile": {"login": "x1"}},
        {"profile": {"login": "x2", "phone": "+1 555 0177"}}
    ]);

    // Act
    let r = app.root("UserCreateBulk", json!({ "records": records })).await;

    // Assert
    assert!(r.err(409).contains("phone"));
    get(&app, "login", "x1").await.err(404);
    get(&app, "login", "x2").await.err(404);
    assert_eq!(get(&app, "phone", "15550177").await.ok()["token"], existing.as_str());
}

#[tokio::test]
async fn an_empty_bulk_is_400() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("UserCreateBulk", json!({"records": []})).await;

    // Assert
    assert!(r.err(400).contains("records"));
}

#[tokio::test]
async fn a_bad_record_in_a_bulk_is_400_naming_its_index_and_nothing_is_stored() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("UserCreateBulk", json!({"records": [{"profile": {"login": "y1"}}, {"profile": {}}]})).await;

    // Assert
    assert!(r.err(400).contains("records[1]"));
    get(&app, "login", "y1").await.err(404);
}

// ---------------------------------------------------------------- versions

#[tokio::test]
async fn user_list_versions_lists_one_entry_per_version_with_distinct_md5s() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"login": "zed", "name": "one"})).await;
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "two"}})).await.ok();
    app.root("UserPatch", json!({"mode": "token", "identity": token, "patch": [{"op": "replace", "path": "/name", "value": "three"}]}))
        .await
        .ok();

    // Act
    let r = app.root("UserListVersions", json!({"mode": "login", "identity": "zed"})).await;

    // Assert
    let versions = r.ok()["versions"].as_array().expect("versions is an array").clone();
    assert_eq!(versions.iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3]);
    let md5s: Vec<&str> = versions.iter().map(|v| v["md5"].as_str().unwrap()).collect();
    for m in &md5s {
        assert!(is_hex32(m), "{m}");
    }
    assert_ne!(md5s[0], md5s[1]);
    assert_ne!(md5s[1], md5s[2]);
    assert_ne!(md5s[0], md5s[2]);
    for v in &versions {
        assert!(v["optime"].as_i64().unwrap() > 1_600_000_000, "optime is a unix time: {v}");
    }
}

#[tokio::test]
async fn a_new_user_has_exactly_one_version() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "solo"})).await;

    // Act
    let r = app.root("UserListVersions", json!({"mode": "token", "identity": token})).await;

    // Assert
    let versions = r.ok()["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["version"], 1);
    assert!(is_hex32(versions[0]["md5"].as_str().unwrap()));
}

#[tokio::test]
async fn user_list_versions_of_an_unknown_user_is_404() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("UserListVersions", json!({"mode": "login", "identity": "nobody"})).await;

    // Assert
    r.err(404);
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn an_invalid_json_body_is_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let headers = [("content-type", "application/json"), ("x-bunker-token", app.root_token.as_str())];

    for body in [&b"{\"profile\": {\"name\": "[..], b"{not json}", b"{\"profile\": {\"a\": 1},}"] {
        // Act
        let r = app.raw(reqwest::Method::POST, "/v2/UserCreate", &headers, body.to_vec()).await;

        // Assert
        let msg = r.err(400);
        assert!(msg.contains("malformed JSON"), "{msg}");
    }
}

#[tokio::test]
async fn trailing_garbage_after_the_json_body_is_400_and_stores_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let headers = [("content-type", "application/json"), ("x-bunker-token", app.root_token.as_str())];

    // Act
    let r = app.raw(reqwest::Method::POST, "/v2/UserCreate", &headers, b"{\"profile\": {\"login\": \"trail\"}} garbage".to_vec()).await;

    // Assert
    r.err(400);
    get(&app, "login", "trail").await.err(404);
}

#[tokio::test]
async fn wrongly_typed_fields_are_400_without_echoing_the_value() {
    // Arrange
    let app = TestApp::spawn().await;
    let secret = "secret-value-4711";
    let cases = [
        ("UserGet", json!({"mode": 4711, "identity": "x"}), "4711"),
        ("UserGet", json!({"mode": "token", "identity": ["a", secret]}), secret),
        ("UserGet", json!({"mode": "token", "identity": "x", "version": secret}), secret),
        ("UserCreate", json!({"profile": secret}), secret),
        ("UserCreate", json!({"profile": [secret]}), secret),
        ("UserCreate", json!({"profile": 4711}), "4711"),
        ("UserUpdate", json!({"mode": "token", "identity": "x", "profile": secret}), secret),
        ("UserPatch", json!({"mode": "token", "identity": "x", "patch": secret}), secret),
        ("UserCreateBulk", json!({"records": secret}), secret),
    ];

    for (endpoint, body, value) in cases {
        // Act
        let r = app.root(endpoint, body.clone()).await;

        // Assert
        let msg = r.err(400);
        assert!(!msg.contains(value), "{endpoint} {body}: {msg}");
    }
}

#[tokio::test]
async fn a_wrongly_typed_mode_is_400_naming_the_field() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("UserGet", json!({"mode": 5, "identity": "x"})).await;

    // Assert
    assert!(r.err(400).contains("mode"));
}

#[tokio::test]
async fn missing_mode_or_identity_is_400_naming_the_field() {
    // Arrange
    let app = TestApp::spawn().await;

    for (endpoint, body, field) in [
        ("UserGet", json!({"identity": "x"}), "mode"),
        ("UserGet", json!({"mode": "token"}), "identity"),
        ("UserUpdate", json!({"identity": "x", "profile": {"a": 1}}), "mode"),
        ("UserPatch", json!({"mode": "token", "patch": []}), "identity"),
        ("UserDelete", json!({"identity": "x"}), "mode"),
        ("UserListVersions", json!({"mode": "token"}), "identity"),
        ("UserCreate", json!({}), "profile"),
        ("UserCreateBulk", json!({}), "records"),
    ] {
        // Act
        let r = app.root(endpoint, body).await;

        // Assert
        let msg = r.err(400);
        assert!(msg.contains(field), "{endpoint}: {msg}");
    }
}

#[tokio::test]
async fn an_empty_body_is_400_naming_a_missing_field() {
    // Arrange
    let app = TestApp::spawn().await;
    let headers = [("x-bunker-token", app.root_token.as_str())];

    // Act
    let r = app.raw(reqwest::Method::POST, "/v2/UserGet", &headers, Vec::new()).await;

    // Assert
    assert!(r.err(400).contains("mode"));
}

#[tokio::test]
async fn an_unknown_mode_is_400() {
    // Arrange
    let app = TestApp::spawn().await;
    create(&app, json!({"login": "u"})).await;

    // Act
    let r = get(&app, "nickname", "u").await;

    // Assert
    assert!(r.err(400).contains("mode"));
}

#[tokio::test]
async fn an_empty_identity_is_400() {
    // Arrange
    let app = TestApp::spawn().await;

    for identity in ["", "   "] {
        // Act
        let r = get(&app, "token", identity).await;

        // Assert
        assert!(r.err(400).contains("identity"));
    }
}

#[tokio::test]
async fn a_phone_identity_without_digits_is_400() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = get(&app, "phone", "call me").await;

    // Assert
    assert!(r.err(400).contains("phone"));
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_413() {
    // Arrange
    let app = TestApp::spawn().await;
    let big = "a".repeat(10 * 1024 * 1024);
    let body = serde_json::to_vec(&json!({"profile": {"blob": big}})).unwrap();
    let headers = [("content-type", "application/json"), ("x-bunker-token", app.root_token.as_str())];

    // Act
    let r = app.raw(reqwest::Method::POST, "/v2/UserCreate", &headers, body).await;

    // Assert
    r.err(413);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let headers = [("content-type", "application/json"), ("x-bunker-token", app.root_token.as_str())];

    for body in [&b"[{\"profile\": {\"a\": 1}}]"[..], b"\"text\"", b"42", b"null", b"true"] {
        // Act
        let r = app.raw(reqwest::Method::POST, "/v2/UserCreate", &headers, body.to_vec()).await;

        // Assert
        assert!(r.err(400).contains("JSON object"), "{:?}", String::from_utf8_lossy(body));
    }
}

#[tokio::test]
async fn a_profile_email_that_is_not_a_string_is_400() {
    // Arrange
    let app = TestApp::spawn().await;

    for email in [json!({"addr": "a@example.com"}), json!(["a@example.com"]), json!(true)] {
        // Act
        let r = app.root("UserCreate", json!({"profile": {"email": email, "login": "w"}})).await;

        // Assert
        let msg = r.err(400);
        assert!(msg.contains("email"), "{msg}");
        assert!(!msg.contains("a@example.com"), "{msg}");
    }
    get(&app, "login", "w").await.err(404);
}

#[tokio::test]
async fn an_empty_profile_is_400() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("UserCreate", json!({"profile": {}})).await;

    // Assert
    assert!(r.err(400).contains("profile"));
}

#[tokio::test]
async fn retention_times_on_user_create_are_stored_and_null_means_none() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let sliding = app.root("UserCreate", json!({"profile": {"login": "s1"}, "slidingtime": "30d"})).await;
    let final_ = app.root("UserCreate", json!({"profile": {"login": "s2"}, "finaltime": "1y"})).await;
    let nulls =
        app.root("UserCreate", json!({"profile": {"login": "s3"}, "slidingtime": null, "finaltime": null, "groupname": null})).await;

    // Assert (details in tests/api/retention.rs)
    sliding.ok();
    final_.ok();
    assert_eq!(get(&app, "login", "s1").await.ok()["slidingtime"], 30 * 86_400);
    assert!(get(&app, "login", "s2").await.ok()["finaltime"].as_i64().unwrap() > 0);
    let token = nulls.ok()["token"].as_str().unwrap().to_string();
    let got = get(&app, "login", "s3").await;
    assert_eq!(got.ok()["token"], token.as_str());
    assert_eq!(
        (got.ok()["slidingtime"].clone(), got.ok()["finaltime"].clone(), got.ok()["expirationtime"].clone()),
        (json!(0), json!(0), json!(0))
    );
}

#[tokio::test]
async fn an_unknown_group_on_user_create_is_404_and_stores_nothing() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.root("UserCreate", json!({"profile": {"login": "g1"}, "groupname": "admins"})).await;

    // Assert
    r.err(404);
    get(&app, "login", "g1").await.err(404);
}

#[tokio::test]
async fn request_metadata_must_be_an_object() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let good = app.root("UserCreate", json!({"profile": {"login": "m1"}, "request_metadata": {"purpose": "kyc"}})).await;
    let bad = app.root("UserCreate", json!({"profile": {"login": "m2"}, "request_metadata": "kyc"})).await;

    // Assert
    good.ok();
    assert!(bad.err(400).contains("request_metadata"));
    get(&app, "login", "m2").await.err(404);
}

#[tokio::test]
async fn get_on_a_v2_endpoint_is_a_json_error() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.raw(reqwest::Method::GET, "/v2/UserCreate", &[("x-bunker-token", app.root_token.as_str())], Vec::new()).await;

    // Assert
    assert_ne!(r.code, 200);
    assert!(r.code >= 400 && r.code < 500, "{}", r.code);
    assert_eq!(r.body["status"], "error");
    assert!(r.body["message"].is_string());
}

#[tokio::test]
async fn an_unknown_endpoint_is_404_and_every_contract_endpoint_is_routed() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let unknown = app.root("NoSuchThing", json!({})).await;

    // Assert
    assert!(unknown.err(404).contains("NoSuchThing"));
    for ep in strongroom::api::contract_endpoints() {
        let r = app.root(ep, json!({})).await;
        assert!(r.code != 404 && r.code != 501, "{ep} is not served: {} {}", r.code, r.body);
    }
}

#[tokio::test]
async fn a_path_outside_v2_is_a_json_404() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.raw(reqwest::Method::POST, "/v3/UserCreate", &[], Vec::new()).await;

    // Assert
    r.err(404);
}

// ---------------------------------------------------------------- credentials

#[tokio::test]
async fn a_request_without_a_token_is_403_and_stores_nothing() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.call("UserCreate", None, None, json!({"profile": {"login": "anon"}})).await;

    // Assert
    r.err(403);
    get(&app, "login", "anon").await.err(404);
}

#[tokio::test]
async fn a_wrong_token_is_403() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"login": "victim"})).await;

    // Act
    let r = app.call("UserGet", Some("00000000-0000-4000-8000-000000000000"), None, json!({"mode": "token", "identity": token})).await;
    let user_token_as_credential = app.call("UserGet", Some(&token), None, json!({"mode": "token", "identity": token})).await;

    // Assert
    assert_eq!(r.err(403), "access denied");
    assert_eq!(user_token_as_credential.err(403), "access denied");
}

#[tokio::test]
async fn a_tenant_xtoken_without_its_tenant_header_is_403() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("acme").await;

    // Act
    let r = app.call("UserCreate", Some(&xtoken), None, json!({"profile": {"login": "lost"}})).await;

    // Assert
    r.err(403);
    get(&app, "login", "lost").await.err(404);
    let with_header = app.call("UserCreate", Some(&xtoken), Some("acme"), json!({"profile": {"login": "lost"}})).await;
    with_header.ok();
}

#[tokio::test]
async fn an_unknown_tenant_name_is_403() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let r = app.call("UserCreate", Some(&app.root_token), Some("nosuchtenant"), json!({"profile": {"login": "nowhere"}})).await;

    // Assert
    r.err(403);
    get(&app, "login", "nowhere").await.err(404);
}

#[tokio::test]
async fn the_tenant_header_is_case_insensitive() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("acme").await;

    // Act
    let r = app.call("UserCreate", Some(&xtoken), Some("ACME"), json!({"profile": {"login": "upper"}})).await;

    // Assert
    let token = r.ok()["token"].as_str().unwrap().to_string();
    let found = app.call("UserGet", Some(&xtoken), Some("acme"), json!({"mode": "login", "identity": "upper"})).await;
    assert_eq!(found.ok()["token"], token.as_str());
}

#[tokio::test]
async fn a_duplicated_field_in_the_body_is_400_naming_the_field() {
    // Arrange
    let app = TestApp::spawn().await;
    let headers = [("content-type", "application/json"), ("x-bunker-token", app.root_token.as_str())];
    let body = br#"{"mode": "token", "mode": "login", "identity": "x"}"#;

    // Act
    let r = app.raw(reqwest::Method::POST, "/v2/UserGet", &headers, body.to_vec()).await;

    // Assert
    let msg = r.err(400);
    assert!(msg.contains("mode"), "the body is an object; the message should name `mode`: {msg}");
}

#[tokio::test]
async fn a_body_well_under_the_size_limit_is_accepted() {
    // Arrange
    let app = TestApp::spawn().await;
    let profile = json!({"login": "big", "blob": "b".repeat(1024 * 1024)});

    // Act
    let token = create(&app, profile.clone()).await;

    // Assert
    assert_eq!(profile_of(&app, &token).await, profile);
}

#[tokio::test]
async fn identical_profiles_in_different_versions_have_the_same_md5() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "a"})).await;
    for name in ["b", "a"] {
        app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": name}})).await.ok();
    }

    // Act
    let r = app.root("UserListVersions", json!({"mode": "token", "identity": token})).await;

    // Assert
    let versions = r.ok()["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0]["md5"], versions[2]["md5"]);
    assert_ne!(versions[0]["md5"], versions[1]["md5"]);
}
