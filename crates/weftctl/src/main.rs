//! The `weftctl` binary: parse arguments, connect, run one command. Everything else is in
//! the library so tests can run commands against a server.

use std::process::ExitCode;

use clap::Parser;
use weft_client::{Client, Kubeconfig};
use weftctl::cli::Cli;
use weftctl::{error_chain, run, Ctx};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    let client = match connect(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut stdin = std::io::stdin().lock();
    let code = runtime.block_on(async {
        let mut ctx = Ctx::new(&cli, client, &mut out, &mut err, &mut stdin);
        run(&cli, &mut ctx).await
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The client for the kubeconfig's (or `--context`'s) cluster.
fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::load_default(cli.kubeconfig.as_deref())?;
    let config = kubeconfig.client_config(cli.context.as_deref())?;
    Ok(Client::from_config(&config)?)
}
