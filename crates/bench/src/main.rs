//! `weft-bench`: benchmarks that measure and report; they assert nothing.
//!
//!   cargo run --release -p weft-bench -- apiserver --store redb
//!   cargo run --release -p weft-bench -- apiserver --store etcd

mod apiserver;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weft-bench",
    about = "Weft benchmarks (report figures, assert nothing)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// API server: creates/s with N Services stored, list latency, watch delivery latency.
    Apiserver(apiserver::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Apiserver(args) => apiserver::run(args).await,
        }
    })
}
