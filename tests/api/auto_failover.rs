//! Riding out a real failover: pg_auto_failover 2.0 (a monitor and two data nodes with
//! synchronous replication, all on 127.0.0.1), eight concurrent writers through a libpq
//! multi-host URL, first a planned failover, then a kill -9 of the whole primary node.
//!
//! Every write carries an `Idempotency-Key` and is retried on 503 until answered, as a careful
//! client does. Asserted for both faults: no answer but 200 or 503 (never 500, never a 409 from
//! a retry whose first try did commit); every acknowledged write is on the new primary; writes
//! succeed again within 15 s of the new primary turning writable; readiness is false during
//! the window and true after it.
//!
//! pg_autoctl runs as the `postgres` system user when the tests run as root (like every other
//! cluster here); its files (`XDG_*` included) stay in one directory that user owns.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::*;

const DB: &str = "strongroom";

/// A pg_auto_failover formation: the monitor and two data nodes, each a `pg_autoctl ... --run`
/// process group of ours.
struct Formation {
    dir: PathBuf,
    bin: PathBuf,
    /// The OS user running PostgreSQL, which is also its superuser (trust auth on 127.0.0.1).
    superuser: String,
    as_postgres: bool,
    monitor_port: u16,
    ports: [u16; 2],
    children: Mutex<Vec<Child>>,
}

