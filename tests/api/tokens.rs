//! Format-preserving tokenization: card and email tokens that keep the original's format, unique
//! tokens, expiry, bulk create (atomic), bulk list/delete behind an unlock uuid, tenant
//! isolation, role gates, and no original readable at rest.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const CARD: &str = "4111 1111-1111 1111";
const CARD_DIGITS: &str = "4111111111111111";
const EMAIL: &str = "ada.tokenmarker@example.com";

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

async fn superuser(app: &TestApp) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&app.db_url).await.unwrap()
}

/// TokenCreate as root in the main tenant; returns (tokenbase, tokenuuid).
async fn create(app: &TestApp, body: Value) -> (String, String) {
    let r = app.root("TokenCreate", body).await;
    let b = r.ok();
    (b["tokenbase"].as_str().unwrap().to_string(), b["tokenuuid"].as_str().unwrap().to_string())
}

async fn role_token(app: &TestApp, admin: &str, tenant: &str, role: &str) -> String {
    let r = app.call("XTokenCreateForRole", Some(admin), Some(tenant), json!({"rolename": role})).await;
    r.ok()["xtoken"].as_str().unwrap().to_string()
}

async fn unlock(app: &TestApp, token: &str, tenant: Option<&str>) -> String {
    let r = app.call("BulkListUnlock", Some(token), tenant, json!({})).await;
    r.ok()["unlockuuid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn card_and_email_tokens_keep_their_format_and_round_trip() {
    let app = TestApp::spawn().await;
    let (card_token, card_uuid) = create(&app, json!({"tokentype": "creditcard", "record": CARD})).await;
    assert_eq!(card_token.len(), 16, "{card_token}");
    assert!(card_token.bytes().all(|b| b.is_ascii_digit()), "{card_token}");
    assert!(luhn_valid(&card_token), "{card_token}");
    assert_ne!(card_token, CARD_DIGITS);
    assert!(card_token.starts_with('4'), "keeps the first digit: {card_token}");
    assert!(uuid::Uuid::parse_str(&card_uuid).is_ok());

    for by in [&card_token, &card_uuid] {
        let got = app.root("TokenGet", json!({"token": by})).await;
        let b = got.ok();
        assert_eq!(b["record"], CARD_DIGITS);
        assert_eq!(b["tokentype"], "creditcard");
        assert_eq!(b["tokenuuid"], card_uuid.as_str());
    }

    let (email_token, email_uuid) = create(&app, json!({"tokentype": "email", "record": EMAIL})).await;
    let (local, domain) = email_token.split_once('@').expect("an email token has an @");
    assert!(!local.is_empty() && domain.contains('.'), "{email_token}");
    assert_ne!(email_token, EMAIL);
    let got = app.root("TokenGet", json!({"token": email_token})).await;
    assert_eq!(got.ok()["record"], EMAIL);
    assert_eq!(got.ok()["tokentype"], "email");
    assert_eq!(got.ok()["tokenuuid"], email_uuid.as_str());

    app.root("TokenGet", json!({"token": "4000000000000002"})).await.err(404);
    app.root("TokenGet", json!({"token": uuid::Uuid::new_v4().to_string()})).await.err(404);
    app.root("TokenGet", json!({"token": " "})).await.err(400);
}

#[tokio::test]
async fn unique_tokens_repeat_and_others_do_not() {
    let app = TestApp::spawn().await;
    let unique = json!({"tokentype": "creditcard", "record": CARD, "unique": true});
    let a = create(&app, unique.clone()).await;
    let b = create(&app, json!({"tokentype": "creditcard", "record": CARD_DIGITS, "unique": true})).await;
    assert_eq!(a, b, "the same card (after normalization) gets the same unique token");
    let c = create(&app, json!({"tokentype": "creditcard", "record": CARD})).await;
    let d = create(&app, json!({"tokentype": "creditcard", "record": CARD})).await;
    assert_ne!(c.0, d.0);
    assert_ne!(c.0, a.0);

    let e1 = create(&app, json!({"tokentype": "email", "record": EMAIL, "unique": true})).await;
    let e2 = create(&app, json!({"tokentype": "email", "record": EMAIL.to_uppercase(), "unique": true})).await;
    assert_eq!(e1, e2);
    let e3 = create(&app, json!({"tokentype": "email", "record": EMAIL})).await;
    assert_ne!(e1.0, e3.0);
}

#[tokio::test]
async fn bad_records_and_token_types_are_400() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"tokentype": "creditcard", "record": "4111111111111112"}),
        json!({"tokentype": "creditcard", "record": "41111"}),
        json!({"tokentype": "creditcard", "record": "4111x11111111111"}),
        json!({"tokentype": "email", "record": "not-an-email"}),
        json!({"tokentype": "email", "record": "ada@localhost"}),
        json!({"tokentype": "ssn", "record": "123-45-6789"}),
        json!({"record": CARD}),
        json!({"tokentype": "creditcard"}),
        json!({"tokentype": "creditcard", "record": CARD, "finaltime": "5x"}),
    ] {
        let msg = app.root("TokenCreate", body.clone()).await.err(400);
        assert!(!msg.contains("4111") && !msg.contains("123-45"), "the message echoes the record: {msg}");
    }
    let mut su = superuser(&app).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tokens").fetch_one(&mut su).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn deleted_and_expired_tokens_are_gone() {
    let app = TestApp::spawn().await;
    let (token, uuid) = create(&app, json!({"tokentype": "creditcard", "record": CARD})).await;
    app.root("TokenDelete", json!({"token": token})).await.ok();
    app.root("TokenGet", json!({"token": token})).await.err(404);
    app.root("TokenGet", json!({"token": uuid})).await.err(404);
    app.root("TokenDelete", json!({"token": uuid})).await.err(404);

    // Expired by SQL: not returned, even before any sweeper deletes it.
    let (token, uuid) = create(&app, json!({"tokentype": "email", "record": EMAIL, "finaltime": "1h"})).await;
    app.root("TokenGet", json!({"token": token})).await.ok();
    let mut su = superuser(&app).await;
    sqlx::query("UPDATE tokens SET expires_at = 1 WHERE uuid = $1").bind(&uuid).execute(&mut su).await.unwrap();
    app.root("TokenGet", json!({"token": token})).await.err(404);
    app.root("TokenGet", json!({"token": uuid})).await.err(404);
    // A unique token whose predecessor expired is minted anew.
    let (u1, _) = create(&app, json!({"tokentype": "email", "record": EMAIL, "unique": true, "finaltime": "1h"})).await;
    sqlx::query("UPDATE tokens SET expires_at = 1 WHERE record_hash IS NOT NULL").execute(&mut su).await.unwrap();
    let (u2, _) = create(&app, json!({"tokentype": "email", "record": EMAIL, "unique": true})).await;
    assert_ne!(u1, u2);
    app.root("TokenGet", json!({"token": u2})).await.ok();

    // A 1-second final time runs out on its own (polled with a deadline).
    let (token, _) = create(&app, json!({"tokentype": "creditcard", "record": CARD, "finaltime": "1s"})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.root("TokenGet", json!({"token": token})).await;
        if r.code == 404 {
            break;
        }
        r.ok();
        assert!(Instant::now() < deadline, "token still readable after its final time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sliding_time_extends_on_get_up_to_final_time() {
    let app = TestApp::spawn().await;
    let (token, uuid) = create(&app, json!({"tokentype": "creditcard", "record": CARD, "slidingtime": "10min", "finaltime": "1h"})).await;
    let mut su = superuser(&app).await;
    sqlx::query("UPDATE tokens SET expires_at = expires_at - 300 WHERE uuid = $1").bind(&uuid).execute(&mut su).await.unwrap();
    let before: i64 = sqlx::query_scalar("SELECT expires_at FROM tokens WHERE uuid = $1").bind(&uuid).fetch_one(&mut su).await.unwrap();
    app.root("TokenGet", json!({"token": token})).await.ok();
    let (after, final_at): (i64, i64) =
        sqlx::query_as("SELECT expires_at, final_at FROM tokens WHERE uuid = $1").bind(&uuid).fetch_one(&mut su).await.unwrap();
    assert!(after >= before + 299, "{before} -> {after}");
    assert!(after <= final_at);
    app.root("TokenCreate", json!({"tokentype": "creditcard", "record": CARD, "slidingtime": "2000000000"})).await.err(400);
}

#[tokio::test]
async fn bulk_create_is_atomic() {
    let app = TestApp::spawn().await;
    let r = app
        .root(
            "TokenCreateBulk",
            json!({"records": [
                {"tokentype": "creditcard", "record": CARD},
                {"tokentype": "email", "record": EMAIL},
                {"tokentype": "creditcard", "record": CARD},
            ], "unique": true}),
        )
        .await;
    let b = r.ok().clone();
    // The repeated record answers its existing token: a duplicate, not a new token.
    assert_eq!(b["summary"], json!({"total": 3, "created": 2, "duplicates": 1, "errors": 0}));
    assert_eq!(b["num"], 3);
    let created = b["created"].as_array().unwrap();
    assert_eq!(created.len(), 3);
    assert_eq!(created[0]["record"], CARD_DIGITS);
    assert_eq!(created[1]["record"], EMAIL);
    assert_eq!(created[0]["tokenbase"], created[2]["tokenbase"], "unique within one batch too");
    for c in created {
        let got = app.root("TokenGet", json!({"token": c["tokenbase"]})).await;
        assert_eq!(got.ok()["record"], c["record"]);
        assert_eq!(got.ok()["tokenuuid"], c["tokenuuid"]);
    }

    let mut su = superuser(&app).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM tokens").fetch_one(&mut su).await.unwrap();
    let msg = app
        .root(
            "TokenCreateBulk",
            json!({"records": [
                {"tokentype": "creditcard", "record": "5500005555555559"},
                {"tokentype": "creditcard", "record": "5500005555555550"},
            ]}),
        )
        .await
        .err(400);
    assert!(msg.contains("records[1]"), "{msg}");
    let msg = app
        .root("TokenCreateBulk", json!({"records": [{"tokentype": "email", "record": EMAIL}, {"tokentype": "x", "record": "y"}]}))
        .await
        .err(400);
    assert!(msg.contains("records[1]"), "{msg}");
    app.root("TokenCreateBulk", json!({"records": []})).await.err(400);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM tokens").fetch_one(&mut su).await.unwrap();
    assert_eq!(before, after, "a refused batch stores nothing");
}

#[tokio::test]
async fn bulk_list_and_delete_need_a_live_unlock_of_the_same_tenant() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("tokbulk").await;
    let t = Some("tokbulk");
    let mut made = Vec::new();
    for record in [CARD, "5500 0055 5555 5559"] {
        let r = app.call("TokenCreate", Some(&admin), t, json!({"tokentype": "creditcard", "record": record})).await;
        made.push((r.ok()["tokenbase"].as_str().unwrap().to_string(), r.ok()["tokenuuid"].as_str().unwrap().to_string()));
    }
    let names = json!([made[0].0, made[1].1, "4000000000000002"]);

    // No unlock, a forged one, and one of another tenant are all refused.
    app.call("BulkListTokens", Some(&admin), t, json!({"tokens": names})).await.err(400);
    app.call("BulkListTokens", Some(&admin), t, json!({"unlockuuid": uuid::Uuid::new_v4().to_string(), "tokens": names})).await.err(403);
    let foreign = unlock(&app, &app.root_token, None).await;
    app.call("BulkListTokens", Some(&admin), t, json!({"unlockuuid": foreign, "tokens": names})).await.err(403);
    app.call("BulkDeleteTokens", Some(&admin), t, json!({"unlockuuid": foreign, "tokens": names})).await.err(403);
    app.call("BulkDeleteTokens", Some(&admin), t, json!({"unlockuuid": uuid::Uuid::new_v4().to_string(), "tokens": names})).await.err(403);

    // Apps may not list tokens in bulk, even with an unlock.
    let u = unlock(&app, &admin, t).await;
    let writer = role_token(&app, &admin, "tokbulk", "app-writer").await;
    app.call("BulkListTokens", Some(&writer), t, json!({"unlockuuid": u, "tokens": names})).await.err(403);

    let r = app.call("BulkListTokens", Some(&admin), t, json!({"unlockuuid": u, "tokens": names})).await;
    let rows = r.ok()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    let mut records: Vec<&str> = rows.iter().map(|r| r["record"].as_str().unwrap()).collect();
    records.sort();
    assert_eq!(records, ["4111111111111111", "5500005555555559"]);
    for row in &rows {
        assert_eq!(row["tokentype"], "creditcard");
        assert!(made.iter().any(|(b, u)| row["tokenbase"] == b.as_str() && row["tokenuuid"] == u.as_str()), "{row}");
    }
    // The default tenant's admin (root) does not see them, even with its own unlock.
    let r = app.root("BulkListTokens", json!({"unlockuuid": foreign, "tokens": names})).await;
    assert_eq!(r.ok()["rows"].as_array().unwrap().len(), 0);

    let r = app.call("BulkDeleteTokens", Some(&admin), t, json!({"unlockuuid": u, "tokens": [made[0].1]})).await;
    assert_eq!(r.ok()["deleted"], 1);
    app.call("TokenGet", Some(&admin), t, json!({"token": made[0].0})).await.err(404);
    app.call("TokenGet", Some(&admin), t, json!({"token": made[1].0})).await.ok();
    let r = app.call("BulkDeleteTokens", Some(&admin), t, json!({"unlockuuid": u, "tokens": names})).await;
    assert_eq!(r.ok()["deleted"], 1);
    app.call("TokenGet", Some(&admin), t, json!({"token": made[1].1})).await.err(404);
}

