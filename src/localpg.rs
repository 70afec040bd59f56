//! A private PostgreSQL cluster run from the system binaries (initdb, pg_ctl, postgres), for the
//! demo and the test suite. Invariants: it listens on 127.0.0.1 only, with a random password
//! (scram-sha-256), never trust auth. PostgreSQL refuses to run as root, so when we are root the
//! cluster runs as the `postgres` system user; if that user cannot reach the requested directory
//! (a 0700 home or temp dir), the cluster lives under `/var/lib/strongroom/clusters/` instead,
//! `<dir>/pg-location` says where, and `<clusters>/<tag>.owner` names `<dir>`, so that a cluster
//! whose directory was deleted is found and removed at the next start.
//!
//! One process at a time uses a directory (an exclusive lock on `<dir>/.strongroom.lock`, held
//! while the `LocalPg` lives). A PostgreSQL still running in the cluster when the lock is free
//! was left behind by a run that was killed: it is stopped and started afresh.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context};
use rand::RngCore;
use sha2::{Digest, Sha256};

const SYSTEM_USER: &str = "postgres";
const SUPERUSER: &str = "strongroom";
const FALLBACK_ROOT: &str = "/var/lib/strongroom/clusters";

pub struct LocalPg {
    cluster: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    as_system_user: bool,
    /// Held for as long as this cluster is ours (see the module comment).
    _lock: std::fs::File,
}

const LOCK_FILE: &str = ".strongroom.lock";

/// Directory holding initdb/pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin.
pub fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let initdb = dir.join("initdb");
            if initdb.is_file() && dir.join("pg_ctl").is_file() {
                return Ok(std::fs::canonicalize(&initdb).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or(dir));
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow!("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin"))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn system_user() -> anyhow::Result<nix::unistd::User> {
    nix::unistd::User::from_name(SYSTEM_USER)?
        .ok_or_else(|| anyhow!("running as root needs a `{SYSTEM_USER}` system user to run PostgreSQL"))
}

fn chown_to(path: &Path, user: &nix::unistd::User) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw())).with_context(|| format!("chown {}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", path.display()))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalPg {
    /// Starts (creating on first use) the cluster that belongs to `dir`. Data persists across
    /// starts; the password is kept in `<dir>/pg-password` (mode 0600).
    pub fn start(dir: &Path) -> anyhow::Result<LocalPg> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("open {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!("another strongroom process is using {} (it holds {})", dir.display(), lock_path.display());
        }
        let bin = find_bin_dir()?;
        let as_system_user = is_root();
        if as_system_user {
            remove_orphaned_fallback_clusters(&bin);
        }
        let cluster = if as_system_user { Self::root_cluster_dir(&dir)? } else { dir.join("pg") };
        let pw_file = dir.join("pg-password");
        let fresh = !cluster.join("PG_VERSION").is_file();
        let password = if fresh {
            let mut raw = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let pw = hex::encode(raw);
            write_private(&pw_file, pw.as_bytes())?;
            pw
        } else {
            std::fs::read_to_string(&pw_file).with_context(|| format!("read {}", pw_file.display()))?.trim().to_string()
        };
        let pg = LocalPg { cluster, bin, port: free_port()?, password, as_system_user, _lock: lock };
        if fresh {
            pg.initdb()?;
        } else {
            pg.stop_left_behind()?;
        }
        pg.pg_ctl_start()?;
        Ok(pg)
    }

    /// Where a root-run cluster for `dir` lives: `<dir>/pg` if the system user can reach it,
    /// else a directory of its own under /var/lib/strongroom/clusters.
    fn root_cluster_dir(dir: &Path) -> anyhow::Result<PathBuf> {
        let user = system_user()?;
        let location = dir.join("pg-location");
        if let Ok(saved) = std::fs::read_to_string(&location) {
            let saved = PathBuf::from(saved.trim());
            if saved.starts_with(FALLBACK_ROOT) {
                // Clusters made before owner files existed get theirs now.
                let _ = write_owner(&saved, dir);
            }
            return Ok(saved);
        }
        let inside = dir.join("pg");
        std::fs::create_dir_all(&inside)?;
        chown_to(&inside, &user)?;
        set_mode(&inside, 0o700)?;
        let reachable = Command::new("runuser")
            .args(["-u", SYSTEM_USER, "--", "test", "-w"])
            .arg(&inside)
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let chosen = if reachable {
            inside
        } else {
            let _ = std::fs::remove_dir(&inside);
            let tag = hex::encode(&Sha256::digest(dir.as_os_str().as_encoded_bytes())[..8]);
            let root = Path::new(FALLBACK_ROOT);
            std::fs::create_dir_all(root)?;
            for p in root.ancestors().take(3) {
                if p.as_os_str().len() > 1 {
                    set_mode(p, 0o755)?;
                }
            }
            let c = root.join(tag);
            write_owner(&c, dir)?;
            std::fs::create_dir_all(&c)?;
            chown_to(&c, &user)?;
            set_mode(&c, 0o700)?;
            c
        };
        write_private(&location, chosen.as_os_str().as_encoded_bytes())?;
        Ok(chosen)
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_system_user {
            let mut c = Command::new("runuser");
            c.args(["-u", SYSTEM_USER, "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.current_dir("/").env("LC_ALL", "C").env_remove("PGDATA");
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str) -> anyhow::Result<()> {
        let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("run {what}"))?;
        if !out.status.success() {
            bail!("{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn initdb(&self) -> anyhow::Result<()> {
        // The password file must be readable by whoever runs initdb; it sits beside the cluster
        // directory (reachable by construction) and is removed right after.
        let parent = self.cluster.parent().ok_or_else(|| anyhow!("cluster dir has no parent"))?;
        let pw_tmp = parent.join(format!(".initdb-pw-{}", std::process::id()));
        write_private(&pw_tmp, self.password.as_bytes())?;
        if self.as_system_user {
            chown_to(&pw_tmp, &system_user()?)?;
        }
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&self.cluster)
            .args(["-U", SUPERUSER, "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"])
            .arg(format!("--pwfile={}", pw_tmp.display()));
        let result = self.run(cmd, "initdb");
        let _ = std::fs::remove_file(&pw_tmp);
        result
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='{}' -c max_connections=200 -c fsync=on",
            self.port,
            self.cluster.display()
        );
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.cluster).arg("-l").arg(self.cluster.join("postgres.log")).args(["-w", "-t", "60", "-o", &opts, "start"]);
        self.run(cmd, "pg_ctl start").context("could not start PostgreSQL (is another server using this data dir?)")
    }

    /// Stops a PostgreSQL that a killed run left running in this cluster (we hold the
    /// directory's lock, so no live process of ours uses it). `pg_ctl` finds it through the
    /// cluster's own `postmaster.pid` and checks it is that cluster's postmaster.
    fn stop_left_behind(&self) -> anyhow::Result<()> {
        if !self.cluster.join("postmaster.pid").exists() {
            return Ok(());
        }
        let mut status = self.command("pg_ctl");
        status.arg("-D").arg(&self.cluster).arg("status").stdout(Stdio::null()).stderr(Stdio::null());
        if status.status().map(|s| s.success()).unwrap_or(false) {
            tracing::warn!(cluster = %self.cluster.display(), "stopping the PostgreSQL an earlier run left running (it was killed)");
            self.stop().context("could not stop the PostgreSQL an earlier run left running")?;
        }
        Ok(())
    }

    /// Connection URL for database `db` as the cluster's superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}:{}@127.0.0.1:{}/{db}", self.password, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn cluster_dir(&self) -> &Path {
        &self.cluster
    }

    /// Fast shutdown (in-flight transactions are rolled back; committed data is safe).
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(&self.cluster).args(["-m", "fast", "-w", "stop"]);
        self.run(cmd, "pg_ctl stop")
    }

    /// Stops the cluster and deletes it when process `pid` exits (for test clusters, which
    /// have no teardown hook). The watchdog is a plain shell loop, detached from our stdio.
    pub fn remove_when_process_exits(&self, pid: u32, also_remove: &Path) -> anyhow::Result<()> {
        // pg_ctl finds the postmaster through the cluster's own lock file and checks it: no
        // process is ever signalled by a PID read elsewhere.
        let runner = if self.as_system_user { format!("runuser -u {SYSTEM_USER} -- ") } else { String::new() };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             cd /; {runner}'{pg_ctl}' -D '{c}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{c}' '{d}'",
            pg_ctl = self.bin.join("pg_ctl").display(),
            c = self.cluster.display(),
            d = also_remove.display()
        );
        Command::new("sh").args(["-c", &script]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        Ok(())
    }
}