impl Formation {
    fn new() -> Formation {
        let bin = strongroom::localpg::find_bin_dir().expect("PostgreSQL binaries");
        assert!(
            Command::new("pg_autoctl").arg("--version").output().is_ok_and(|o| o.status.success()),
            "pg_autoctl not found: install pg-auto-failover-cli and postgresql-<major>-auto-failover (scripts/test.sh does)"
        );
        let as_postgres = nix::unistd::geteuid().is_root();
        let dir = temp_dir("auto-failover");
        let superuser = if as_postgres {
            let pg = nix::unistd::User::from_name("postgres").unwrap().expect("a postgres system user");
            for sub in ["", "config", "data", "run"] {
                let d = dir.join(sub);
                std::fs::create_dir_all(&d).unwrap();
                std::os::unix::fs::chown(&d, Some(pg.uid.as_raw()), Some(pg.gid.as_raw())).unwrap();
            }
            "postgres".to_string()
        } else {
            for sub in ["config", "data", "run"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap().name
        };
        // The parent of every data dir must be enterable by the user running PostgreSQL.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        Formation {
            dir,
            bin,
            superuser,
            as_postgres,
            monitor_port: free_port(),
            ports: [free_port(), free_port()],
            children: Mutex::new(Vec::new()),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        let env = [
            ("PATH", path),
            ("XDG_CONFIG_HOME", self.dir.join("config").display().to_string()),
            ("XDG_DATA_HOME", self.dir.join("data").display().to_string()),
            ("XDG_RUNTIME_DIR", self.dir.join("run").display().to_string()),
        ];
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "env"]).args(env.iter().map(|(k, v)| format!("{k}={v}"))).arg("pg_autoctl");
            c
        } else {
            let mut c = Command::new("pg_autoctl");
            c.envs(env);
            c
        };
        c.args(args);
        c
    }

    /// Starts `pg_autoctl <args> --run` in its own process group, its output in `<name>.log`.
    fn spawn(&self, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let mut cmd = self.command(args);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("pg_autoctl");
        self.children.lock().unwrap().push(child);
    }

    fn monitor_url(&self) -> String {
        format!("postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable", self.monitor_port)
    }

    fn node_url(&self, node: usize, db: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{db}?sslmode=disable", self.superuser, self.ports[node])
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// `pg_autoctl create <monitor|postgres>` for `name` (its data dir and log) on `port`,
    /// with trust auth and no TLS on 127.0.0.1, kept running.
    fn create(&self, name: &str, port: u16, extra: &[&str]) {
        let kind = if name == "monitor" { "monitor" } else { "postgres" };
        let (pgdata, port) = (self.dir.join(name).display().to_string(), port.to_string());
        let mut args =
            vec!["create", kind, "--pgdata", &pgdata, "--pgport", &port, "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl"];
        args.extend_from_slice(extra);
        args.push("--run");
        self.spawn(name, &args);
    }

    async fn start_monitor(&self) {
        self.create("monitor", self.monitor_port, &[]);
        let su = format!("postgres://{}@127.0.0.1:{}/pg_auto_failover?sslmode=disable", self.superuser, self.monitor_port);
        let mut c =
            eventually("the monitor", Duration::from_secs(60), || async { PgConnection::connect(&su).await.ok() }, || self.log("monitor"))
                .await;
        // A crashed node is noticed in ~2 s and given up on after 3 more (the defaults, 20 s
        // and 30 s, are for real networks).
        for (k, v) in [
            ("health_check_period", "1000"),
            ("health_check_retry_delay", "500"),
            ("health_check_timeout", "1000"),
            ("health_check_max_retries", "1"),
            ("node_considered_unhealthy_timeout", "2000"),
            ("primary_demote_timeout", "3000"),
        ] {
            c.execute(format!("ALTER SYSTEM SET pgautofailover.{k} = {v}").as_str()).await.unwrap();
        }
        c.execute("SELECT pg_reload_conf()").await.unwrap();
    }

    fn start_node(&self, node: usize) {
        let monitor = self.monitor_url();
        self.create(&format!("node{}", node + 1), self.ports[node], &["--dbname", DB, "--monitor", &monitor]);
    }

    /// `(port, reported state)` of every node, as the monitor sees them.
    async fn states(&self) -> Vec<(i32, String)> {
        let Ok(mut c) = PgConnection::connect(&self.monitor_url()).await else { return vec![] };
        sqlx::query_as("SELECT nodeport, reportedstate::text FROM pgautofailover.node ORDER BY nodeport")
            .fetch_all(&mut c)
            .await
            .unwrap_or_default()
    }

    /// Waits until `primary` reports primary and the other node secondary. A `CHECKPOINT` on
    /// the primary now and then: the standby's base backup otherwise waits ~90 s for a spread one.
    async fn settle(&self, primary: usize) {
        let want = {
            let mut w =
                vec![(self.ports[primary] as i32, "primary".to_string()), (self.ports[1 - primary] as i32, "secondary".to_string())];
            w.sort();
            w
        };
        eventually(
            "primary and secondary",
            Duration::from_secs(180),
            || async {
                if let Ok(mut c) = PgConnection::connect(&self.node_url(primary, "postgres")).await {
                    let _ = c.execute("CHECKPOINT").await;
                }
                (self.states().await == want).then_some(())
            },
            || format!("{:?}\n{}\n{}", want, self.log("node1"), self.log("node2")),
        )
        .await;
    }

    /// Whether `node` accepts writes now (a fresh session: the promoted node stays read-only
    /// for about a second after `pg_is_in_recovery()` turns false).
    async fn writable(&self, node: usize) -> bool {
        match PgConnection::connect(&self.node_url(node, DB)).await {
            Ok(mut c) => sqlx::query_scalar::<_, String>("SHOW transaction_read_only").fetch_one(&mut c).await.is_ok_and(|v| v == "off"),
            Err(_) => false,
        }
    }

    fn perform_failover(&self) {
        let out = self.command(&["perform", "failover", "--monitor", &self.monitor_url()]).output().unwrap();
        assert!(out.status.success(), "perform failover: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A crash of the whole node: its pg_autoctl processes and every PostgreSQL process, kill -9.
    fn kill_node(&self, node: usize) {
        let pid_file = self.dir.join(format!("node{}", node + 1)).join("postmaster.pid");
        let postmaster: i32 = std::fs::read_to_string(pid_file).unwrap().lines().next().unwrap().trim().parse().unwrap();
        let mut doomed = vec![postmaster];
        let ps = Command::new("ps").args(["-o", "pid=", "--ppid", &postmaster.to_string()]).output().unwrap();
        doomed.extend(String::from_utf8_lossy(&ps.stdout).split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        let group = self.children.lock().unwrap()[node + 1].id() as i32;
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), nix::sys::signal::Signal::SIGKILL);
        for pid in doomed {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        for child in self.children.lock().unwrap().iter_mut() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        }
        std::thread::sleep(Duration::from_secs(1));
        for name in ["node1", "node2", "monitor"] {
            let pid_file = self.dir.join(name).join("postmaster.pid");
            if let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|s| s.lines().next()?.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        for child in self.children.lock().unwrap().iter_mut() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `probe` every 250 ms until it yields, or panics after `limit` with `context()`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F, context: impl Fn() -> String) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}\n{}", context());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the writers and the watchers saw during one fault.
#[derive(Default)]
struct Run {
    /// Acknowledged writes: (email, token).
    acked: Vec<(String, String)>,
    /// (when, status) of every answer but 200.
    refused: Vec<(Instant, u16, String)>,
    /// When each 200 arrived.
    ok_at: Vec<Instant>,
    /// (when, status) of every readiness probe.
    health: Vec<(Instant, u16)>,
    /// The longest any one attempt took to be answered.
    slowest: Duration,
}

/// Eight writers and a readiness watcher against `app` while `fault` runs, until `new_primary`
/// has been writable for 8 s. Returns what they saw and when the new primary turned writable.
async fn under_load(
    app: &TestApp,
    f: &Formation,
    phase: &str,
    new_primary: usize,
    fault: impl FnOnce() + Send + 'static,
) -> (Run, Instant) {
    let run = Arc::new(Mutex::new(Run::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (client, base, token, run, stop) = (app.client.clone(), app.base.clone(), app.root_token.clone(), run.clone(), stop.clone());
        let phase = phase.to_string();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let email = format!("{phase}-{w}-{n}@example.com");
                let key = uuid::Uuid::new_v4().to_string();
                // One logical write: retried on 503 under its key until it is answered.
                loop {
                    let sent_at = Instant::now();
                    let sent = client
                        .post(format!("{base}/v2/UserCreate"))
                        .header("x-bunker-token", &token)
                        .header("idempotency-key", &key)
                        .json(&json!({"profile": {"email": email}}))
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    let (code, body) = match sent {
                        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                        Err(e) => (0, format!("transport: {e}")),
                    };
                    let now = Instant::now();
                    {
                        let mut r = run.lock().unwrap();
                        r.slowest = r.slowest.max(now - sent_at);
                    }
                    if code == 200 {
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                        let mut r = run.lock().unwrap();
                        r.acked.push((email.clone(), v["token"].as_str().unwrap().to_string()));
                        r.ok_at.push(now);
                        break;
                    }
                    run.lock().unwrap().refused.push((now, code, body));
                    if code != 503 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    {
        let (client, base, run, stop) = (app.client.clone(), app.base.clone(), run.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let code = match client.get(format!("{base}/v1/sys/health")).timeout(Duration::from_secs(10)).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                run.lock().unwrap().health.push((Instant::now(), code));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let faulted = tokio::task::spawn_blocking(fault);
    let writable_at = eventually(
        "the new primary writable",
        Duration::from_secs(90),
        || async { f.writable(new_primary).await.then(Instant::now) },
        || f.log("monitor"),
    )
    .await;
    faulted.await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let run = std::mem::take(&mut *run.lock().unwrap());
    (run, writable_at)
}

/// The assertions every fault must pass; `what` names the fault in failures.
async fn check(what: &str, run: &Run, writable_at: Instant, f: &Formation, primary: usize) {
    let bad: Vec<_> = run.refused.iter().filter(|(_, c, _)| *c != 503).map(|(_, c, b)| format!("{c} {b}")).collect();
    assert!(bad.is_empty(), "{what}: only 503 while failing over, got {} others: {:?}", bad.len(), &bad[..bad.len().min(5)]);
    let first_refusal = run.refused.first().map(|r| r.0);
    let recovered = run.ok_at.iter().copied().filter(|t| *t >= writable_at).min().expect("writes after the new primary was writable");
    let delay = recovered.saturating_duration_since(writable_at);
    assert!(delay <= Duration::from_secs(15), "{what}: writes came back {delay:?} after the new primary was writable");
    // Readiness: false at some point while writes were refused, true again at the end.
    if let Some(start) = first_refusal {
        let during: Vec<u16> = run.health.iter().filter(|(t, _)| *t >= start && *t <= recovered).map(|(_, c)| *c).collect();
        assert!(during.contains(&503), "{what}: readiness never false during the window: {during:?}");
    }
    assert_eq!(run.health.last().map(|h| h.1), Some(200), "{what}: ready again after the failover");
    // Nothing acknowledged is lost: every token is on the new primary.
    let tokens: Vec<String> = run.acked.iter().map(|(_, t)| t.clone()).collect();
    let mut c = PgConnection::connect(&f.node_url(primary, DB)).await.unwrap();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE token = ANY($1)").bind(&tokens).fetch_one(&mut c).await.unwrap();
    assert_eq!(found as usize, tokens.len(), "{what}: acknowledged writes lost");
    let distinct: std::collections::HashSet<_> = tokens.iter().collect();
    assert_eq!(distinct.len(), tokens.len(), "{what}: one token per write");
    eprintln!(
        "{what}: {} writes acknowledged, {} answers 503 over {:?}, {} health probes not ready; slowest answer {:?}; writes back {delay:?} after the new primary was writable",
        tokens.len(),
        run.refused.len(),
        first_refusal.map(|t| recovered - t),
        run.health.iter().filter(|h| h.1 != 200).count(),
        run.slowest,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_planned_failover_and_a_crashed_primary_lose_nothing_and_answer_503() {
    let f = Arc::new(Formation::new());
    f.start_monitor().await;
    f.start_node(0);
    eventually(
        "node 1 alone",
        Duration::from_secs(60),
        || async { f.states().await.first().map(|s| s.1 == "single").filter(|b| *b) },
        || f.log("node1"),
    )
    .await;
    f.start_node(1);
    f.settle(0).await;

    let url = format!(
        "postgres://{}@127.0.0.1:{},127.0.0.1:{}/{DB}?target_session_attrs=read-write&sslmode=disable",
        f.superuser, f.ports[0], f.ports[1]
    );
    strongroom::store::Db::connect(&url, 2).await.unwrap().migrate().await.unwrap();
    let mut app = TestApp::serve_on(url).await;
    let init = app.post_sys("init", json!({})).await.ok().clone();
    app.root_token = init["root_token"].as_str().unwrap().to_string();
    for k in init["keys"].as_array().unwrap().iter().take(2) {
        app.unseal(k.as_str().unwrap()).await.ok();
    }
    let before = app.create_user(&app.root_token, None, json!({"email": "before@example.com"})).await;

    // 1. A planned failover: node 1 is demoted, node 2 promoted.
    let g = f.clone();
    let (planned, writable_at) = under_load(&app, &f, "planned", 1, move || g.perform_failover()).await;
    check("planned failover", &planned, writable_at, &f, 1).await;
    f.settle(1).await;

    // 2. The whole primary node (now node 2) crashes.
    let g = f.clone();
    let (crash, writable_at) = under_load(&app, &f, "crash", 0, move || g.kill_node(1)).await;
    check("primary crash", &crash, writable_at, &f, 0).await;
    // A refusal, not a wait: while no node is writable, no caller waits out the pool's 5 s
    // acquire timeout on the dead node.
    assert!(crash.slowest < Duration::from_millis(4500), "an answer took {:?} during the crash", crash.slowest);

    // Everything written before and during both faults reads back through the vault.
    for token in std::iter::once(before).chain(planned.acked.iter().chain(&crash.acked).step_by(50).map(|(_, t)| t.clone())) {
        let r = app.root("UserGet", json!({"mode": "token", "identity": token})).await;
        assert_eq!(r.code, 200, "{:?}", r.body);
    }
}