#[tokio::test]
async fn tokens_are_tenant_bound_and_role_gated() {
    let app = TestApp::spawn().await;
    let (_, admin_a) = app.create_tenant("toka").await;
    let (_, admin_b) = app.create_tenant("tokb").await;
    let r = app.call("TokenCreate", Some(&admin_a), Some("toka"), json!({"tokentype": "email", "record": EMAIL, "unique": true})).await;
    let (token, uuid) = (r.ok()["tokenbase"].as_str().unwrap().to_string(), r.ok()["tokenuuid"].as_str().unwrap().to_string());
    app.call("TokenGet", Some(&admin_b), Some("tokb"), json!({"token": token})).await.err(404);
    app.call("TokenGet", Some(&admin_b), Some("tokb"), json!({"token": uuid})).await.err(404);
    app.call("TokenDelete", Some(&admin_b), Some("tokb"), json!({"token": uuid})).await.err(404);
    // The same record, unique, in another tenant gets its own token.
    let r = app.call("TokenCreate", Some(&admin_b), Some("tokb"), json!({"tokentype": "email", "record": EMAIL, "unique": true})).await;
    assert_ne!(r.ok()["tokenbase"], token.as_str());

    let reader = role_token(&app, &admin_a, "toka", "app-reader").await;
    let got = app.call("TokenGet", Some(&reader), Some("toka"), json!({"token": token})).await;
    assert_eq!(got.ok()["record"], EMAIL);
    app.call("TokenCreate", Some(&reader), Some("toka"), json!({"tokentype": "email", "record": EMAIL})).await.err(403);
    app.call("TokenDelete", Some(&reader), Some("toka"), json!({"token": token})).await.err(403);
    let writer = role_token(&app, &admin_a, "toka", "app-writer").await;
    app.call("TokenCreate", Some(&writer), Some("toka"), json!({"tokentype": "creditcard", "record": CARD})).await.ok();
    app.call("TokenCreate", None, Some("toka"), json!({"tokentype": "creditcard", "record": CARD})).await.err(403);
}