/// `<clusters>/<tag>.owner`: which directory a fallback cluster belongs to.
fn owner_file(cluster: &Path) -> PathBuf {
    cluster.with_extension("owner")
}

fn write_owner(cluster: &Path, dir: &Path) -> anyhow::Result<()> {
    let path = owner_file(cluster);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(&*dir.to_string_lossy()) {
        return Ok(());
    }
    std::fs::write(&path, dir.as_os_str().as_encoded_bytes()).with_context(|| format!("write {}", path.display()))
}

/// Removes every fallback cluster whose directory is gone (or no longer points at it): stops its
/// PostgreSQL if one still runs, then deletes it. A cluster without an owner file (made by an
/// older version) is left alone: nothing says whose it is.
pub fn remove_orphaned_fallback_clusters(bin: &Path) {
    let Ok(entries) = std::fs::read_dir(FALLBACK_ROOT) else { return };
    for owner in entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "owner")) {
        let cluster = owner.with_extension("");
        let Ok(dir) = std::fs::read_to_string(&owner) else { continue };
        let points_back = std::fs::read_to_string(Path::new(dir.trim()).join("pg-location")).is_ok_and(|l| Path::new(l.trim()) == cluster);
        if points_back {
            continue;
        }
        if cluster.join("postmaster.pid").exists() {
            let _ = Command::new("runuser")
                .args(["-u", SYSTEM_USER, "--"])
                .arg(bin.join("pg_ctl"))
                .arg("-D")
                .arg(&cluster)
                .args(["-m", "immediate", "-w", "stop"])
                .current_dir("/")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if std::fs::remove_dir_all(&cluster).is_ok() || !cluster.exists() {
            let _ = std::fs::remove_file(&owner);
            tracing::info!(cluster = %cluster.display(), "removed a demo/test PostgreSQL cluster whose data dir is gone");
        }
    }
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

/// Writes `data` to `path` readable by the owner only (mode 0600).
pub fn write_private_file(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    write_private(path, data)
}
