//! A private PostgreSQL cluster run from the system binaries (initdb, pg_ctl, postgres), for the
//! demo and the test suite. Invariants: it listens on 127.0.0.1 only, with a random password
//! (scram-sha-256), never trust auth. PostgreSQL refuses to run as root, so when we are root the
//! cluster runs as the `postgres` system user; if that user cannot reach the requested directory
//! (a 0700 home or temp dir), the cluster lives under `/var/lib/strongroom/clusters/` instead and
//! `<dir>/pg-location` says where.

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
}

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
        let bin = find_bin_dir()?;
        let as_system_user = is_root();
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
        let pg = LocalPg { cluster, bin, port: free_port()?, password, as_system_user };
        if fresh {
            pg.initdb()?;
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
            return Ok(PathBuf::from(saved.trim()));
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
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             kill -QUIT $(head -1 '{c}/postmaster.pid' 2>/dev/null) 2>/dev/null; sleep 1; rm -rf '{c}' '{d}'",
            c = self.cluster.display(),
            d = also_remove.display()
        );
        Command::new("sh").args(["-c", &script]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        Ok(())
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
