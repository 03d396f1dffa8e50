//! Running the `nft` command, shared by the node agent's masquerade table and the service
//! proxy's tables: nftables rules are written as nft scripts, applied as one transaction.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// nft could not be started or spoken to.
    #[error("running {command} (install the nftables package): {message}")]
    Run { command: String, message: String },
    /// nft ran and refused.
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// Runs `nft ARGS` (inside the named netns through `ip netns exec` when given), feeding
/// `stdin`; returns stdout.
pub async fn nft(
    netns: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, NftError> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => tokio::process::Command::new("nft"),
    };
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let command = format!("nft {}", args.join(" "));
    let err = |e: std::io::Error| NftError::Run {
        command: command.clone(),
        message: e.to_string(),
    };
    let mut child = cmd.spawn().map_err(err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(err)?;
        // Dropping the pipe closes it: nft reads to end of file.
    }
    let out = child.wait_with_output().await.map_err(err)?;
    if !out.status.success() {
        return Err(NftError::Failed {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
