//! `weft router`: the path router for DNS objects and Ingresses. Routes come from the API
//! server (informers on DNS objects, Ingresses, Services and Endpoints; each burst of
//! changes rebuilds the table once and swaps it in whole) or from a routes file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use tokio::task::JoinHandle;
use weft_api::core::{Endpoints, Service};
use weft_api::networking::Ingress;
use weft_api::weft::Dns;
use weft_client::{Client, Informer, Kubeconfig, ListParams};
use weft_router::{ForwardMode, RouteTable, Routes, ServerConfig, Sources, Workers};

/// How long to gather changes before rebuilding the table: one rebuild per burst, and
/// well inside the promise that a change applies within a second.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How often a routes file is checked for changes.
const FILE_POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Forward {
    /// Straight to the Service's ready endpoints (round-robin, pooled connections).
    Endpoints,
    /// To the Service's ClusterIP, leaving the choice to the service proxy.
    ClusterIp,
}

/// Examples shown by `weft router --help`.
const EXAMPLES: &str = "\
Serves every DNS object (weft.io/v1) and Ingress (networking.k8s.io/v1): a request for
http://<host>/<path> goes to the Service port the object names. A DNS object's matched
path prefix is stripped (/wear/a?q=1 -> /a?q=1, /wear -> /); Ingress paths are not.
HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on the same port.

Examples:
  weft router --kubeconfig node-1.kubeconfig
  curl -H 'Host: shop.example.com' http://127.0.0.1:10080/wear/

  # Without an API server: DNS, Ingress, Service and Endpoints objects in one YAML
  # file, reloaded when it changes.
  weft router --routes-file routes.yaml --listen 127.0.0.1:8080";

/// `weft router` options; see [`EXAMPLES`].
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Credentials for the API server, whose DNS objects, Ingresses, Services and
    /// Endpoints are watched.
    #[arg(
        long,
        env = "KUBECONFIG",
        required_unless_present = "routes_file",
        conflicts_with = "routes_file"
    )]
    kubeconfig: Option<PathBuf>,
    /// Take routes from this YAML file instead of the API server.
    #[arg(long)]
    routes_file: Option<PathBuf>,
    /// Address and port to serve HTTP on.
    #[arg(long, default_value = "0.0.0.0:10080")]
    listen: SocketAddr,
    /// Worker threads, each with its own listening socket (SO_REUSEPORT) and backend
    /// connections, as nginx's worker processes (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Where requests for a Service go.
    #[arg(long, value_enum, default_value = "endpoints")]
    forward: Forward,
    /// Time allowed to connect to a backend (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Time allowed from sending a request to a backend until its response headers arrive.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    response_header_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 5s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

pub async fn run(args: Args) -> Result<()> {
    let options = RouterOptions {
        listen: args.listen,
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        forward: match args.forward {
            Forward::Endpoints => ForwardMode::Endpoints,
            Forward::ClusterIp => ForwardMode::ClusterIp,
        },
        config: ServerConfig {
            connect_timeout: args.connect_timeout,
            response_header_timeout: args.response_header_timeout,
            ..Default::default()
        },
    };
    match (&args.routes_file, &args.kubeconfig) {
        (Some(file), _) => from_file(file, options).await,
        (None, Some(path)) => {
            let kubeconfig = Kubeconfig::load(path)
                .with_context(|| format!("--kubeconfig {}", path.display()))?;
            let client = Client::from_kubeconfig(&kubeconfig).context("building the API client")?;
            start(client, options).await?.await.context("router task")?
        }
        (None, None) => bail!("one of --kubeconfig and --routes-file is required"),
    }
}

/// How to serve, whoever starts the router (`weft router` or `weft node`).
#[derive(Debug, Clone)]
pub struct RouterOptions {
    pub listen: SocketAddr,
    /// Worker threads, at least one.
    pub workers: usize,
    pub forward: ForwardMode,
    pub config: ServerConfig,
}

impl RouterOptions {
    fn spawn(&self, routes: &Routes) -> Result<Workers> {
        let workers = weft_router::spawn_workers(
            self.listen,
            self.workers,
            routes.clone(),
            self.config.clone(),
        )?;
        tracing::info!(listen = %workers.local_addr(), workers = self.workers, "weft router serving");
        Ok(workers)
    }
}

/// Runs the router on the API server's objects until SIGINT or SIGTERM (or until the
/// task is aborted, which stops the workers too). It listens once the first complete
/// table is in place, so it never answers 404 for a host only because it has not read
/// the objects yet.
pub async fn start(client: Client, options: RouterOptions) -> Result<JoinHandle<Result<()>>> {
    Ok(tokio::spawn(from_api(client, options)))
}

async fn stop(workers: Workers) {
    let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
}

