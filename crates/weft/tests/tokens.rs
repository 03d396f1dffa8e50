//! `weft token create` mints a node's token and kubeconfig that the running API server
//! accepts at once, with no restart.

mod common;

use std::process::Command;

use common::{free_port, ApiServerProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_token_works_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = ApiServerProcess::start(&data_dir, free_port());
    server.wait_ready().await;
    let out_path = dir.path().join("node-1.kubeconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["token", "create", "--node", "node-1", "--data-dir"])
        .arg(&data_dir)
        .arg("--kubeconfig-out")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_path).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_ne!(token, server.token, "a node gets its own token");
    assert!(
        text.contains(&server.url),
        "the node kubeconfig names the server"
    );
    let resp = server
        .client()
        .get(format!("{}/api/v1/nodes", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Asking again returns the same token rather than minting another.
    let again = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["token", "create", "--node", "node-1", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), token);
    // No name given: a clear error, not a panic.
    let bad = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["token", "create", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--node NAME or --user NAME"));
}
