//! Command-line arguments, kubectl's names and shapes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "weftctl",
    version,
    about = "Control a Weft cluster: apply manifests, list and inspect objects, read pod logs.",
    after_help = "\
Examples:
  weftctl apply -f web.yaml
  weftctl get svc -A
  weftctl describe pod web-0
  weftctl logs web-0 -f

The kubeconfig is taken from --kubeconfig, then $KUBECONFIG, then ~/.kube/config,
then /var/lib/weft/admin.kubeconfig."
)]
pub struct Cli {
    /// Path to the kubeconfig file.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use instead of current-context.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace for this request (default: the context's, else "default").
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from manifest files.
    #[command(after_help = "\
Examples:
  # Apply one file, every .yaml/.yml/.json file of a directory, or stdin
  weftctl apply -f web.yaml
  weftctl apply -f manifests/
  cat web.yaml | weftctl apply -f -")]
    Apply(ApplyArgs),

    /// List objects as a table, or print them as YAML or JSON.
    #[command(after_help = "\
Examples:
  weftctl get svc
  weftctl get pods -A -o wide
  weftctl get svc/web -o yaml
  weftctl get pods -l app=web -w
  weftctl get svc,ep -n shop")]
    Get(GetArgs),

    /// Show the details of objects, with their events.
    #[command(after_help = "\
Examples:
  weftctl describe svc web
  weftctl describe node/node1
  weftctl describe pods -l app=web")]
    Describe(DescribeArgs),

    /// Delete objects by kind and name, or those in manifest files.
    #[command(after_help = "\
Examples:
  weftctl delete svc web
  weftctl delete pod/web-0 pod/web-1
  weftctl delete -f web.yaml")]
    Delete(DeleteArgs),

    /// Print the logs of a pod's container.
    #[command(after_help = "\
Examples:
  weftctl logs web-0
  weftctl logs web-0 -c sidecar -f")]
    Logs(LogsArgs),

    /// List the kinds the cluster serves, with their short names.
    #[command(
        name = "api-resources",
        after_help = "\
Examples:
  weftctl api-resources"
    )]
    ApiResources,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them, or '-' for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Wide,
    Yaml,
    Json,
    Name,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// KIND[,KIND...] [NAME...], or KIND/NAME...
    #[arg(required = true, value_name = "KIND [NAME...]")]
    pub args: Vec<String>,

    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,

    /// Label selector, e.g. app=web,tier!=db.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Field selector, e.g. spec.nodeName=node1.
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,

    /// After listing, print a row for every change.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// KIND [NAME...], or KIND/NAME...
    #[arg(required = true, value_name = "KIND [NAME...]")]
    pub args: Vec<String>,

    /// Describe every object across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// KIND NAME..., or KIND/NAME...
    #[arg(value_name = "KIND [NAME...]")]
    pub args: Vec<String>,

    /// Delete the objects a manifest file (or directory, or '-') describes.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Treat an object that does not exist as deleted.
    #[arg(long)]
    pub ignore_not_found: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The pod's name (or pod/NAME).
    pub pod: String,

    /// The container, when the pod has several.
    #[arg(short = 'c', long)]
    pub container: Option<String>,

    /// Keep streaming as the container writes.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli =
            Cli::try_parse_from(["weftctl", "get", "svc", "-n", "shop", "-o", "wide"]).unwrap();
        assert_eq!(cli.namespace.as_deref(), Some("shop"));
        match cli.command {
            Command::Get(g) => {
                assert_eq!(g.args, ["svc"]);
                assert_eq!(g.output, Some(OutputFormat::Wide));
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["weftctl", "-n", "x", "apply", "-f", "a.yaml", "-f", "b/"])
            .unwrap();
        match cli.command {
            Command::Apply(a) => assert_eq!(a.files.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