#[tokio::test]
async fn originals_are_not_readable_at_rest_nor_in_the_audit_trail() {
    let app = TestApp::spawn().await;
    let (card_token, _) = create(&app, json!({"tokentype": "creditcard", "record": CARD, "unique": true})).await;
    let (email_token, _) = create(&app, json!({"tokentype": "email", "record": EMAIL})).await;
    app.root("TokenGet", json!({"token": card_token})).await.ok();
    app.root("TokenCreateBulk", json!({"records": [{"tokentype": "creditcard", "record": CARD}]})).await.ok();

    let mut su = superuser(&app).await;
    type Stored = (String, Vec<u8>, Option<Vec<u8>>, Vec<u8>, Vec<u8>);
    let rows: Vec<Stored> =
        sqlx::query_as("SELECT uuid, token_hash, record_hash, record, tokenbase FROM tokens").fetch_all(&mut su).await.unwrap();
    assert_eq!(rows.len(), 3);
    let secrets = [CARD_DIGITS, "4111", EMAIL, "tokenmarker", card_token.as_str(), email_token.as_str()];
    for (uuid, th, rh, rec, base) in &rows {
        for blob in [th, rec, base].into_iter().chain(rh.iter()) {
            for s in secrets {
                assert!(memchr::memmem::find(blob, s.as_bytes()).is_none(), "{s} readable at rest in token {uuid}");
            }
        }
    }
    // The decrypted audit details name the token uuid and type, never the record or token.
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT uuid, event_type FROM audit_events WHERE event_type LIKE 'Token%' ORDER BY seq")
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert_eq!(events.len(), 4);
    for (id, kind) in &events {
        let r = app.root("AuditGetEvent", json!({"auditeventuuid": id})).await;
        let details = r.ok()["details"].to_string();
        for s in secrets {
            assert!(!details.contains(s), "{s} in the details of {kind}: {details}");
        }
        if kind != "TokenCreateBulk" {
            assert!(details.contains("tokenuuid") && details.contains("tokentype"), "{kind}: {details}");
        }
    }
    // Nor anywhere in the audit table (details are encrypted; check every column's bytes).
    let dump: Vec<String> = sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_events a").fetch_all(&mut su).await.unwrap();
    assert!(!dump.is_empty());
    // (bytea columns appear as hex here, so short digit runs are left out of this check.)
    for row in dump {
        for s in [CARD_DIGITS, EMAIL, "tokenmarker", card_token.as_str(), email_token.as_str()] {
            assert!(!row.contains(s), "{s} in the audit trail");
        }
    }
}

