//! BulkListUnlock: a fresh, tenant-bound unlock uuid, checked by `Call::require_unlock`.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn an_unlock_uuid_is_issued_to_admins_and_dpos_only_and_is_tenant_bound() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("bulky").await;
    let r = app.call("BulkListUnlock", Some(&admin), Some("bulky"), json!({})).await;
    let u = r.ok()["unlockuuid"].as_str().unwrap().to_string();
    assert_eq!(r.ok()["ttl"], 60);
    assert!(uuid::Uuid::parse_str(&u).is_ok());
    let reader = app.call("XTokenCreateForRole", Some(&admin), Some("bulky"), json!({"rolename": "app-reader"})).await;
    let reader = reader.ok()["xtoken"].as_str().unwrap().to_string();
    app.call("BulkListUnlock", Some(&reader), Some("bulky"), json!({})).await.err(403);
    let dpo = app.call("XTokenCreateForRole", Some(&admin), Some("bulky"), json!({"rolename": "dpo"})).await;
    let dpo = dpo.ok()["xtoken"].as_str().unwrap().to_string();
    app.call("BulkListUnlock", Some(&dpo), Some("bulky"), json!({})).await.ok();
    // Stored only as a keyed hash, and bound to its tenant.
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT uuid_hash FROM bulk_unlocks").fetch_all(&mut su).await.unwrap();
    assert!(hashes.iter().all(|h| h.len() == 32 && memchr::memmem::find(h, u.as_bytes()).is_none()));
    let mut tx = app.db.tenant_tx(1).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk_unlocks").fetch_one(tx.conn()).await.unwrap();
    assert_eq!(n, 0, "the default tenant sees none of bulky's unlocks");
}

/// An unlock is one caller's deliberate act: another credential of the same tenant cannot use
/// it, and it dies at its expiry.
#[tokio::test]
async fn an_unlock_serves_only_the_caller_that_took_it_and_only_until_it_expires() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("bulkonce").await;
    app.create_user(&admin, Some("bulkonce"), json!({"email": "one@bulk.example"})).await;
    let dpo = app.call("XTokenCreateForRole", Some(&admin), Some("bulkonce"), json!({"rolename": "dpo"})).await;
    let dpo = dpo.ok()["xtoken"].as_str().unwrap().to_string();
    let u = app.call("BulkListUnlock", Some(&admin), Some("bulkonce"), json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string();
    let body = json!({"unlockuuid": u});
    let msg = app.call("BulkListAllUsers", Some(&dpo), Some("bulkonce"), body.clone()).await.err(403);
    assert!(msg.contains("another caller"), "{msg}");
    assert_eq!(app.call("BulkListAllUsers", Some(&admin), Some("bulkonce"), body.clone()).await.ok()["total"], 1);
    // Expired (moved into the past): refused to its own taker too.
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    sqlx::query("UPDATE bulk_unlocks SET expires_at = 1").execute(&mut su).await.unwrap();
    app.call("BulkListAllUsers", Some(&admin), Some("bulkonce"), body).await.err(403);
}

/// A bulk listing's audit event says whose records left the vault (their tokens).
#[tokio::test]
async fn a_bulk_listing_is_audited_with_the_tokens_it_returned() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("bulkaudit").await;
    let call = |ep: &'static str, body: serde_json::Value| app.call(ep, Some(&admin), Some("bulkaudit"), body);
    let a = app.create_user(&admin, Some("bulkaudit"), json!({"email": "a@bulkaudit.example"})).await;
    let b = app.create_user(&admin, Some("bulkaudit"), json!({"email": "b@bulkaudit.example"})).await;
    let u = call("BulkListUnlock", json!({})).await.ok()["unlockuuid"].clone();
    assert_eq!(call("BulkListAllUsers", json!({"unlockuuid": u})).await.ok()["total"], 2);
    let events = call("BulkListAllAuditEvents", json!({"unlockuuid": u, "limit": 50})).await;
    let listing = events.ok()["rows"].as_array().unwrap().iter().find(|e| e["eventtype"] == "BulkListAllUsers").unwrap().clone();
    let event = call("AuditGetEvent", json!({"auditeventuuid": listing["auditeventuuid"]})).await;
    let mut tokens: Vec<String> =
        event.ok()["details"]["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    tokens.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(tokens, want);
}

/// Migration 0023: no bytea column (ciphertext, wrapped keys, digests) is left to PostgreSQL's
/// compression attempt, which fails on ciphertext after costing a pglz pass per large value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertext_columns_skip_compression() {
    let app = TestApp::spawn().await;
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    let compressible: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || '.' || a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.atttypid = 'bytea'::regtype
            AND a.attnum > 0 AND NOT a.attisdropped AND a.attstorage <> 'e'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(compressible.is_empty(), "bytea columns still compressed: {compressible:?}");
    let profile: String =
        sqlx::query_scalar("SELECT a.attstorage::text FROM pg_attribute a WHERE a.attrelid = 'users'::regclass AND a.attname = 'profile'")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(profile, "e");
}
