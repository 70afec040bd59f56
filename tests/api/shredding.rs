//! Tenant crypto-shredding (issue 5): tenants created with a tenant key store
//! (`STRONGROOM_TENANT_KEYS`) have a key-encryption key (KEK) outside the database, and
//! TenantDelete destroys it before deleting the tenant's rows, so a backup taken before the
//! deletion no longer opens the tenant even with the shares. Stores: a file directory
//! (in-process servers), AWS Secrets Manager (a real moto server) and Vault KV v2 (the stand-in
//! in `vault_standin`), the last two as `strongroom serve` processes configured by environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use strongroom::config::Config;
use strongroom::keys::blind::{self, IndexMode};
use strongroom::keys::envelope::Key;
use strongroom::keys::keyring::{self, Keyring};
use strongroom::keys::unseal::UnsealProgress;
use strongroom::store::Db;

use crate::custody::{start_moto, Moto};
use crate::helpers::*;
use crate::ops::{pg_tool, run_ok};
use crate::vault_standin::StandIn;

fn file_store(dir: &Path) -> String {
    format!("file:{}", dir.display())
}

async fn spawn_with_store(spec: &str) -> TestApp {
    let spec = spec.to_string();
    TestApp::spawn_configured(move |c| c.tenant_keys = Some(spec)).await
}

/// Connects as the cluster's owner (the test harness's user).
async fn owner(db_url: &str) -> PgConnection {
    PgConnection::connect(db_url).await.unwrap()
}

async fn kek_id(db_url: &str, tenant: i64) -> Option<String> {
    let mut c = owner(db_url).await;
    sqlx::query_scalar("SELECT kek_id FROM tenants WHERE id = $1").bind(tenant).fetch_one(&mut c).await.unwrap()
}

/// Rows of `tenant` in every table that has a `tenant_id` column, looked up in the catalog (so a
/// table added later is counted too), plus its directory row under `tenants`.
async fn rows_of_tenant(db_url: &str, tenant: i64) -> BTreeMap<String, i64> {
    let mut c = owner(db_url).await;
    let mut tx = c.begin().await.unwrap();
    // The tenant tables FORCE row-level security: a non-superuser owner sees only this tenant's
    // rows with the setting (a superuser sees everything; the WHERE clause counts the tenant).
    sqlx::query("SELECT set_config('strongroom.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c
           JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
          WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
          ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert!(tables.len() >= 20 && tables.iter().any(|t| t == "users") && tables.iter().any(|t| t == "audit_events"), "{tables:?}");
    let mut out = BTreeMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{t}\" WHERE tenant_id = $1"))
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        out.insert(t, n);
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1").bind(tenant).fetch_one(&mut *tx).await.unwrap();
    out.insert("tenants".into(), n);
    tx.rollback().await.unwrap();
    out
}

/// The master key, rebuilt from two shares as an officer holding a backup could.
async fn master_key(db: &Db, shares: &[String]) -> Key {
    let meta = db.vault_meta().await.unwrap().unwrap();
    let mut progress = UnsealProgress::new(&format!("{}/{}", meta.vault_id, meta.share_generation), meta.threshold as usize);
    assert!(progress.submit(&shares[0]).unwrap().is_none());
    let unseal_key = progress.submit(&shares[1]).unwrap().expect("two shares make the unseal key");
    keyring::unwrap_master(&unseal_key, &meta.vault_id, "unseal", &meta.mk_by_uk).unwrap()
}

async fn wrapped_data_keys(db: &Db, tenant: i64) -> Vec<(i32, Vec<u8>)> {
    let mut tx = db.tenant_tx(tenant).await.unwrap();
    let wrapped = tx.wrapped_data_keys().await.unwrap();
    tx.rollback().await.unwrap();
    wrapped
}

fn read_kek_file(dir: &Path, id: &str) -> Key {
    strongroom::custody::parse_hex_key(&std::fs::read_to_string(dir.join(format!("{id}.key"))).unwrap()).unwrap()
}

/// A custom-format pg_dump of the database at `db_url`.
fn backup(db_url: &str, dump: &Path) {
    run_ok(
        Command::new(pg_tool("pg_dump"))
            .args(["--format=custom", "--no-password"])
            .arg(format!("--file={}", dump.display()))
            .arg(format!("--dbname={db_url}")),
        "pg_dump",
    );
}

