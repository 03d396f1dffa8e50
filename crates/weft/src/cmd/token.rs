//! `weft token create`: a token (and kubeconfig) for a node agent or another user.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Manage API tokens.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Create (or show) the token of a user and write a kubeconfig for it.
    ///
    /// Example:
    ///   weft token create --data-dir /var/lib/weft --node node-1 --kubeconfig-out node-1.kubeconfig
    #[command(verbatim_doc_comment)]
    Create {
        /// The API server's data dir (holds tokens.json and the CA).
        #[arg(long, default_value = "/var/lib/weft")]
        data_dir: PathBuf,
        /// A node agent's token: user `system:node:NAME`, group `system:nodes`.
        #[arg(long, conflicts_with = "user")]
        node: Option<String>,
        /// Any other user name.
        #[arg(long)]
        user: Option<String>,
        /// Write a kubeconfig here (server and CA taken from admin.kubeconfig).
        #[arg(long)]
        kubeconfig_out: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        TokenCommand::Create {
            data_dir,
            node,
            user,
            kubeconfig_out,
        } => {
            let (user, groups): (String, &[&str]) = match (node, user) {
                (Some(n), _) => (format!("system:node:{n}"), &["system:nodes"]),
                (None, Some(u)) => (u, &[]),
                (None, None) => anyhow::bail!("give --node NAME or --user NAME"),
            };
            let token = weft_apiserver::auth::ensure_token(&data_dir, &user, groups)?;
            match kubeconfig_out {
                Some(path) => {
                    let admin_path = data_dir.join("admin.kubeconfig");
                    let admin = weft_client::kubeconfig::Kubeconfig::load(&admin_path)
                        .with_context(|| {
                            format!(
                                "reading {} (start the API server once first)",
                                admin_path.display()
                            )
                        })?;
                    let cluster = admin
                        .client_config(None)
                        .with_context(|| format!("reading {}", admin_path.display()))?;
                    weft_client::kubeconfig::Kubeconfig::new_single(
                        &cluster.server,
                        cluster.ca_pem.as_deref(),
                        &token,
                        "weft",
                    )
                    .write_to(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {} for user {user}", path.display());
                }
                None => println!("{token}"),
            }
            Ok(())
        }
    }
}
