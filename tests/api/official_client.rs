//! The official Databunker Pro Python client (PyPI `databunkerpro`) against a running server.
//! `scripts/test.sh` installs it into `.venv`; `STRONGROOM_TEST_PYTHON` may point elsewhere.
//! A missing interpreter or package fails this test: it is never skipped.

use std::path::PathBuf;

use crate::helpers::*;

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("STRONGROOM_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// Runs a pytest file of tests/python with `envs`, fails the test (showing its output) unless
/// it passes, and returns its output.
pub async fn pytest(what: &str, file: &str, envs: &[(&str, &str)]) -> String {
    let py = python();
    assert!(py.exists(), "{} not found: run scripts/test.sh (it creates .venv with databunkerpro)", py.display());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(file);
    let out = tokio::process::Command::new(&py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&script)
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{what} (pytest): {}", stdout.lines().last().unwrap_or(""));
    crate::helpers::record_suite_count(&format!("{what} (pytest)"), stdout.lines().last().unwrap_or(""));
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("passed") && !stdout.contains("failed"), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_drives_tenants_users_and_audit() {
    let app = TestApp::spawn().await;
    let envs = [("STRONGROOM_URL", app.base.as_str()), ("STRONGROOM_ROOT_TOKEN", app.root_token.as_str())];
    pytest("official client", "test_official_client.py", &envs).await;
}

/// Every public method of the Python SDK against a live server (tests/python/test_sdk_every_method.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_of_the_official_python_sdk_is_answered() {
    let app = TestApp::spawn().await;
    let envs = [("STRONGROOM_URL", app.base.as_str()), ("STRONGROOM_ROOT_TOKEN", app.root_token.as_str())];
    pytest("python sdk, every method", "test_sdk_every_method.py", &envs).await;
}
