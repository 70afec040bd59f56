//! The npm modules @databunker/store and @databunker/session-store against a live server
//! (tests/node/v1_clients.js; `scripts/test.sh` runs `npm ci` in tests/node). Never skipped:
//! missing modules fail the test.

use std::path::PathBuf;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databunkers_npm_modules_keep_users_app_records_consents_and_express_sessions_in_the_vault() {
    let app = TestApp::spawn().await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(dir.join("node_modules/@databunker/store").exists(), "run scripts/test.sh (it runs npm ci in tests/node)");
    let out = tokio::process::Command::new("node")
        .arg("v1_clients.js")
        .current_dir(&dir)
        .env("STRONGROOM_URL", &app.base)
        .env("STRONGROOM_ROOT_TOKEN", &app.root_token)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let last = stdout.lines().last().unwrap_or("").to_string();
    eprintln!("{last}");
    crate::helpers::record_suite_count("v1 node clients", last.trim_start_matches("v1 node clients: "));
    assert!(out.status.success(), "node clients failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(last.starts_with("v1 node clients: ") && last.ends_with(" checks passed"), "{stdout}");
}
