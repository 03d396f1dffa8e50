//! `weft`: every Weft daemon in one binary: `weft apiserver`, `weft node`, `weft token`,
//! `weft dns`, `weft proxy`, `weft echo-server`, and (as it lands) `weft router`.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Weft: native Kubernetes-style cluster networking"
)]
struct Cli {
    /// Log filter, e.g. `info`, `weft_apiserver=debug` (also $RUST_LOG).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Apiserver(cmd::apiserver::Args),
    /// Run the node agent: overlay, pod networks, pods.
    Node(cmd::node::Args),
    /// Serve cluster DNS (the Kubernetes DNS specification) from the API's objects.
    Dns(cmd::dns::Args),
    /// Program Services' ClusterIPs and NodePorts into the kernel.
    Proxy(cmd::proxy::Args),
    /// Route HTTP by host and path to Services: DNS objects and Ingresses.
    Router(cmd::router::Args),
    /// Manage API tokens (e.g. a node agent's).
    Token(cmd::token::Args),
    /// A tiny HTTP server for testing pod networking (like agnhost netexec).
    EchoServer(cmd::echo_server::Args),
}

fn main() -> std::process::ExitCode {
    // The container launcher changes namespaces, which only works in a single-threaded
    // process: it must run before anything (clap, tracing, tokio) starts threads.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == weft_agent::pod_exec::SUBCOMMAND)
    {
        weft_agent::pod_exec_main(std::env::args_os().skip(2));
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Apiserver(args) => cmd::apiserver::run(args).await,
            Command::Node(args) => cmd::node::run(args).await,
            Command::Dns(args) => cmd::dns::run(args).await,
            Command::Proxy(args) => cmd::proxy::run(args).await,
            Command::Router(args) => cmd::router::run(args).await,
            Command::Token(args) => cmd::token::run(args),
            Command::EchoServer(args) => cmd::echo_server::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
