//! Riding out a failover: a multi-host `DATABASE_URL` finds the writable node past a dead host
//! and a read-only one; a database that turns read-only under the pool (what a planned
//! failover does to the old primary) is 503 with `Retry-After`, never 500, and readiness is
//! false; when a writable database is back, writes succeed again by themselves.
//!
//! A real pair, where the writer moves to another node with the data, is `auto_failover`.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::*;

/// The database name and `user:password` of a test database URL.
fn parts(url: &str) -> (String, String) {
    let u = reqwest::Url::parse(url).unwrap();
    (u.path().trim_start_matches('/').to_string(), format!("{}:{}", u.username(), u.password().unwrap()))
}

async fn admin() -> PgConnection {
    PgConnection::connect(&cluster().pg.url("postgres")).await.unwrap()
}

/// Another cluster with the same login and an empty database `db` (`read_only`: like a standby).
async fn second_node(db: &str, login: &str, read_only: bool) -> strongroom::localpg::LocalPg {
    let dir = temp_dir("second-node");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let node = strongroom::localpg::LocalPg::start(&dir).expect("start a second node");
    node.remove_when_process_exits(std::process::id(), &dir).unwrap();
    let mut c = PgConnection::connect(&node.url("postgres")).await.unwrap();
    let (user, password) = login.split_once(':').unwrap();
    c.execute(format!("ALTER ROLE {user} PASSWORD '{password}'").as_str()).await.unwrap();
    c.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
    if read_only {
        c.execute(format!("ALTER DATABASE {db} SET default_transaction_read_only = on").as_str()).await.unwrap();
    }
    c.close().await.unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_writer_died_is_opened_on_the_new_writer_not_refused() {
    // Two writable nodes: the pool starts on the first; the first dies.
    let url = fresh_database().await;
    let (db, login) = parts(&url);
    let first = second_node(&db, &login, false).await;
    let first_url = format!("postgres://{login}@127.0.0.1:{}/{db}", first.port());
    strongroom::store::Db::connect(&first_url, 2).await.unwrap().migrate().await.unwrap();
    let multi = format!("postgres://{login}@127.0.0.1:{},127.0.0.1:{}/{db}", first.port(), cluster().pg.port());
    let store = strongroom::store::Db::connect(&multi, 2).await.unwrap();
    let on_first: i32 =
        sqlx::query_scalar("SELECT inet_server_port()").fetch_one(&mut *store.tenant_tx(1).await.unwrap().conn()).await.unwrap();
    assert_eq!(on_first as u16, first.port());
    first.stop().unwrap();
    // Nothing ran yet when the opening statement failed, so it is retried on the writable node
    // at once: the caller gets a transaction, not a 503.
    let mut tx = store.tenant_tx(1).await.expect("opened on the node still standing");
    let port: i32 = sqlx::query_scalar("SELECT inet_server_port()").fetch_one(&mut *tx.conn()).await.unwrap();
    assert_eq!(port as u16, cluster().pg.port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_host_url_skips_a_dead_host_and_a_read_only_node() {
    let url = fresh_database().await;
    let (db, login) = parts(&url);
    // A second node with the same login and database, read-only like a standby.
    let standby = second_node(&db, &login, true).await;

    let dead = free_port();
    let multi = format!(
        "postgres://{login}@127.0.0.1:{dead},127.0.0.1:{},127.0.0.1:{}/{db}?target_session_attrs=read-write",
        standby.port(),
        cluster().pg.port()
    );
    let mut app = TestApp::serve_on(multi.clone()).await;
    let init = app.post_sys("init", json!({})).await.ok().clone();
    app.root_token = init["root_token"].as_str().unwrap().to_string();
    for k in init["keys"].as_array().unwrap().iter().take(2) {
        app.unseal(k.as_str().unwrap()).await.ok();
    }
    let token = app.create_user(&app.root_token, None, json!({"email": "multi@example.com"})).await;
    // The record is on the writable node, not on the read-only one listed before it.
    let mut primary = PgConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE token = $1").bind(&token).fetch_one(&mut primary).await.unwrap();
    assert_eq!(n, 1);
    let health = app.client.get(format!("{}/v1/sys/health", app.base)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // Only read-only nodes: start-up says so instead of serving a vault that cannot write.
    let only_standby = format!("postgres://{login}@127.0.0.1:{dead},127.0.0.1:{}/{db}", standby.port());
    assert!(strongroom::store::Db::connect(&only_standby, 2).await.is_err());
    let bad = strongroom::store::Db::connect(&format!("{multi}&target_session_attrs=sometimes"), 2).await;
    assert!(bad.is_err(), "an unknown target_session_attrs is refused");
    standby.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_turning_read_only_is_503_and_writes_come_back_by_themselves() {
    let app = TestApp::spawn().await;
    let (db, _) = parts(&app.db_url);
    let before = app.create_user(&app.root_token, None, json!({"email": "before@example.com"})).await;

    // What a planned failover does to the old primary: its sessions are cut, and every new one
    // is read-only.
    let mut a = admin().await;
    a.execute(format!("ALTER DATABASE {db} SET default_transaction_read_only = on").as_str()).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&db)
        .execute(&mut a)
        .await
        .unwrap();

    let outage = Instant::now();
    for i in 0..5 {
        let r = app
            .client
            .post(format!("{}/v2/UserCreate", app.base))
            .header("x-bunker-token", &app.root_token)
            .json(&json!({"profile": {"email": format!("during-{i}@example.com")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 503, "a write while the database is read-only");
        assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], "error");
        assert!(body["message"].as_str().unwrap().contains("retry"), "{body}");
    }
    // A refusal, not a wait: each answers at once (a read-only node is not worth retrying).
    assert!(outage.elapsed() < Duration::from_secs(5), "503s took {:?}", outage.elapsed());
    let read = app.root("UserGet", json!({"mode": "token", "identity": before})).await;
    assert_eq!(read.code, 503, "a read writes its audit event: 503 too, not 500: {:?}", read.body);
    let health = app.client.get(format!("{}/v1/sys/health", app.base)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 503, "not ready while no writable database answers");

    // A writable database again: no restart, writes succeed within seconds.
    a.execute(format!("ALTER DATABASE {db} RESET default_transaction_read_only").as_str()).await.unwrap();
    let back = Instant::now();
    let after = loop {
        let r = app.root("UserCreate", json!({"profile": {"email": "after@example.com"}})).await;
        if r.code == 200 {
            break r.body["token"].as_str().unwrap().to_string();
        }
        assert_eq!(r.code, 503, "only 503 while recovering: {:?}", r.body);
        assert!(back.elapsed() < Duration::from_secs(15), "writes did not come back within 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for token in [before, after] {
        assert_eq!(app.root("UserGet", json!({"mode": "token", "identity": token})).await.code, 200);
    }
    let health = app.client.get(format!("{}/v1/sys/health", app.base)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