/// Restores `dump` into a new, empty database of the test cluster; returns its URL.
async fn restore(dump: &Path) -> String {
    let name = format!("r_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&cluster().pg.url("postgres")).await.unwrap();
    admin.execute(format!("CREATE DATABASE {name} TEMPLATE template0").as_str()).await.unwrap();
    admin.close().await.unwrap();
    let url = cluster().pg.url(&name);
    run_ok(
        Command::new(pg_tool("pg_restore"))
            .args(["--exit-on-error", "--single-transaction", "--no-password"])
            .arg(format!("--dbname={url}"))
            .arg(dump),
        "pg_restore",
    );
    url
}

/// Fills tenant `name` (admin `x`) with rows in many tables: users with identities, a version,
/// app data, a session, a token and a group. Returns the first user's token.
async fn populate(app: &TestApp, x: &str, name: &str, email: &str) -> String {
    let t = Some(name);
    let call = |ep: &'static str, body: Value| app.call(ep, Some(x), t, body);
    let user = app.create_user(x, t, json!({"email": email, "name": "Ada", "phone": "+1 555 0100"})).await;
    let own = |extra: Value| {
        let mut b = json!({"mode": "token", "identity": user});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    app.create_user(x, t, json!({"login": format!("{name}-second")})).await;
    call("UserUpdate", own(json!({"profile": {"name": "Ada L."}}))).await.ok();
    call("AppdataCreate", own(json!({"appname": "shop", "appdata": {"k": 1}}))).await.ok();
    call("AppdataUpdate", own(json!({"appname": "shop", "appdata": {"k": 2}}))).await.ok();
    let session = uuid::Uuid::new_v4().to_string();
    call("SessionUpsert", own(json!({"sessionuuid": session, "sessiondata": {"cart": [1]}}))).await.ok();
    // A unique token: its record hash is a keyed lookup an old backup must not answer.
    call("TokenCreate", json!({"tokentype": "creditcard", "record": "4111 1111 1111 1111", "unique": true})).await.ok();
    call("GroupCreate", json!({"groupname": "staff", "groupdesc": "All staff"})).await.ok();
    // A creating call under an Idempotency-Key: its kept answer.
    let headers = [("x-bunker-token", x), ("x-bunker-tenant", name), ("idempotency-key", "kept-1"), ("content-type", "application/json")];
    let group = json!({"groupname": "kept", "groupdesc": "Created once"}).to_string().into_bytes();
    app.raw(reqwest::Method::POST, "/v2/GroupCreate", &headers, group).await.ok();
    call("GroupAddUser", own(json!({"groupname": "staff"}))).await.ok();
    call("LegalBasisCreate", json!({"brief": "news", "status": "active"})).await.ok();
    call("TenantSetUIConf", json!({"companytitle": "Tenant A"})).await.ok();
    // The second user's expiration flow (Databunker v1): a row in user_expirations.
    call("UserExpirationStart", json!({"mode": "login", "identity": format!("{name}-second"), "expiration": "30d"})).await.ok();
    call("AgreementAccept", own(json!({"brief": "news"}))).await.ok();
    call("ProcessingActivityCreate", json!({"activity": "mailing"})).await.ok();
    call("ProcessingActivityLinkLegalBasis", json!({"activity": "mailing", "brief": "news"})).await.ok();
    call("FileCreate", own(json!({"filename": "id.txt", "filedata": "aGVsbG8"}))).await.ok();
    call("SharedRecordCreate", own(json!({"finaltime": "1h"}))).await.ok();
    call("UserPatchRequest", own(json!({"patch": [{"op": "replace", "path": "/name", "value": "A."}]}))).await.ok();
    call("RoleCreate", json!({"rolename": "viewer"})).await.ok();
    let policy = json!({"Effect": "Allow", "Action": ["UserGet"], "Resource": ["users.*"]});
    call("PolicyCreate", json!({"policyname": "view", "policy": policy})).await.ok();
    call("RoleLinkPolicy", json!({"rolename": "viewer", "policyname": "view"})).await.ok();
    call("XTokenCreateForRole", json!({"rolename": "viewer"})).await.ok();
    call("BulkListUnlock", json!({})).await.ok();
    let trust = json!({"issuer": "https://bao.example/v1/identity/oidc", "jwksurl": "https://bao.example/v1/identity/oidc/.well-known/keys",
                       "audience": "client-1", "roleclaim": "strongroom_role", "roles": {"reader": "app-reader"}});
    call("CredentialOidcTrustSet", trust).await.ok();
    // A portal sign-in challenge.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(format!("{}/portal/", app.base)).send().await.unwrap();
    let cookie = page.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = &html[at..at + 64];
    let form = format!("csrf={csrf}&tenant={name}&identity={}", email.replace('@', "%40"));
    let r = http
        .post(format!("{}/portal/signin", app.base))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    user
}

/// How many of `tenant`'s stored lookup values match what someone holding the database and the
/// master key (but no KEK) can compute for a guessed email and card number: (blind indexes,
/// unique-token record hashes).
async fn master_only_matches(db_url: &str, ring: &Keyring, tenant: i64, email: &str, card_digits: &str) -> (i64, i64) {
    let index = blind::index(&ring.derived(&format!("tenant-index:{tenant}")), IndexMode::Email, email).unwrap();
    let record =
        blind::keyed_digest(&ring.derived(&format!("tenant-token-index:{tenant}")), "token-record:creditcard", card_digits.as_bytes());
    let mut c = owner(db_url).await;
    let mut tx = c.begin().await.unwrap();
    sqlx::query("SELECT set_config('strongroom.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.unwrap();
    let i: i64 = sqlx::query_scalar("SELECT count(*) FROM user_index WHERE tenant_id = $1 AND hash = $2")
        .bind(tenant)
        .bind(&index[..])
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let r: i64 = sqlx::query_scalar("SELECT count(*) FROM tokens WHERE tenant_id = $1 AND record_hash = $2")
        .bind(tenant)
        .bind(&record[..])
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    (i, r)
}

/// Tables a tenant's data never reaches in `populate`, and why.
const EMPTY_ON_PURPOSE: &[&str] = &[
    // Only with STRONGROOM_CALLBACK_URL set (covered by the callbacks tests).
    "callback_outbox",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_stays_unreadable_in_a_backup_taken_before_while_others_restore_intact() {
    // Arrange: a vault whose tenants keep their KEKs in a directory; tenants A and B with data.
    let dir = temp_dir("keks");
    let store_dir = dir.join("tenant-keks");
    let store = file_store(&store_dir);
    let app = spawn_with_store(&store).await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&store_dir).unwrap().permissions().mode() & 0o777, 0o700);
    let main_kek = kek_id(&app.db_url, 1).await.expect("the main tenant made at init has a KEK too");
    assert!(store_dir.join(format!("{main_kek}.key")).exists());
    let (a, xa) = app.create_tenant("alpha").await;
    let (b, xb) = app.create_tenant("beta").await;
    let ada = populate(&app, &xa, "alpha", "ada@alpha.example").await;
    let bob = populate(&app, &xb, "beta", "bob@beta.example").await;
    let a_kek = kek_id(&app.db_url, a).await.expect("a tenant created with a store has a KEK");
    let b_kek = kek_id(&app.db_url, b).await.unwrap();
    let a_file = store_dir.join(format!("{a_kek}.key"));
    assert_eq!(std::fs::metadata(&a_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&a_file).unwrap().trim().len(), 64);
    let before = rows_of_tenant(&app.db_url, a).await;
    for (t, n) in &before {
        if !EMPTY_ON_PURPOSE.contains(&t.as_str()) {
            assert!(*n > 0, "tenant A should have rows in {t}, so that its deletion is tested there: {before:?}");
        }
    }
    let dump = dir.join("before-delete.dump");
    backup(&app.db_url, &dump);

    // Act: delete tenant A.
    let r = app.root("TenantDelete", json!({"tenantid": a})).await;

    // Assert: KEK first, then every row; B and the main tenant untouched.
    assert_eq!(r.ok()["shredded"], true, "{:?}", r.body);
    assert_eq!(r.ok()["tenantid"], a);
    assert!(!a_file.exists(), "the KEK file is destroyed");
    assert!(store_dir.join(format!("{b_kek}.key")).exists());
    let after = rows_of_tenant(&app.db_url, a).await;
    assert!(
        after.values().all(|n| *n == 0),
        "rows of the deleted tenant remain: {:?}",
        after.iter().filter(|(_, n)| **n > 0).collect::<Vec<_>>()
    );
    assert!(rows_of_tenant(&app.db_url, b).await["users"] == 2);
    let gone = app.call("UserGet", Some(&xa), Some("alpha"), json!({"mode": "token", "identity": ada})).await;
    gone.err(403);
    app.root("TenantGet", json!({"tenantid": a})).await.err(404);
    app.root("TenantDelete", json!({"tenantid": a})).await.err(404);
    let got = app.call("UserGet", Some(&xb), Some("beta"), json!({"mode": "email", "identity": "bob@beta.example"})).await;
    assert_eq!(got.ok()["profile"]["name"], "Ada L.");
    // Audited in the main tenant, naming the tenant id only.
    let mut c = owner(&app.db_url).await;
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant_id = 1 AND event_type = 'TenantDelete' AND outcome = 'ok'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(audited, 1);
    let (shares, root) = (app.shares.clone(), app.root_token.clone());
    drop(app);

    // The backup taken before the deletion, restored into a fresh database and served with the
    // same shares and the same key store.
    let restored = restore(&dump).await;
    assert_eq!(rows_of_tenant(&restored, a).await["users"], 2, "the backup still holds A's rows");
    let mut s =
        TestApp::serve_with(Config { database_url: Some(restored.clone()), tenant_keys: Some(store.clone()), ..Config::default() }).await;
    s.root_token = root;
    s.unseal(&shares[2]).await.ok();
    assert_eq!(s.unseal(&shares[0]).await.ok()["sealed"], false);
    for body in [json!({"mode": "token", "identity": ada}), json!({"mode": "email", "identity": "ada@alpha.example"})] {
        let r = s.call("UserGet", Some(&xa), Some("alpha"), body).await;
        let msg = r.err(404);
        assert_eq!(msg, "tenant has been deleted");
        assert!(!msg.contains(&a_kek));
    }
    let got = s.call("UserGet", Some(&xb), Some("beta"), json!({"mode": "token", "identity": bob})).await;
    assert_eq!(got.ok()["profile"]["email"], "bob@beta.example");
    assert_eq!(got.ok()["profile"]["name"], "Ada L.");
    let got = s.call("UserGet", Some(&xb), Some("beta"), json!({"mode": "email", "identity": "BOB@beta.example"})).await;
    assert_eq!(got.ok()["token"], bob.as_str());
    // Cross-tenant lookups skip the shredded tenant instead of failing (both have this phone).
    let unlock = s.root("BulkListUnlock", json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string();
    let found = s.root("SystemGetUserProfiles", json!({"mode": "phone", "identity": "+1 555 0100", "unlockuuid": unlock})).await;
    assert_eq!(found.ok()["total"], 1, "{:?}", found.body);
    assert_eq!(found.ok()["rows"][0]["tenantid"], b);

    // Directly: the master key rebuilt from the shares does not unwrap A's data key, alone or
    // with any other KEK; B's opens with B's KEK from the store.
    let master = master_key(&s.db, &shares).await;
    let ring = Keyring::new(master);
    let a_wrapped = wrapped_data_keys(&s.db, a).await;
    assert!(!a_wrapped.is_empty());
    assert!(ring.load_tenant(a, None, &a_wrapped).is_err());
    assert!(ring.load_tenant(a, Some(&Key::random()), &a_wrapped).is_err());
    assert!(ring.load_tenant(a, Some(&read_kek_file(&store_dir, &b_kek)), &a_wrapped).is_err());
    let b_wrapped = wrapped_data_keys(&s.db, b).await;
    assert!(ring.load_tenant(b, None, &b_wrapped).is_err(), "the master key alone does not open B either");
    assert!(ring.load_tenant(b, Some(&read_kek_file(&store_dir, &b_kek)), &b_wrapped).is_ok());
    // Nor do the master key's own derivations test A's data subjects: no blind index or unique
    // token hash in the backup matches a guessed email or card number.
    assert_eq!(master_only_matches(&restored, &ring, a, "ada@alpha.example", "4111111111111111").await, (0, 0));

    // Deleting A again on the restored vault: an absent KEK could also mean a misaddressed
    // store, so it takes the operator's confirmation; then its rows are cleared.
    let msg = s.root("TenantDelete", json!({"tenantid": a})).await.err(409);
    assert!(msg.contains("kekabsent"), "{msg}");
    assert_eq!(rows_of_tenant(&restored, a).await["users"], 2, "nothing deleted without the confirmation");
    assert_eq!(s.root("TenantDelete", json!({"tenantid": a, "kekabsent": true})).await.ok()["shredded"], true);
    assert!(rows_of_tenant(&restored, a).await.values().all(|n| *n == 0));
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_made_without_a_store_keep_working_after_a_restart_with_one_and_are_deleted_honestly() {
    // Arrange: tenants created while no store was configured (database-only custody).
    let app = TestApp::spawn().await;
    let (legacy, x) = app.create_tenant("legacy").await;
    let token = app.create_user(&x, Some("legacy"), json!({"email": "old@legacy.example", "name": "Old"})).await;
    let root_user = app.create_user(&app.root_token, None, json!({"email": "root@main.example"})).await;
    assert_eq!(kek_id(&app.db_url, legacy).await, None);
    assert_eq!(kek_id(&app.db_url, 1).await, None);

    // Act: the server restarts with a store configured.
    let dir = temp_dir("keks");
    let store = file_store(&dir);
    let spec = store.clone();
    let app = app.restart_configured(move |c| c.tenant_keys = Some(spec)).await;
    app.unseal(&app.shares[0].clone()).await.ok();
    app.unseal(&app.shares[1].clone()).await.ok();

    // Assert: the old derivation still opens records and blind indexes; new tenants get a KEK.
    let got = app.call("UserGet", Some(&x), Some("legacy"), json!({"mode": "email", "identity": "old@legacy.example"})).await;
    assert_eq!(got.ok()["token"], token.as_str());
    assert_eq!(got.ok()["profile"]["name"], "Old");
    let got = app.root("UserGet", json!({"mode": "email", "identity": "root@main.example"})).await;
    assert_eq!(got.ok()["token"], root_user.as_str());
    app.create_user(&x, Some("legacy"), json!({"email": "new@legacy.example"})).await;
    assert_eq!(kek_id(&app.db_url, legacy).await, None, "no automatic adoption");
    let (fresh, _) = app.create_tenant("fresh").await;
    let fresh_kek = kek_id(&app.db_url, fresh).await.expect("a KEK for a tenant created with the store");
    assert!(dir.join(format!("{fresh_kek}.key")).exists());

    // The contrast, and the control for the check the shredded tenant passes: for a tenant
    // without a KEK, the master key alone does find a guessed email and card number.
    app.call("TokenCreate", Some(&x), Some("legacy"), json!({"tokentype": "creditcard", "record": "4111111111111111", "unique": true}))
        .await
        .ok();
    let ring = Keyring::new(master_key(&app.db, &app.shares).await);
    assert_eq!(master_only_matches(&app.db_url, &ring, legacy, "old@legacy.example", "4111111111111111").await, (1, 1));

    // Deleting the old tenant deletes its rows but says that backups still open it.
    let r = app.root("TenantDelete", json!({"tenantid": legacy.to_string()})).await;
    assert_eq!(r.ok()["shredded"], false);
    assert!(r.ok()["message"].as_str().unwrap().contains("backups taken before now still open"), "{:?}", r.body);
    assert!(rows_of_tenant(&app.db_url, legacy).await.values().all(|n| *n == 0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn only_the_main_tenants_root_deletes_tenants_and_bad_requests_are_refused() {
    let dir = temp_dir("keks");
    let app = spawn_with_store(&file_store(&dir)).await;
    let (acme, admin) = app.create_tenant("acme").await;
    app.create_user(&admin, Some("acme"), json!({"login": "kept"})).await;

    // The tenant's own admin, a non-root credential of the main tenant, and a main-tenant role
    // whose policy claims TenantDelete: all refused.
    app.call("TenantDelete", Some(&admin), Some("acme"), json!({"tenantid": acme})).await.err(403);
    app.call("TenantDelete", Some(&admin), None, json!({"tenantid": acme})).await.err(403);
    let writer = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", &app.root_token)],
            serde_json::to_vec(&json!({"role": "app-writer"})).unwrap(),
        )
        .await;
    let writer = writer.ok()["token"].as_str().unwrap().to_string();
    app.call("TenantDelete", Some(&writer), None, json!({"tenantid": acme})).await.err(403);
    let rid = app.root("RoleCreate", json!({"rolename": "deleter", "roledesc": "tries"})).await.ok()["roleid"].as_i64().unwrap();
    let policy = json!({"Effect": "Allow", "Action": ["TenantDelete"], "Resource": ["tenants"]});
    let pid = app.root("PolicyCreate", json!({"policyname": "may-delete", "policy": policy})).await.ok()["policyid"].as_i64().unwrap();
    app.root("RoleLinkPolicy", json!({"roleid": rid, "policyid": pid})).await.ok();
    let x = app.root("XTokenCreateForRole", json!({"rolename": "deleter"})).await.ok()["xtoken"].as_str().unwrap().to_string();
    app.call("TenantDelete", Some(&x), None, json!({"tenantid": acme})).await.err(403);
    app.call("TenantDelete", None, None, json!({"tenantid": acme})).await.err(403);
    assert_eq!(app.root("TenantGet", json!({"tenantid": acme})).await.ok()["tenantname"], "acme", "still there");

    // Root: the main tenant is refused, an unknown id is 404, a bad body is 400.
    assert!(app.root("TenantDelete", json!({"tenantid": 1})).await.err(400).contains("main tenant"));
    app.root("TenantDelete", json!({"tenantid": 987_654})).await.err(404);
    app.root("TenantDelete", json!({})).await.err(400);
    app.root("TenantDelete", json!({"tenantid": "abc"})).await.err(400);
    app.root("TenantDelete", json!({"tenantid": -3})).await.err(400);
    let r = app.raw(reqwest::Method::POST, "/v2/TenantDelete", &[("x-bunker-token", &app.root_token)], b"not json".to_vec()).await;
    r.err(400);
    assert!(rows_of_tenant(&app.db_url, acme).await["users"] == 1);
    assert_eq!(app.root("TenantDelete", json!({"tenantid": acme})).await.ok()["shredded"], true);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_rotation_of_a_kek_tenant_wraps_under_the_tenant_key_and_survives_a_restart() {
    let dir = temp_dir("keks");
    let store = file_store(&dir);
    let app = spawn_with_store(&store).await;
    let (tid, x) = app.create_tenant("rotor").await;
    let mut tokens = Vec::new();
    for i in 0..5 {
        tokens.push(app.create_user(&x, Some("rotor"), json!({"email": format!("u{i}@rotor.example")})).await);
    }
    let r = app.post_sys("rotate-tenant-key", json!({"tenantid": tid})).await;
    assert_eq!(r.ok()["version"], 2);
    tokens.push(app.create_user(&x, Some("rotor"), json!({"email": "after@rotor.example"})).await);

    // The new version is wrapped under master key ‖ KEK, not under the master key.
    let kek = read_kek_file(&dir, &kek_id(&app.db_url, tid).await.unwrap());
    let ring = Keyring::new(master_key(&app.db, &app.shares).await);
    let wrapped = wrapped_data_keys(&app.db, tid).await;
    let v2: Vec<(i32, Vec<u8>)> = wrapped.iter().filter(|(v, _)| *v == 2).cloned().collect();
    assert_eq!(v2.len(), 1);
    assert!(ring.load_tenant(tid, None, &v2).is_err());
    assert!(ring.load_tenant(tid, Some(&kek), &wrapped).is_ok());

    let live = app.state.vault().keyring().unwrap();
    while strongroom::custody::rotation::rewrap_pass(&app.db, app.state.vault().tenant_keks(), &live, tid).await.unwrap() > 0 {}
    assert_eq!(app.post_sys("tenant-key-status", json!({"tenantid": tid})).await.ok()["versions"], json!([2]));

    let spec = store.clone();
    let app = app.restart_configured(move |c| c.tenant_keys = Some(spec)).await;
    app.unseal(&app.shares[1].clone()).await.ok();
    app.unseal(&app.shares[2].clone()).await.ok();
    for (i, t) in tokens.iter().enumerate() {
        let got = app.call("UserGet", Some(&x), Some("rotor"), json!({"mode": "token", "identity": t})).await;
        let email = got.ok()["profile"]["email"].as_str().unwrap().to_string();
        let by_email = app.call("UserGet", Some(&x), Some("rotor"), json!({"mode": "email", "identity": email})).await;
        assert_eq!(by_email.ok()["token"], t.as_str(), "user {i}");
    }
    // Without the store the same tenant cannot be served: 503, never a silent fallback.
    let app = app.restart().await;
    app.unseal(&app.shares[1].clone()).await.ok();
    app.unseal(&app.shares[2].clone()).await.ok();
    let r = app.call("UserGet", Some(&x), Some("rotor"), json!({"mode": "token", "identity": tokens[0]})).await;
    assert_eq!(r.err(503), "tenant keys unavailable");
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// External stores, with `strongroom serve` processes

/// Starts `strongroom serve` on a free port and waits until it answers seal-status. A port taken
/// between picking and binding (other tests run alongside) is retried on another port; any other
/// early exit fails with the server's log.
async fn serve(db_url: &str, env: &[(&str, String)]) -> Server {
    for _ in 0..3 {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strongroom"));
        cmd.arg("serve")
            .env("DATABASE_URL", db_url)
            .env("STRONGROOM_LISTEN", format!("127.0.0.1:{port}"))
            .env("STRONGROOM_LOG", "warn")
            .env_remove("STRONGROOM_UNSEAL_SOURCE")
            .env_remove("STRONGROOM_TENANT_KEYS")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::env::temp_dir().join(format!("strongroom-shred-serve-{}.log", uuid::Uuid::new_v4().simple()));
        cmd.stderr(std::fs::File::create(&log).unwrap());
        let mut server = Server { child: cmd.spawn().expect("start strongroom serve"), base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut exited = None;
        while http_client().get(format!("{}/v1/sys/seal-status", server.base)).send().await.is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                exited = Some((status, std::fs::read_to_string(&log).unwrap_or_default()));
                break;
            }
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_file(&log);
        match exited {
            None => return server,
            Some((_, text)) if text.contains("cannot listen") => continue,
            Some((status, text)) => panic!("strongroom serve exited early: {status}: {text}"),
        }
    }
    panic!("strongroom serve found no free port in 3 tries");
}

async fn send(s: &Server, path: &str, token: Option<&str>, tenant: Option<&str>, body: Value) -> Reply {
    let mut req = http_client().post(format!("{}{path}", s.base)).json(&body);
    if let Some(t) = token {
        req = req.header("x-bunker-token", t);
    }
    if let Some(t) = tenant {
        req = req.header("x-bunker-tenant", t);
    }
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    Reply { code, body: resp.json().await.unwrap_or(Value::Null) }
}

async fn unseal(s: &Server, shares: &[String]) {
    for share in shares {
        send(s, "/v1/sys/unseal", None, None, json!({"key": share})).await.ok();
    }
}

/// Initializes over HTTP and unseals; returns (root token, shares).
async fn init(s: &Server) -> (String, Vec<String>) {
    let r = send(s, "/v1/sys/init", None, None, json!({})).await;
    let root = r.ok()["root_token"].as_str().unwrap().to_string();
    let shares: Vec<String> = r.ok()["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    unseal(s, &shares[..2]).await;
    (root, shares)
}

fn aws_env(endpoint: &str, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("STRONGROOM_TENANT_KEYS", format!("aws-secretsmanager:{prefix}")),
        ("STRONGROOM_AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// Runs boto3 `code` against moto (`c`: a client of `service`); returns what it printed.
fn moto_py(moto: &Moto, service: &str, code: &str) -> String {
    let script = format!(
        "import boto3\nc=boto3.client('{service}',endpoint_url='{}',region_name='eu-west-1',aws_access_key_id='testing',aws_secret_access_key='testing')\n{code}\n",
        moto.url
    );
    let out = Command::new(crate::official_client::python()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What moto holds under `name`: `present:<value>`, `absent` or `marked-for-deletion`.
fn moto_secret(moto: &Moto, name: &str) -> String {
    let script = format!(
        "import boto3\nc=boto3.client('secretsmanager',endpoint_url='{}',region_name='eu-west-1',aws_access_key_id='testing',aws_secret_access_key='testing')\n\
         try:\n  print('present:'+c.get_secret_value(SecretId='{}')['SecretString'])\n\
         except c.exceptions.ResourceNotFoundException:\n  print('absent')\n\
         except c.exceptions.InvalidRequestException:\n  print('marked-for-deletion')\n",
        moto.url, name
    );
    let out = Command::new(crate::official_client::python()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_manager_holds_one_secret_per_tenant_force_deleted_by_tenant_delete() {
    let moto = start_moto().await;
    let prefix = format!("strongroom/{}/tenant-kek/", uuid::Uuid::new_v4().simple());
    let db_url = fresh_database().await;
    // New secrets are encrypted under the KMS key the deployment names.
    let kms_key = moto_py(&moto, "kms", "print(c.create_key(Description='tenant keks')['KeyMetadata']['KeyId'])");
    let mut env = aws_env(&moto.url, &prefix);
    env.push(("STRONGROOM_TENANT_KEYS_KMS_KEY_ID", kms_key.clone()));
    let s = serve(&db_url, &env).await;
    let (root, shares) = init(&s).await;
    let main = kek_id(&db_url, 1).await.expect("init puts the main tenant's KEK in the store");
    let described = moto_py(&moto, "secretsmanager", &format!("print(c.describe_secret(SecretId='{prefix}{main}').get('KmsKeyId'))"));
    assert_eq!(described, kms_key);
    assert!(moto_secret(&moto, &format!("{prefix}{main}")).starts_with("present:"));

    // TenantCreate creates the tenant's secret; its data works.
    let r = send(&s, "/v2/TenantCreate", Some(&root), None, json!({"tenantname": "acme", "tenantorg": "Acme"})).await;
    let (acme, x) = (r.ok()["tenantid"].as_i64().unwrap(), r.ok()["xtoken"].as_str().unwrap().to_string());
    let acme_kek = kek_id(&db_url, acme).await.unwrap();
    let secret = format!("{prefix}{acme_kek}");
    let held = moto_secret(&moto, &secret);
    assert_eq!(held.strip_prefix("present:").map(str::len), Some(64), "{held}");
    let user = send(&s, "/v2/UserCreate", Some(&x), Some("acme"), json!({"profile": {"email": "ada@acme.example"}})).await;
    let user = user.ok()["token"].as_str().unwrap().to_string();
    let r = send(&s, "/v2/TenantCreate", Some(&root), None, json!({"tenantname": "beta", "tenantorg": "Beta"})).await;
    let (beta, xb) = (r.ok()["tenantid"].as_i64().unwrap(), r.ok()["xtoken"].as_str().unwrap().to_string());
    let beta_user = send(&s, "/v2/UserCreate", Some(&xb), Some("beta"), json!({"profile": {"login": "bee"}})).await;
    let beta_user = beta_user.ok()["token"].as_str().unwrap().to_string();

    // A second instance (cold cache) fetches the KEK from Secrets Manager.
    let other = serve(&db_url, &env).await;
    unseal(&other, &shares[1..]).await;
    let got = send(&other, "/v2/UserGet", Some(&x), Some("acme"), json!({"mode": "email", "identity": "ada@acme.example"})).await;
    assert_eq!(got.ok()["token"], user.as_str());

    // TenantDelete force-deletes the secret (no recovery window), then the rows.
    let r = send(&s, "/v2/TenantDelete", Some(&root), None, json!({"tenantid": acme})).await;
    assert_eq!(r.ok()["shredded"], true);
    assert_eq!(moto_secret(&moto, &secret), "absent");
    assert!(rows_of_tenant(&db_url, acme).await.values().all(|n| *n == 0));
    // The other instance stops serving it at once (it resolves the tenant per request).
    send(&other, "/v2/UserGet", Some(&x), Some("acme"), json!({"mode": "token", "identity": user})).await.err(403);
    drop(other);

    // The store becomes unreachable: TenantCreate is 503 and leaves no tenant; TenantDelete is
    // 503 and deletes nothing; a cold instance cannot load keys (503).
    let moto_url = moto.url.clone();
    drop(moto);
    let r = send(&s, "/v2/TenantCreate", Some(&root), None, json!({"tenantname": "nope", "tenantorg": "Nope"})).await;
    let msg = r.err(503);
    assert!(msg.contains("tenant key store unavailable"), "{msg}");
    let mut c = owner(&db_url).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE name = 'nope'").fetch_one(&mut c).await.unwrap();
    assert_eq!(n, 0, "no tenant row without its KEK in the store");
    send(&s, "/v2/TenantDelete", Some(&root), None, json!({"tenantid": beta})).await.err(503);
    assert_eq!(rows_of_tenant(&db_url, beta).await["users"], 1, "nothing deleted when the KEK could not be destroyed");
    let cold = serve(&db_url, &aws_env(&moto_url, &prefix)).await;
    unseal(&cold, &shares[..2]).await;
    let r = send(&cold, "/v2/UserGet", Some(&xb), Some("beta"), json!({"mode": "token", "identity": beta_user})).await;
    assert_eq!(r.err(503), "tenant keys unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv_holds_one_secret_per_tenant_whose_metadata_tenant_delete_destroys() {
    let standin = StandIn::default();
    standin.0.lock().unwrap().tokens.push("kek-token".into());
    let addr = standin.clone().serve().await;
    let db_url = fresh_database().await;
    let env = vec![
        ("STRONGROOM_TENANT_KEYS", "vault-kv:secret/strongroom/tenant-kek-".to_string()),
        ("VAULT_ADDR", addr.clone()),
        ("VAULT_TOKEN", "kek-token".to_string()),
    ];
    let s = serve(&db_url, &env).await;
    let (root, shares) = init(&s).await;
    let main = kek_id(&db_url, 1).await.unwrap();
    let held = standin.get("secret", &format!("strongroom/tenant-kek-{main}")).expect("the main tenant's KEK in Vault");
    assert_eq!(held["kek"].as_str().map(str::len), Some(64));

    let r = send(&s, "/v2/TenantCreate", Some(&root), None, json!({"tenantname": "acme", "tenantorg": "Acme"})).await;
    let (acme, x) = (r.ok()["tenantid"].as_i64().unwrap(), r.ok()["xtoken"].as_str().unwrap().to_string());
    let path = format!("strongroom/tenant-kek-{}", kek_id(&db_url, acme).await.unwrap());
    assert!(standin.get("secret", &path).is_some());
    let user = send(&s, "/v2/UserCreate", Some(&x), Some("acme"), json!({"profile": {"email": "ada@acme.example"}})).await;
    let user = user.ok()["token"].as_str().unwrap().to_string();
    let root_user = send(&s, "/v2/UserCreate", Some(&root), None, json!({"profile": {"login": "main-user"}})).await;
    let root_user = root_user.ok()["token"].as_str().unwrap().to_string();

    let r = send(&s, "/v2/TenantDelete", Some(&root), None, json!({"tenantid": acme})).await;
    assert_eq!(r.ok()["shredded"], true);
    assert!(standin.get("secret", &path).is_none(), "every version destroyed with the metadata");
    assert_eq!(standin.0.lock().unwrap().metadata_deletes, 1);
    send(&s, "/v2/UserGet", Some(&x), Some("acme"), json!({"mode": "token", "identity": user})).await.err(403);
    drop(s);

    // A new process reads the main tenant's KEK from Vault; with its token refused, it cannot
    // (503), and nothing falls back to database-only keys.
    let s = serve(&db_url, &env).await;
    unseal(&s, &shares[1..]).await;
    let got = send(&s, "/v2/UserGet", Some(&root), None, json!({"mode": "token", "identity": root_user})).await;
    assert_eq!(got.ok()["profile"]["login"], "main-user");
    drop(s);
    standin.0.lock().unwrap().tokens.clear();
    let s = serve(&db_url, &env).await;
    unseal(&s, &shares[..2]).await;
    let r = send(&s, "/v2/UserGet", Some(&root), None, json!({"mode": "token", "identity": root_user})).await;
    assert_eq!(r.err(503), "tenant keys unavailable");
}

/// An absent KEK on a first TenantDelete means a misaddressed store, not a shredded tenant:
/// refused, nothing deleted. A deletion begun (the tombstone) stops every request at once, even
/// on an instance holding the tenant's keys in memory, and a retry finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misaddressed_store_deletes_nothing_and_a_begun_deletion_stops_service_and_converges() {
    let dir = temp_dir("keks-wrong");
    let (right, wrong) = (dir.join("right"), dir.join("wrong"));
    // A vault upgraded to a store: its main tenant keeps database-only custody (so a wrong store
    // does not stop the root credential), the tenant made since has a KEK.
    let app = TestApp::spawn().await;
    let store = file_store(&right);
    let app = app.restart_configured(|c| c.tenant_keys = Some(store)).await;
    let (shares, db_url) = (app.shares.clone(), app.db_url.clone());
    app.unseal(&shares[0]).await.ok();
    app.unseal(&shares[1]).await.ok();
    let (a, xa) = app.create_tenant("gamma").await;
    let ada = app.create_user(&xa, Some("gamma"), json!({"email": "ada@gamma.example"})).await;
    let a_kek = kek_id(&db_url, a).await.unwrap();

    // The same database served with another (empty) store directory.
    let wrong_store = file_store(&wrong);
    let misaddressed = app.restart_configured(|c| c.tenant_keys = Some(wrong_store)).await;
    misaddressed.unseal(&shares[0]).await.ok();
    misaddressed.unseal(&shares[1]).await.ok();
    // The store probe says so on /v1/sys/health.
    misaddressed.state.start_tenant_key_probe();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = misaddressed.get_sys("health").await;
        if let Some(state) = h.body["tenant_key_store"].as_str() {
            assert!(state.contains("holds none of the 1 sampled tenant KEKs"), "{state}");
            break;
        }
        assert!(Instant::now() < deadline, "no probe result");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let msg = misaddressed.root("TenantDelete", json!({"tenantid": a})).await.err(409);
    assert!(msg.contains("wrong store") && !msg.contains(&a_kek), "{msg}");
    assert!(right.join(format!("{a_kek}.key")).exists());
    assert_eq!(rows_of_tenant(&db_url, a).await["users"], 1, "nothing deleted");

    // The right store: the tenant serves, with its keys cached here.
    let store = file_store(&right);
    let s = misaddressed.restart_configured(|c| c.tenant_keys = Some(store)).await;
    s.state.start_tenant_key_probe();
    s.unseal(&shares[0]).await.ok();
    s.unseal(&shares[1]).await.ok();
    s.call("UserGet", Some(&xa), Some("gamma"), json!({"mode": "token", "identity": ada})).await.ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get_sys("health").await.body["tenant_key_store"] != "ok" {
        assert!(Instant::now() < deadline, "the right store is not reported ok");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A deletion that began elsewhere and failed part-way leaves the tombstone: no more service.
    let mut c = owner(&db_url).await;
    sqlx::query("UPDATE tenants SET shredding_at = 1 WHERE id = $1").bind(a).execute(&mut c).await.unwrap();
    s.call("UserGet", Some(&xa), Some("gamma"), json!({"mode": "token", "identity": ada})).await.err(403);
    s.call("UserCreate", Some(&xa), Some("gamma"), json!({"profile": {"email": "new@gamma.example"}})).await.err(403);
    // The retry destroys the KEK and the rows.
    assert_eq!(s.root("TenantDelete", json!({"tenantid": a})).await.ok()["shredded"], true);
    assert!(!right.join(format!("{a_kek}.key")).exists());
    assert!(rows_of_tenant(&db_url, a).await.values().all(|n| *n == 0));
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

/// SystemDeleteUserProfiles across tenants commits tenant by tenant: when one tenant cannot be
/// reached (here its KEK no longer parses), the others' deletions stand and the answer says
/// which tenant failed instead of reporting an error for the whole call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_tenant_delete_reports_the_tenant_that_failed() {
    let dir = temp_dir("keks-partial");
    let store_dir = dir.join("keks");
    let app = spawn_with_store(&file_store(&store_dir)).await;
    let (p1, x1) = app.create_tenant("partone").await;
    let (p2, x2) = app.create_tenant("parttwo").await;
    app.create_user(&x1, Some("partone"), json!({"email": "twice@part.example"})).await;
    app.create_user(&x2, Some("parttwo"), json!({"email": "twice@part.example"})).await;
    let kek2 = kek_id(&app.db_url, p2).await.unwrap();
    let store = file_store(&store_dir);
    let app = app.restart_configured(|c| c.tenant_keys = Some(store)).await;
    let shares = app.shares.clone();
    app.unseal(&shares[0]).await.ok();
    app.unseal(&shares[1]).await.ok();
    std::fs::write(store_dir.join(format!("{kek2}.key")), "not a key\n").unwrap();

    let u = app.root("BulkListUnlock", json!({})).await.ok()["unlockuuid"].clone();
    let r = app.root("SystemDeleteUserProfiles", json!({"mode": "email", "identity": "twice@part.example", "unlockuuid": u})).await;
    let body = r.ok();
    assert_eq!(body["total"], 1);
    assert_eq!(body["rows"][0]["tenantid"], p1);
    assert_eq!(body["failed"][0]["tenantid"], p2);
    assert_eq!(rows_of_tenant(&app.db_url, p2).await["users"], 1);
    drop(app);
    std::fs::remove_dir_all(dir).unwrap();
}
