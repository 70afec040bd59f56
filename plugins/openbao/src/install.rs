//! `strongroom-openbao-plugin install DIR`: copies this binary into an OpenBao/Vault plugin
//! directory and prints its sha256 for `bao plugin register`. It is how a Kubernetes init
//! container (from the distroless Strongroom image, which has no shell or `cp`) fills the
//! OpenBao pod's plugin directory.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub const NAME: &str = "strongroom-openbao-plugin";

pub fn run(dir: &Path) -> Result<String, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let bytes = std::fs::read(&me).map_err(|e| format!("cannot read {}: {e}", me.display()))?;
    let target = dir.join(NAME);
    // Written beside the target and renamed over it, so OpenBao never runs a half-written file.
    let partial = dir.join(format!(".{NAME}.partial"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&partial)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&partial, &target)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot install into {}: {e}", dir.display())
    })?;
    Ok(sha256_hex(&bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn install_copies_this_binary_executable_and_reports_its_sha() {
        let dir = std::env::temp_dir().join(format!("sr-plugin-install-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sha = run(&dir).unwrap();
        let installed = std::fs::read(dir.join(NAME)).unwrap();
        assert_eq!(sha, sha256_hex(&installed));
        assert_eq!(installed, std::fs::read(std::env::current_exe().unwrap()).unwrap());
        assert_eq!(std::fs::metadata(dir.join(NAME)).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(run(&dir.join("missing")).unwrap_err().contains("cannot install"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
