//! `weftctl`, the Weft CLI, as a library: every command is a function over a [`Ctx`]
//! holding the client and the output streams, so tests drive commands against a real or
//! fake API server and read what they printed. `main.rs` only parses arguments, builds
//! the client from the kubeconfig and calls [`run`].

use std::io::{Read, Write};

use weft_client::Client;

pub mod apply;
pub mod cli;
pub mod delete;
pub mod describe;
pub mod get;
pub mod kinds;
pub mod logs;
pub mod manifests;
pub mod output;

use cli::{Cli, Command};

/// What a command runs with.
pub struct Ctx<'a> {
    pub client: Client,
    /// The namespace for namespaced kinds: `-n`, else the context's, else `default`.
    pub namespace: String,
    /// Whether `-n` was given: a manifest naming another namespace is then an error.
    pub namespace_explicit: bool,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// Read by `-f -`.
    pub stdin: &'a mut dyn Read,
}

impl<'a> Ctx<'a> {
    /// A context for `cli`'s namespace flags.
    pub fn new(
        cli: &Cli,
        client: Client,
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
        stdin: &'a mut dyn Read,
    ) -> Self {
        let namespace = cli
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| client.default_namespace().to_string());
        Ctx {
            client,
            namespace,
            namespace_explicit: cli.namespace.is_some(),
            out,
            err,
            stdin,
        }
    }

    /// Reports one failed item on stderr (`error: ...`) without stopping the command.
    pub fn report(&mut self, message: impl std::fmt::Display) -> std::io::Result<()> {
        writeln!(self.err, "error: {message}")
    }
}

/// Whether every item of a command succeeded. Commands that act on several objects go
/// on past a failure, report it, and end with `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
}

impl Outcome {
    pub fn from_ok(ok: bool) -> Self {
        if ok {
            Outcome::Ok
        } else {
            Outcome::Failed
        }
    }
}

/// Runs the command; returns the process exit code. Errors are printed as one
/// `error: ...` line on stderr.
pub async fn run(cli: &Cli, ctx: &mut Ctx<'_>) -> i32 {
    let result = match &cli.command {
        Command::Apply(args) => apply::run(ctx, args).await,
        Command::Get(args) => get::run(ctx, args).await,
        Command::Describe(args) => describe::run(ctx, args).await,
        Command::Delete(args) => delete::run(ctx, args).await,
        Command::Logs(args) => logs::run(ctx, args).await,
        Command::ApiResources => get::api_resources(ctx).map(|()| Outcome::Ok),
    };
    let _ = ctx.out.flush();
    match result {
        Ok(Outcome::Ok) => 0,
        Ok(Outcome::Failed) => 1,
        // `weftctl get pods | head`: the reader left; nothing to report.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            let _ = ctx.report(error_chain(&e));
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes on one line, `outer: inner: root`, leaving out a cause whose
/// text the line already holds (client errors already print their causes).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_dedups_causes() {
        let root = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(root).context("reading web.yaml");
        assert_eq!(error_chain(&e), "reading web.yaml: no such file");
        let e = anyhow::anyhow!("a: b").context("outer");
        assert_eq!(error_chain(&e), "outer: a: b");
    }
}
