//! The audit trail: one event per call, encrypted details, per-user listing, tamper evidence.

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

use crate::helpers::*;

async fn event_count(app: &TestApp, tenant: i64) -> i64 {
    let mut tx = app.db.tenant_tx(tenant).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM audit_events").fetch_one(tx.conn()).await.unwrap();
    tx.rollback().await.unwrap();
    n
}

#[tokio::test]
async fn every_call_writes_exactly_one_event_including_failures_and_denials() {
    let app = TestApp::spawn().await;
    let before = event_count(&app, 1).await;
    let token = app.create_user(&app.root_token.clone(), None, json!({"email": "one@example.com"})).await;
    assert_eq!(event_count(&app, 1).await, before + 1);
    app.root("UserGet", json!({"mode": "token", "identity": token})).await.ok();
    assert_eq!(event_count(&app, 1).await, before + 2);
    app.root("UserGet", json!({"mode": "email", "identity": "nobody@example.com"})).await.err(404);
    assert_eq!(event_count(&app, 1).await, before + 3);
    app.call("UserGet", Some("wrong-token"), None, json!({"mode": "token", "identity": token})).await.err(403);
    assert_eq!(event_count(&app, 1).await, before + 4);
    app.root("UserCreate", json!({"profile": {"email": "ONE@example.com"}})).await.err(409);
    assert_eq!(event_count(&app, 1).await, before + 5);
}

#[tokio::test]
async fn a_users_events_list_newest_first_and_open_with_their_details() {
    let app = TestApp::spawn().await;
    let token = app.create_user(&app.root_token.clone(), None, json!({"email": "ev@example.com", "name": "Ev"})).await;
    app.root("UserGet", json!({"mode": "email", "identity": "ev@example.com", "request_metadata": {"purpose": "support-ticket-7"}}))
        .await
        .ok();
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "Eve"}})).await.ok();

    let list = app.root("AuditListUserEvents", json!({"mode": "token", "identity": token, "offset": 0, "limit": 10})).await;
    let rows = list.ok()["rows"].as_array().unwrap().clone();
    let types: Vec<&str> = rows.iter().map(|r| r["eventtype"].as_str().unwrap()).collect();
    assert_eq!(types, ["UserUpdate", "UserGet", "UserCreate"]);
    assert!(rows[0]["timestamp"].as_str().unwrap().ends_with('Z'));

    let get_uuid = rows[1]["auditeventuuid"].as_str().unwrap();
    let ev = app.root("AuditGetEvent", json!({"auditeventuuid": get_uuid})).await;
    let ev = ev.ok();
    assert_eq!(ev["eventtype"], "UserGet");
    // An email is recorded only as its blind-index reference (issue 12: no personal identifier
    // in the trail an auditor reads).
    assert_eq!(ev["details"]["identity"], Value::Null);
    assert_eq!(ev["details"]["identity_index"].as_str().map(str::len), Some(64));
    assert_eq!(ev["details"]["mode"], "email");
    assert_eq!(ev["details"]["request_metadata"]["purpose"], "support-ticket-7");

    let page = app.root("AuditListUserEvents", json!({"mode": "token", "identity": token, "offset": 1, "limit": 1})).await;
    assert_eq!(page.ok()["rows"].as_array().unwrap().len(), 1);
    // Newest first: the first listing is now the newest event of this user.
    assert_eq!(page.ok()["rows"][0]["eventtype"], "UserUpdate");
    assert_eq!(page.ok()["total"], 4, "the three calls plus the first listing");
}