/// Asking again for a unique token (or uploading the same file again) with a shorter life
/// shortens the existing one: it never outlives what the latest caller asked for.
#[tokio::test]
async fn a_repeated_unique_token_or_file_takes_the_shorter_life() {
    let app = TestApp::spawn().await;
    let first = app.root("TokenCreate", json!({"tokentype": "email", "record": "keep@example.com", "unique": true})).await;
    let uuid = first.ok()["tokenuuid"].as_str().unwrap().to_string();
    let again =
        app.root("TokenCreate", json!({"tokentype": "email", "record": "keep@example.com", "unique": true, "finaltime": "1h"})).await;
    assert_eq!(again.ok()["tokenuuid"], uuid.as_str());
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (final_at, expires): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT final_at, expires_at FROM tokens WHERE uuid = $1").bind(&uuid).fetch_one(&mut su).await.unwrap();
    assert!(final_at.is_some_and(|f| f <= now + 3600 + 5) && expires.is_some_and(|e| e <= now + 3600 + 5), "{final_at:?} {expires:?}");
    // A longer life asked later does not extend it.
    app.root("TokenCreate", json!({"tokentype": "email", "record": "keep@example.com", "unique": true, "finaltime": "30d"})).await.ok();
    let (final_again,): (Option<i64>,) =
        sqlx::query_as("SELECT final_at FROM tokens WHERE uuid = $1").bind(&uuid).fetch_one(&mut su).await.unwrap();
    assert_eq!(final_again, final_at);

    let user = app.create_user(&app.root_token, None, json!({"login": "filer"})).await;
    let file = |extra: serde_json::Value| {
        let mut b = json!({"mode": "token", "identity": user, "filename": "a.txt", "filedata": "aGVsbG8"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let f = app.root("FileCreate", file(json!({}))).await.ok()["fileuuid"].as_str().unwrap().to_string();
    let dup = app.root("FileCreate", file(json!({"finaltime": "1h"}))).await;
    assert_eq!((dup.ok()["fileuuid"].as_str(), dup.ok()["duplicate"].as_bool()), (Some(f.as_str()), Some(true)));
    let (expires,): (Option<i64>,) =
        sqlx::query_as("SELECT expires_at FROM files WHERE uuid = $1").bind(&f).fetch_one(&mut su).await.unwrap();
    assert!(expires.is_some_and(|e| e <= now + 3600 + 5), "{expires:?}");
}
