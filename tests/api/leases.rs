//! Leased role tokens through the Vault plugin endpoint, across two instances on one database.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strongroom::auth::lease;
use strongroom::keys::envelope::Key;
use strongroom::keys::keyring::Keyring;

use crate::helpers::*;

async fn post(app: &TestApp, token: &str, tenant: &str, path: &str, body: Value) -> Reply {
    app.raw(reqwest::Method::POST, path, &[("x-bunker-token", token), ("x-bunker-tenant", tenant)], serde_json::to_vec(&body).unwrap())
        .await
}

/// Instance `a` (with `max_ttl`), a second unsealed instance `b`, tenant "leasing" with a user,
/// and a vault-plugin credential. Returns (a, b, plugin token, admin token, user token).
async fn fleet(max_ttl: i64) -> (TestApp, TestApp, String, String, String) {
    let a = TestApp::spawn_configured(|c| c.lease_max_ttl_s = max_ttl).await;
    let mut b = TestApp::serve_on(a.db_url.clone()).await;
    b.root_token = a.root_token.clone();
    b.unseal(&a.shares[0]).await.ok();
    b.unseal(&a.shares[1]).await.ok();
    let (_, admin) = a.create_tenant("leasing").await;
    let plugin = post(&a, &admin, "leasing", "/v1/credentials/create", json!({"role": "vault-plugin"})).await;
    let plugin = plugin.ok()["token"].as_str().unwrap().to_string();
    let user = a.create_user(&admin, Some("leasing"), json!({"login": "leased"})).await;
    (a, b, plugin, admin, user)
}