#[tokio::test]
async fn audit_events_are_not_readable_across_tenants_or_in_the_database() {
    let app = TestApp::spawn().await;
    let (_, x) = app.create_tenant("auditee").await;
    let token = app.create_user(&x, Some("auditee"), json!({"email": "hidden-audit@example.com"})).await;
    app.call("UserGet", Some(&x), Some("auditee"), json!({"mode": "email", "identity": "hidden-audit@example.com"})).await.ok();
    let rows = app.call("AuditListUserEvents", Some(&x), Some("auditee"), json!({"mode": "token", "identity": token})).await;
    let uuid = rows.ok()["rows"][0]["auditeventuuid"].as_str().unwrap().to_string();
    app.root("AuditGetEvent", json!({"auditeventuuid": uuid})).await.err(404);
    app.root("AuditGetEvent", json!({"auditeventuuid": ""})).await.err(400);

    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    let blobs: Vec<Vec<u8>> = sqlx::query_scalar("SELECT details FROM audit_events").fetch_all(&mut su).await.unwrap();
    assert!(blobs.len() >= 2);
    for b in blobs {
        assert!(!b.windows(12).any(|w| w == b"hidden-audit"), "audit details stored in plaintext");
    }
}

async fn verify(app: &TestApp) -> strongroom::audit::VerifyReport {
    strongroom::audit::verify(&app.db).await.unwrap()
}

/// Three users' worth of events in the main tenant; returns a superuser connection.
async fn busy_app() -> (TestApp, PgConnection) {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.create_user(&app.root_token.clone(), None, json!({"login": format!("u{i}")})).await;
    }
    let report = verify(&app).await;
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    assert!(report.events >= 3);
    let su = PgConnection::connect(&app.db_url).await.unwrap();
    (app, su)
}

#[tokio::test]
async fn verify_finds_an_edited_event() {
    let (app, mut su) = busy_app().await;
    sqlx::query("UPDATE audit_events SET event_type = 'UserDelete' WHERE tenant_id = 1 AND lane = 0 AND seq = 2")
        .execute(&mut su)
        .await
        .unwrap();
    let report = verify(&app).await;
    assert_eq!(report.broken.len(), 1);
    assert_eq!(report.broken[0].seq, 2);
    assert!(report.broken[0].reason.contains("edited"));
}

#[tokio::test]
async fn verify_finds_a_deleted_event_in_the_middle_and_at_the_end() {
    let (app, mut su) = busy_app().await;
    sqlx::query("DELETE FROM audit_events WHERE tenant_id = 1 AND lane = 0 AND seq = 2").execute(&mut su).await.unwrap();
    let report = verify(&app).await;
    assert_eq!(report.broken[0].seq, 2);
    assert!(report.broken[0].reason.contains("missing"));

    let (app, mut su) = busy_app().await;
    sqlx::query("DELETE FROM audit_events WHERE tenant_id = 1 AND lane = 0 AND seq = (SELECT max(seq) FROM audit_events WHERE tenant_id = 1 AND lane = 0)")
        .execute(&mut su)
        .await
        .unwrap();
    let report = verify(&app).await;
    assert_eq!(report.broken.len(), 1);
    assert!(report.broken[0].reason.contains("missing at the end"), "{}", report.broken[0]);
}

#[tokio::test]
async fn verify_finds_an_inserted_event() {
    let (app, mut su) = busy_app().await;
    // Shift events 2.. up by one and slip a forged copy of event 1 in as #2.
    sqlx::query("UPDATE audit_events SET seq = seq + 1000 WHERE tenant_id = 1 AND lane = 0 AND seq >= 2").execute(&mut su).await.unwrap();
    sqlx::query("UPDATE audit_events SET seq = seq - 999 WHERE tenant_id = 1 AND lane = 0 AND seq >= 1002").execute(&mut su).await.unwrap();
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, lane, seq, uuid, event_type, user_token, actor, outcome, created_at, key_version, event_key, details, prev_hash, hash)
         SELECT tenant_id, lane, 2, 'forged', event_type, user_token, actor, outcome, created_at, key_version, event_key, details, hash, hash FROM audit_events WHERE tenant_id = 1 AND lane = 0 AND seq = 1",
    )
    .execute(&mut su)
    .await
    .unwrap();
    let report = verify(&app).await;
    assert_eq!(report.broken[0].seq, 2);
    assert_eq!(report.broken[0].uuid.as_deref(), Some("forged"));
}

