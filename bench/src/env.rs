//! The benchmark's world: a private PostgreSQL in a temporary directory, the vault database and
//! a raw-baseline database in it, and the server as a separate process (`strongroom serve`) so
//! its CPU time can be read from /proc. Invariant: dropping a [`BenchEnv`] kills the server,
//! stops PostgreSQL and deletes the directory, whether the run succeeded or not.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::{Connection, Executor, PgConnection};

use strongroom::localpg::LocalPg;
use strongroom::store::Db;

pub const VAULT_DB: &str = "strongroom_bench";
pub const RAW_DB: &str = "strongroom_raw";
/// Linux clock ticks per second (`getconf CLK_TCK`; 100 on every mainstream kernel config).
const CLK_TCK: f64 = 100.0;

pub struct BenchEnv {
    dir: PathBuf,
    /// The `strongroom` binary run as the server.
    server_bin: PathBuf,
    pg: Option<LocalPg>,
    server: Option<Child>,
    pub base: String,
}

/// CPU seconds used so far by the server process, the PostgreSQL process tree and this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub server: f64,
    pub pg: f64,
    pub client: f64,
}

impl std::ops::Sub for CpuSample {
    type Output = CpuSample;
    fn sub(self, o: CpuSample) -> CpuSample {
        CpuSample { server: self.server - o.server, pg: self.pg - o.pg, client: self.client - o.client }
    }
}

impl BenchEnv {
    /// Starts PostgreSQL, creates and migrates the databases, and starts the (uninitialized)
    /// server. Progress goes to stderr.
    pub async fn start(server_bin: PathBuf) -> anyhow::Result<BenchEnv> {
        let dir = std::env::temp_dir().join(format!("strongroom-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        // When we are root PostgreSQL runs as `postgres`, who must be able to enter this dir.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let mut env = BenchEnv { dir: dir.clone(), server_bin, pg: None, server: None, base: String::new() };
        eprintln!("bench: starting PostgreSQL in {}", dir.display());
        let pg = tokio::task::spawn_blocking(move || LocalPg::start(&dir)).await??;
        env.pg = Some(pg);
        let mut admin = PgConnection::connect(&env.url("postgres")).await.context("connect to the bench PostgreSQL")?;
        for db in [VAULT_DB, RAW_DB] {
            admin.execute(format!("CREATE DATABASE {db}").as_str()).await?;
        }
        admin.close().await?;
        let db = Db::connect(&env.url(VAULT_DB), 2).await?;
        db.migrate().await.context("migrate the bench vault database")?;
        db.close().await;
        env.start_server().await?;
        Ok(env)
    }

    fn pg(&self) -> &LocalPg {
        self.pg.as_ref().expect("PostgreSQL is running")
    }

    /// Superuser URL of a database of the bench cluster.
    pub fn url(&self, db: &str) -> String {
        self.pg().url(db)
    }

    async fn start_server(&mut self) -> anyhow::Result<()> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let child = Command::new(&self.server_bin)
            .arg("serve")
            .env("DATABASE_URL", self.url(VAULT_DB))
            .env("STRONGROOM_LISTEN", format!("127.0.0.1:{port}"))
            .env("STRONGROOM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start `strongroom serve`")?;
        self.server = Some(child);
        self.base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.server.as_mut().expect("server").try_wait() {
                bail!("the server exited ({status}) during start: {}", self.server_log_tail());
            }
            // Any answer (501 while uninitialized) means it is listening.
            if http.get(format!("{}/v1/sys/health", self.base)).send().await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the server did not answer within 30 s: {}", self.server_log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn server_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails when the server process is gone (a crash would otherwise read as fast errors).
    pub fn check_server(&mut self) -> anyhow::Result<()> {
        if let Some(Ok(Some(status))) = self.server.as_mut().map(|c| c.try_wait()) {
            bail!("the server exited ({status}): {}", self.server_log_tail());
        }
        Ok(())
    }

    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// PID of the postmaster (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.pg().cluster_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// CPU used so far by the server, PostgreSQL (the postmaster with its reaped children, plus
    /// every live child) and this process.
    pub fn cpu(&self) -> CpuSample {
        let server = self.server_pid().and_then(|p| proc_stat(&format!("/proc/{p}/stat"))).map(|s| s.own()).unwrap_or(0.0);
        let client = proc_stat("/proc/self/stat").map(|s| s.own()).unwrap_or(0.0);
        let mut pg = 0.0;
        if let Some(pm) = self.postmaster_pid() {
            if let Some(s) = proc_stat(&format!("/proc/{pm}/stat")) {
                pg += s.own() + s.children;
            }
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
                if let Some(s) = proc_stat(&format!("/proc/{pid}/stat")) {
                    if s.ppid == pm {
                        pg += s.own();
                    }
                }
            }
        }
        CpuSample { server, pg, client }
    }

    /// Kills the server, stops PostgreSQL, removes the directory (and a cluster PostgreSQL had
    /// to put elsewhere). Safe to call twice.
    pub fn shutdown(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = strongroom::process::terminate(&mut child);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pg) = self.pg.take() {
            if let Err(e) = pg.stop() {
                eprintln!("bench: could not stop PostgreSQL: {e:#}");
            }
            let cluster = pg.cluster_dir().to_path_buf();
            if !cluster.starts_with(&self.dir) {
                let _ = std::fs::remove_dir_all(&cluster);
            }
        }
        if self.dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                eprintln!("bench: could not remove {}: {e}", self.dir.display());
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for BenchEnv {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The fields of `/proc/<pid>/stat` we use, CPU in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    pub ppid: u32,
    pub user: f64,
    pub system: f64,
    /// CPU of waited-for (exited) children: `cutime + cstime`.
    pub children: f64,
}

impl ProcStat {
    pub fn own(&self) -> f64 {
        self.user + self.system
    }
}

fn proc_stat(path: &str) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    Some(ProcStat {
        ppid: f.get(1)?.parse().ok()?,
        user: num(14)? / CLK_TCK,
        system: num(15)? / CLK_TCK,
        children: (num(16)? + num(17)?) / CLK_TCK,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "4242 (postgres: a (b) c) S 4000 4242 4242 0 -1 4194560 500 0 0 0 250 75 12 8 20 0 1 0 100 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.ppid, 4000);
        assert_eq!(s.user, 2.5);
        assert_eq!(s.system, 0.75);
        assert_eq!(s.children, 0.2);
        assert!(parse_stat("garbage").is_none());
        assert!(proc_stat("/proc/self/stat").is_some());
    }
}