async fn read_with(app: &TestApp, token: &str, user: &str) -> u16 {
    app.call("UserGet", Some(token), Some("leasing"), json!({"mode": "token", "identity": user})).await.code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_token_works_on_every_instance_until_revoked() {
    let (a, b, plugin, _admin, user) = fleet(3600).await;
    let creds = post(&a, &plugin, "leasing", "/v1/vault/creds", json!({"role": "app-reader", "ttl": "10m"})).await;
    let c = creds.ok().clone();
    assert_eq!(c["lease_duration"], 600);
    assert_eq!(c["renewable"], true);
    let token = c["token"].as_str().unwrap().to_string();
    assert_eq!(read_with(&a, &token, &user).await, 200);
    assert_eq!(read_with(&b, &token, &user).await, 200);
    // The lease carries app-reader's rights, no more.
    assert_eq!(a.call("UserCreate", Some(&token), Some("leasing"), json!({"profile": {"login": "no"}})).await.code, 403);
    assert_eq!(post(&a, &token, "leasing", "/v1/vault/creds", json!({"role": "app-writer"})).await.code, 403);

    post(&b, &plugin, "leasing", "/v1/vault/revoke", json!({"lease_id": c["lease_id"]})).await.ok();
    assert_eq!(read_with(&a, &token, &user).await, 403, "revoked on b, refused on a at once");
    assert_eq!(read_with(&b, &token, &user).await, 403);
    post(&a, &plugin, "leasing", "/v1/vault/revoke", json!({"lease_id": "no-such-lease"})).await.err(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_refused_on_both_instances_within_a_second() {
    let (a, b, plugin, _admin, user) = fleet(3600).await;
    // Lease clocks count whole seconds: a 3 s lease lives between 2 and 3 s.
    let c = post(&a, &plugin, "leasing", "/v1/vault/creds", json!({"role": "app-reader", "ttl": 3})).await.ok().clone();
    let token = c["token"].as_str().unwrap().to_string();
    assert_eq!(read_with(&b, &token, &user).await, 200);
    assert_eq!(read_with(&a, &token, &user).await, 200);
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&a.db_url).await.unwrap();
    let (expires_at, _) = lease_expiry(&mut su, c["lease_id"].as_str().unwrap()).await;
    // Whatever the load, no request that starts a second or more after the expiry may pass, on
    // either instance; poll until both refuse.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let started = strongroom::store::now_secs();
        let (ra, rb) = (read_with(&a, &token, &user).await, read_with(&b, &token, &user).await);
        if started > expires_at {
            assert_eq!((ra, rb), (403, 403), "accepted a request begun at {started}, after its expiry at {expires_at}");
        }
        if ra == 403 && rb == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "still accepted at {} (expiry {expires_at})", strongroom::store::now_secs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    post(&a, &plugin, "leasing", "/v1/vault/renew", json!({"lease_id": c["lease_id"]})).await.err(400);
}

#[tokio::test]
async fn renewal_never_passes_the_maximum_ttl() {
    let (a, _b, plugin, _admin, user) = fleet(5).await;
    let c = post(&a, &plugin, "leasing", "/v1/vault/creds", json!({"role": "app-reader", "ttl": 600})).await.ok().clone();
    assert_eq!(c["lease_duration"], 5, "capped at the maximum TTL");
    let r = post(&a, &plugin, "leasing", "/v1/vault/renew", json!({"lease_id": c["lease_id"], "increment": 3600})).await;
    assert!(r.ok()["lease_duration"].as_i64().unwrap() <= 5);
    assert_eq!(r.ok()["renewable"], false);
    assert_eq!(read_with(&a, c["token"].as_str().unwrap(), &user).await, 200);
}

#[tokio::test]
async fn forged_re_signed_or_foreign_tokens_are_refused() {
    let (a, _b, plugin, admin, user) = fleet(3600).await;
    let c = post(&a, &plugin, "leasing", "/v1/vault/creds", json!({"role": "app-reader"})).await.ok().clone();
    let token = c["token"].as_str().unwrap().to_string();
    let lease_id = c["lease_id"].as_str().unwrap();
    let now = strongroom::store::now_secs();
    // Same claims, signed with another key.
    let other = Keyring::new(Key::random());
    let resigned = lease::sign(&other, &lease::claims(lease_id, 2, "leasing", "app-writer", now, now + 600));
    assert_eq!(read_with(&a, &resigned, &user).await, 403);
    // Payload swapped (role escalated), original signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let other_parts: Vec<String> = resigned.split('.').map(str::to_string).collect();
    assert_eq!(read_with(&a, &format!("{}.{}.{}", parts[0], other_parts[1], parts[2]), &user).await, 403);
    // Used in another tenant.
    let (_, _other_admin) = a.create_tenant("elsewhere").await;
    let foreign = a.call("UserGet", Some(&token), Some("elsewhere"), json!({"mode": "token", "identity": user})).await;
    foreign.err(403);
    // Only the vault-plugin role mints, and only working roles can be leased.
    post(&a, &admin, "leasing", "/v1/vault/creds", json!({"role": "app-reader"})).await.err(403);
    post(&a, &plugin, "leasing", "/v1/vault/creds", json!({"role": "tenant-admin"})).await.err(400);
    post(&a, &plugin, "leasing", "/v1/vault/creds", json!({"role": "app-reader", "ttl": "soon"})).await.err(400);
    assert_eq!(read_with(&a, &token, &user).await, 200, "the genuine token still works");
}

#[tokio::test]
async fn a_role_xtoken_carries_its_role_for_its_lifetime() {
    let (a, _b, _plugin, admin, user) = fleet(3600).await;
    let r = a.call("XTokenCreateForRole", Some(&admin), Some("leasing"), json!({"rolename": "app-reader", "finaltime": "5min"})).await;
    assert_eq!(r.ok()["ttl"], 300);
    let x = r.ok()["xtoken"].as_str().unwrap().to_string();
    assert_eq!(read_with(&a, &x, &user).await, 200);
    a.call("UserCreate", Some(&x), Some("leasing"), json!({"profile": {"login": "nope"}})).await.err(403);
    a.call("XTokenCreateForRole", Some(&admin), Some("leasing"), json!({"roleid": 3})).await.err(404);
    a.call("XTokenCreateForRole", Some(&admin), Some("leasing"), json!({"rolename": "app-reader", "slidingtime": "2000000000"}))
        .await
        .err(400);
    a.call("XTokenCreateForRole", Some(&admin), Some("leasing"), json!({"rolename": "app-reader", "slidingtime": "soon"})).await.err(400);
    a.call("XTokenCreateForRole", Some(&admin), Some("leasing"), json!({})).await.err(400);
    a.call("XTokenCreateForRole", Some(&admin), Some("leasing"), json!({"rolename": "root"})).await.err(400);
    a.call("XTokenCreateForRole", Some(&x), Some("leasing"), json!({"rolename": "app-writer"})).await.err(403);
}

#[tokio::test]
async fn a_user_xtoken_reaches_only_its_own_record_and_cannot_change_it_directly() {
    let (a, _b, _plugin, admin, _user) = fleet(3600).await;
    let me = a.create_user(&admin, Some("leasing"), json!({"email": "me@example.com", "name": "Me"})).await;
    let other = a.create_user(&admin, Some("leasing"), json!({"email": "other@example.com"})).await;
    let r = a.call("XTokenCreateForUser", Some(&admin), Some("leasing"), json!({"mode": "email", "identity": "me@example.com"})).await;
    let x = r.ok()["xtoken"].as_str().unwrap().to_string();
    assert_eq!(r.ok()["ttl"], 600, "10-minute default");
    let mine = a.call("UserGet", Some(&x), Some("leasing"), json!({"mode": "email", "identity": "me@example.com"})).await;
    assert_eq!(mine.ok()["token"], me.as_str());
    a.call("AuditListUserEvents", Some(&x), Some("leasing"), json!({"mode": "token", "identity": me})).await.ok();
    for (mode, identity) in [("token", other.as_str()), ("email", "other@example.com")] {
        a.call("UserGet", Some(&x), Some("leasing"), json!({"mode": mode, "identity": identity})).await.err(404);
    }
    a.call("UserUpdate", Some(&x), Some("leasing"), json!({"mode": "token", "identity": me, "profile": {"name": "X"}})).await.err(403);
    a.call("UserDelete", Some(&x), Some("leasing"), json!({"mode": "token", "identity": me})).await.err(403);
    a.call("XTokenCreateForUser", Some(&x), Some("leasing"), json!({"mode": "token", "identity": other})).await.err(403);
    a.call("XTokenCreateForUser", Some(&admin), Some("leasing"), json!({"mode": "email", "identity": "ghost@example.com"})).await.err(404);
    let still = a.call("UserGet", Some(&admin), Some("leasing"), json!({"mode": "token", "identity": me})).await;
    assert_eq!(still.ok()["profile"]["name"], "Me");
}

async fn lease_expiry(su: &mut sqlx::PgConnection, id: &str) -> (i64, i64) {
    sqlx::query_as("SELECT expires_at, max_expires_at FROM leases WHERE lease_id = $1").bind(id).fetch_one(su).await.unwrap()
}

#[tokio::test]
async fn a_sliding_xtoken_lives_on_while_used_and_never_past_its_final_time() {
    let (a, _b, _plugin, admin, user) = fleet(3600).await;
    let r = a
        .call(
            "XTokenCreateForRole",
            Some(&admin),
            Some("leasing"),
            json!({"rolename": "app-reader", "slidingtime": "5min", "finaltime": "1h"}),
        )
        .await;
    let x = r.ok()["xtoken"].as_str().unwrap().to_string();
    let lease_id = r.ok()["lease_id"].as_str().unwrap().to_string();
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&a.db_url).await.unwrap();
    let now = strongroom::store::now_secs();
    let (e0, cap) = lease_expiry(&mut su, &lease_id).await;
    assert!(e0 <= now + 300 && cap >= now + 3590, "idle timeout first, final time as the cap: {e0} {cap}");
    // Nearly idle for its whole period: one use moves it out again.
    sqlx::query("UPDATE leases SET expires_at = $2 WHERE lease_id = $1").bind(&lease_id).bind(now + 2).execute(&mut su).await.unwrap();
    assert_eq!(read_with(&a, &x, &user).await, 200);
    let (e1, _) = lease_expiry(&mut su, &lease_id).await;
    assert!(e1 >= now + 299, "a use extends the idle timeout: {e1}");
    // Never past the final time.
    sqlx::query("UPDATE leases SET max_expires_at = $2, expires_at = $2 WHERE lease_id = $1")
        .bind(&lease_id)
        .bind(now + 60)
        .execute(&mut su)
        .await
        .unwrap();
    assert_eq!(read_with(&a, &x, &user).await, 200);
    assert_eq!(lease_expiry(&mut su, &lease_id).await.0, now + 60);
    // Idle past its timeout: refused.
    sqlx::query("UPDATE leases SET expires_at = $2 WHERE lease_id = $1").bind(&lease_id).bind(now - 1).execute(&mut su).await.unwrap();
    assert_eq!(read_with(&a, &x, &user).await, 403);
}

/// A new credential of tenant "leasing": (token, id).
async fn mint(app: &TestApp, by: &str, role: &str) -> (String, i64) {
    let c = post(app, by, "leasing", "/v1/credentials/create", json!({"role": role})).await.ok().clone();
    (c["token"].as_str().unwrap().to_string(), c["credentialid"].as_i64().unwrap())
}

/// Instances remember the credentials they verified (`auth::Verified`), and a change to any
/// credential row bumps its tenant's credential version, which every call reads as it enters
/// its tenant: a revocation through either instance, its cascade to what the credential
/// minted, and a revocation made by hand in the database all reach both instances at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_credential_is_refused_at_once_by_every_instance_that_remembered_it() {
    let (a, b, _plugin, admin, user) = fleet(3600).await;
    let (manager, manager_id) = mint(&a, &admin, "tenant-admin").await;
    let (reader, _) = mint(&b, &manager, "app-reader").await;
    for app in [&a, &b] {
        assert_eq!(read_with(app, &reader, &user).await, 200);
        assert_eq!(read_with(app, &manager, &user).await, 200);
    }
    post(&a, &admin, "leasing", "/v1/credentials/revoke", json!({"credentialid": manager_id})).await.ok();
    for app in [&a, &b] {
        assert_eq!(read_with(app, &manager, &user).await, 403, "the revoked credential");
        assert_eq!(read_with(app, &reader, &user).await, 403, "a credential it minted");
    }

    // By hand, as a DBA would: both instances remembered the credential, and both refuse it.
    let (by_hand, by_hand_id) = mint(&a, &admin, "app-reader").await;
    for app in [&a, &b] {
        assert_eq!(read_with(app, &by_hand, &user).await, 200);
    }
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&a.db_url).await.unwrap();
    let revoke = "UPDATE credentials SET revoked_at = 1 WHERE id = $1";
    // Without the version bump, the instances would keep accepting what they remember: the
    // remembering is real, and the trigger is what makes it safe.
    // A failover seen anywhere in this process (another test's) rightly makes every instance
    // here forget what it remembered, and then this read is refused for that reason: the step
    // counts only when the failover epoch stood still across it.
    for attempt in 1.. {
        let epoch = strongroom::store::failover::epoch();
        assert_eq!(read_with(&a, &by_hand, &user).await, 200);
        sqlx::raw_sql("ALTER TABLE credentials DISABLE TRIGGER credentials_changed").execute(&mut su).await.unwrap();
        sqlx::query(revoke).bind(by_hand_id).execute(&mut su).await.unwrap();
        let remembered = read_with(&a, &by_hand, &user).await;
        sqlx::query("UPDATE credentials SET revoked_at = NULL WHERE id = $1").bind(by_hand_id).execute(&mut su).await.unwrap();
        sqlx::raw_sql("ALTER TABLE credentials ENABLE TRIGGER credentials_changed").execute(&mut su).await.unwrap();
        if strongroom::store::failover::epoch() == epoch {
            assert_eq!(remembered, 200, "remembered while no version was bumped");
            break;
        }
        assert!(attempt < 20, "the failover epoch never stood still");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sqlx::query(revoke).bind(by_hand_id).execute(&mut su).await.unwrap();
    for app in [&a, &b] {
        assert_eq!(read_with(app, &by_hand, &user).await, 403, "revoked by hand");
    }
}

/// A revocation and the revocation of something it cascades to, at once: they queue on the
/// tenant row (taken first), so neither fails with a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_revocations_along_one_lineage_do_not_deadlock() {
    let (a, b, _plugin, admin, _user) = fleet(3600).await;
    for _ in 0..4 {
        let (parent, parent_id) = mint(&a, &admin, "tenant-admin").await;
        let mut ids = vec![parent_id];
        for _ in 0..4 {
            ids.push(mint(&a, &parent, "app-reader").await.1);
        }
        let revokes = ids.iter().enumerate().map(|(i, id)| {
            let app = if i % 2 == 0 { &a } else { &b };
            post(app, &admin, "leasing", "/v1/credentials/revoke", json!({"credentialid": id}))
        });
        for r in futures_util::future::join_all(revokes).await {
            // 404: already revoked by the parent's cascade.
            assert!(r.code == 200 || r.code == 404, "{} {}", r.code, r.body);
        }
    }
}