#[tokio::test]
async fn the_audit_verify_command_exits_non_zero_and_names_the_bad_event() {
    let (app, mut su) = busy_app().await;
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .args(["audit", "verify"])
            .env("DATABASE_URL", &app.db_url)
            .env("STRONGROOM_LOG", "error")
            .output()
            .expect("run strongroom")
    };
    let ok = run();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact"));
    let uuid: String =
        sqlx::query_scalar("SELECT uuid FROM audit_events WHERE tenant_id = 1 AND lane = 0 AND seq = 3").fetch_one(&mut su).await.unwrap();
    sqlx::query("UPDATE audit_events SET outcome = 'error:404' WHERE tenant_id = 1 AND lane = 0 AND seq = 3")
        .execute(&mut su)
        .await
        .unwrap();
    let bad = run();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("event #3") && out.contains(&uuid), "{out}");
}

#[tokio::test]
async fn forgetting_a_user_erases_the_details_of_its_events_but_keeps_them_countable() {
    let app = TestApp::spawn().await;
    let token = app.create_user(&app.root_token.clone(), None, json!({"email": "gone@example.com"})).await;
    app.root("UserGet", json!({"mode": "email", "identity": "gone@example.com"})).await.ok();
    let rows = app.root("AuditListUserEvents", json!({"mode": "token", "identity": token})).await;
    let uuid = rows.ok()["rows"][0]["auditeventuuid"].as_str().unwrap().to_string();
    let before = app.root("AuditGetEvent", json!({"auditeventuuid": uuid})).await;
    assert_eq!(before.ok()["details"]["mode"], "email");
    assert_eq!(before.ok()["erased"], false);

    app.root("UserDelete", json!({"mode": "token", "identity": token})).await.ok();
    let after = app.root("AuditGetEvent", json!({"auditeventuuid": uuid})).await;
    assert_eq!(after.ok()["eventtype"], "UserGet");
    assert_eq!(after.ok()["erased"], true);
    assert!(after.ok()["details"].is_null());
    let mut tx = app.db.tenant_tx(1).await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE user_token = $1").bind(&token).fetch_one(tx.conn()).await.unwrap();
    assert_eq!(n, 4, "create, get, list, delete: still countable");
    let report = strongroom::audit::verify(&app.db).await.unwrap();
    assert!(report.broken.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_spread_over_lanes_and_every_lane_is_verified() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.root_token.clone();
            app.create_user(&token, None, json!({"login": format!("lane-{i}")})).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    let lanes: Vec<i16> =
        sqlx::query_scalar("SELECT DISTINCT lane FROM audit_events WHERE tenant_id = 1 ORDER BY 1").fetch_all(&mut su).await.unwrap();
    assert!(lanes.len() >= 2, "24 concurrent calls all went to lanes {lanes:?}");
    let report = verify(&app).await;
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    assert!(report.events >= 24);
    // Edit an event in a lane other than 0: found, and named with its lane.
    let lane = *lanes.last().unwrap();
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE tenant_id = 1 AND lane = $1 AND seq = 1")
        .bind(lane)
        .execute(&mut su)
        .await
        .unwrap();
    let report = verify(&app).await;
    assert_eq!(report.broken.len(), 1, "{:?}", report.broken);
    assert_eq!((report.broken[0].lane, report.broken[0].seq), (lane, 1));
    assert!(report.broken[0].to_string().contains(&format!("lane {lane} event #1")));
}

/// Calls that change nothing are group-committed (`audit::batch`): concurrent reads share a
/// commit, every call still has its one event, and the chains still verify.
#[tokio::test]
async fn concurrent_reads_share_audit_commits_and_the_chains_still_verify() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let token = app.create_user(&app.root_token.clone(), None, json!({"email": "batched@example.com"})).await;
    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    let (mut calls, mut widest) = (0, 0i64);
    // Sharing depends on timing; with 32 reads in flight it happens in the first round here.
    for _ in 0..5 {
        let reads = (0..32).map(|_| {
            let app = app.clone();
            let token = token.clone();
            tokio::spawn(async move { app.root("UserGet", json!({"mode": "token", "identity": token})).await.ok().clone() })
        });
        for r in futures_util::future::join_all(reads).await {
            assert_eq!(r.unwrap()["profile"]["email"], "batched@example.com");
        }
        calls += 32;
        // Rows one transaction inserted share its xmin.
        widest = sqlx::query_scalar(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM audit_events WHERE event_type = 'UserGet' GROUP BY xmin::text) t",
        )
        .fetch_one(&mut su)
        .await
        .unwrap();
        if widest > 1 {
            break;
        }
    }
    assert!(widest > 1, "no two of {calls} concurrent reads shared an audit commit");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE event_type = 'UserGet'").fetch_one(&mut su).await.unwrap();
    assert_eq!(stored, calls);
    let report = verify(&app).await;
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}

