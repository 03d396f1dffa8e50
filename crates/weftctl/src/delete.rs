//! `weftctl delete`: by kind and name, or every object of manifest files.

use anyhow::{bail, Result};
use weft_api::ResourceInfo;

use crate::apply::target_namespace;
use crate::cli::DeleteArgs;
use crate::get::scope;
use crate::kinds::{kind_ref, parse_targets};
use crate::manifests::{parse_source, read_sources};
use crate::{error_chain, Ctx, Outcome};

/// `service "web" deleted`.
pub fn deleted_message(info: &ResourceInfo, name: &str) -> String {
    format!("{} {name:?} deleted", kind_ref(info))
}

pub async fn run(ctx: &mut Ctx<'_>, args: &DeleteArgs) -> Result<Outcome> {
    match (args.files.is_empty(), args.args.is_empty()) {
        (false, false) => bail!("specify either -f FILE or KIND NAME..., not both"),
        (true, true) => bail!("you must provide one or more resources by argument or filename"),
        (false, true) => delete_files(ctx, args).await,
        (true, false) => delete_named(ctx, args).await,
    }
}

async fn delete_named(ctx: &mut Ctx<'_>, args: &DeleteArgs) -> Result<Outcome> {
    let targets = parse_targets(&args.args)?;
    if let Some(t) = targets.iter().find(|t| t.names.is_empty()) {
        // Deleting every object of a kind by accident is too easy; kubectl wants --all.
        bail!(
            "resource(s) were provided, but no name was specified: weftctl delete {} NAME",
            t.info.plural
        );
    }
    let mut ok = true;
    for t in &targets {
        let ns = scope(t.info, &ctx.namespace, false).map(str::to_string);
        for name in &t.names {
            ok &= delete_one(
                ctx,
                t.info,
                ns.as_deref(),
                name,
                args.ignore_not_found,
                None,
            )
            .await?;
        }
    }
    Ok(Outcome::from_ok(ok))
}

async fn delete_files(ctx: &mut Ctx<'_>, args: &DeleteArgs) -> Result<Outcome> {
    let sources = read_sources(&args.files, ctx.stdin)?;
    let mut ok = true;
    for src in &sources {
        for doc in parse_source(src) {
            let m = match &doc.manifest {
                Ok(m) => m,
                Err(message) => {
                    ctx.report(doc.error(message))?;
                    ok = false;
                    continue;
                }
            };
            let ns = match target_namespace(m, &ctx.namespace, ctx.namespace_explicit) {
                Ok(ns) => ns,
                Err(e) => {
                    ctx.report(doc.error(error_chain(&e)))?;
                    ok = false;
                    continue;
                }
            };
            let label = doc.label();
            ok &= delete_one(
                ctx,
                m.info,
                ns.as_deref(),
                &m.name,
                args.ignore_not_found,
                Some(&label),
            )
            .await?;
        }
    }
    Ok(Outcome::from_ok(ok))
}

/// Deletes one object and reports the outcome; returns whether it went well. `label`
/// prefixes errors about an object that came from a manifest.
async fn delete_one(
    ctx: &mut Ctx<'_>,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    ignore_not_found: bool,
    label: Option<&str>,
) -> Result<bool> {
    match ctx.client.delete(info, ns, name).await {
        Ok(_) => {
            writeln!(ctx.out, "{}", deleted_message(info, name))?;
            Ok(true)
        }
        Err(e) if ignore_not_found && e.is_not_found() => Ok(true),
        Err(e) => {
            match label {
                Some(l) => ctx.report(format!("{l}: {e}"))?,
                None => ctx.report(&e)?,
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::resources;

    #[test]
    fn messages_match_kubectl() {
        assert_eq!(
            deleted_message(&resources::SERVICE, "web"),
            "service \"web\" deleted"
        );
        assert_eq!(
            deleted_message(&resources::INGRESS, "web"),
            "ingress.networking.k8s.io \"web\" deleted"
        );
    }
}