/// Resolves when a worker thread has died (checked every half second).
async fn worker_exit(workers: &Workers) {
    while !workers.any_exited() {
        tokio::time::sleep(FILE_POLL).await;
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_file(path: &Path, mode: ForwardMode) -> Result<(RouteTable, Option<SystemTime>)> {
    let stamp = modified(path);
    let objects = weft_router::source::load_file(path).context("--routes-file")?;
    Ok((RouteTable::build(&objects.sources(), mode), stamp))
}

async fn from_file(file: &Path, options: RouterOptions) -> Result<()> {
    let mut report = Report::default();
    let (table, stamp) = load_file(file, options.forward)?;
    report.log(&table);
    let routes = Routes::new(table);
    let workers = options.spawn(&routes)?;
    let result = watch_file(file, stamp, options.forward, &routes, &mut report, &workers).await;
    stop(workers).await;
    result
}

/// Reloads the file when its modification time changes; a broken edit keeps the routes
/// in use and says why.
async fn watch_file(
    path: &Path,
    mut stamp: Option<SystemTime>,
    mode: ForwardMode,
    routes: &Routes,
    report: &mut Report,
    workers: &Workers,
) -> Result<()> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FILE_POLL) => {}
            _ = worker_exit(workers) => bail!("a router worker thread exited"),
            _ = super::shutdown_signal() => return Ok(()),
        }
        let now = modified(path);
        if now == stamp {
            continue;
        }
        stamp = now;
        match load_file(path, mode) {
            Ok((table, _)) => {
                report.log(&table);
                routes.store(table);
                tracing::info!(file = %path.display(), "routes reloaded");
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "routes file not reloaded; keeping the routes in use"
            ),
        }
    }
}

async fn from_api(client: Client, options: RouterOptions) -> Result<()> {
    let mode = options.forward;
    let mut report = Report::default();
    let (dnses, mut d_rx, _d) =
        Informer::new(client.api::<Dns>(None), ListParams::default()).spawn(64);
    let (ingresses, mut i_rx, _i) =
        Informer::new(client.api::<Ingress>(None), ListParams::default()).spawn(64);
    let (services, mut s_rx, _s) =
        Informer::new(client.api::<Service>(None), ListParams::default()).spawn(256);
    let (endpoints, mut e_rx, _e) =
        Informer::new(client.api::<Endpoints>(None), ListParams::default()).spawn(256);
    // Serve only complete routes: a half-synced cache would answer 404 for real hosts.
    dnses.wait_synced().await;
    ingresses.wait_synced().await;
    services.wait_synced().await;
    endpoints.wait_synced().await;
    let build = |report: &mut Report| {
        let (d, i, s, e) = (
            dnses.list(),
            ingresses.list(),
            services.list(),
            endpoints.list(),
        );
        let sources = Sources {
            dnses: &d,
            ingresses: &i,
            services: &s,
            endpoints: &e,
        };
        let table = RouteTable::build(&sources, mode);
        report.log(&table);
        table
    };
    let routes = Routes::new(build(&mut report));
    let workers = options.spawn(&routes)?;
    loop {
        tokio::select! {
            Some(_) = d_rx.recv() => {}
            Some(_) = i_rx.recv() => {}
            Some(_) = s_rx.recv() => {}
            Some(_) = e_rx.recv() => {}
            _ = worker_exit(&workers) => {
                stop(workers).await;
                bail!("a router worker thread exited");
            }
            _ = super::shutdown_signal() => {
                stop(workers).await;
                return Ok(());
            }
        }
        tokio::time::sleep(DEBOUNCE).await;
        while d_rx.try_recv().is_ok()
            || i_rx.try_recv().is_ok()
            || s_rx.try_recv().is_ok()
            || e_rx.try_recv().is_ok()
        {}
        routes.store(build(&mut report));
    }
}

/// Logs conflicts and skipped rules when they change, not on every rebuild.
#[derive(Default)]
struct Report {
    last: Vec<String>,
    routes: Option<usize>,
}

impl Report {
    fn log(&mut self, table: &RouteTable) {
        let now: Vec<String> = table
            .conflicts
            .iter()
            .map(|c| format!("conflict: {c}"))
            .chain(table.problems.iter().map(|p| format!("skipped: {p}")))
            .collect();
        for line in now.iter().filter(|l| !self.last.contains(l)) {
            tracing::warn!("{line}");
        }
        let routes = table.routes().len();
        if self.routes != Some(routes) {
            tracing::info!(routes, "route table updated");
        } else {
            tracing::debug!(routes, "route table rebuilt");
        }
        self.routes = Some(routes);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5h").unwrap_err().contains("unit"));
        assert!(parse_duration("x").is_err());
    }
}