/// A read whose event cannot be stored answers 503 without the record (no unaudited reads), and
/// leaves no gap in the chain.
#[tokio::test]
async fn a_read_whose_event_cannot_be_stored_gets_no_data() {
    let app = TestApp::spawn().await;
    let token = app.create_user(&app.root_token.clone(), None, json!({"email": "unaudited@example.com"})).await;
    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_reads() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN IF NEW.event_type = 'UserGet' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER refuse_reads BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_reads();",
    )
    .execute(&mut su)
    .await
    .unwrap();
    // With another call in flight (held here) the read's event goes to the group commit; alone,
    // into the read's own transaction. Either way the read fails and shows nothing.
    let other = app.state.audit_batch().presence(1);
    let reply = app.root("UserGet", json!({"mode": "token", "identity": token})).await;
    let message = reply.err(503);
    assert!(message.contains("audit"), "{message}");
    assert!(!reply.body.to_string().contains("unaudited@example.com"), "{}", reply.body);
    drop(other);
    let reply = app.root("UserGet", json!({"mode": "token", "identity": token})).await;
    reply.err(500);
    assert!(!reply.body.to_string().contains("unaudited@example.com"), "{}", reply.body);
    // Calls that change something still commit with their event.
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "U"}})).await.ok();

    sqlx::raw_sql("DROP TRIGGER refuse_reads ON audit_events").execute(&mut su).await.unwrap();
    assert_eq!(app.root("UserGet", json!({"mode": "token", "identity": token})).await.ok()["profile"]["name"], "U");
    let report = verify(&app).await;
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}

/// One event the database refuses does not take the others of its batch down with it: the
/// batch is retried event by event.
#[tokio::test]
async fn an_event_the_database_refuses_fails_only_its_own_read() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let refused = app.create_user(&app.root_token.clone(), None, json!({"email": "refused@example.com"})).await;
    let fine = app.create_user(&app.root_token.clone(), None, json!({"email": "fine@example.com"})).await;
    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN IF NEW.user_token = '{refused}' AND NEW.event_type = 'UserGet' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER refuse_one BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_one();"
    ))
    .execute(&mut su)
    .await
    .unwrap();
    let _other = app.state.audit_batch().presence(1);
    for _ in 0..3 {
        let reads = [(refused.clone(), 503), (fine.clone(), 200), (fine.clone(), 200)].map(|(token, want)| {
            let app = app.clone();
            tokio::spawn(async move { (app.root("UserGet", json!({"mode": "token", "identity": token})).await.code, want) })
        });
        for r in futures_util::future::join_all(reads).await {
            let (got, want) = r.unwrap();
            assert_eq!(got, want);
        }
    }
    let report = verify(&app).await;
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}
