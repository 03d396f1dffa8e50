//! `weftctl get`: tables like kubectl's, `-o yaml|json|name`, and `-w`.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::Utc;
use futures::StreamExt;
use serde_json::Value;
use weft_api::printers::{self, Table};
use weft_api::{ResourceInfo, RESOURCES};
use weft_client::{ClientError, ListParams, WatchEvent};

use crate::cli::{GetArgs, OutputFormat};
use crate::kinds::{kind_ref, parse_targets, Target};
use crate::{output, Ctx, Outcome};

/// The namespace a request for `info` goes to: none for cluster-scoped kinds and for
/// lists across all namespaces.
pub fn scope<'a>(info: &ResourceInfo, namespace: &'a str, all_namespaces: bool) -> Option<&'a str> {
    (info.namespaced && !all_namespaces).then_some(namespace)
}

/// kubectl's message when nothing was printed.
pub fn no_resources_message(
    infos: &[&ResourceInfo],
    namespace: &str,
    all_namespaces: bool,
) -> String {
    if !all_namespaces && infos.iter().all(|i| i.namespaced) {
        format!("No resources found in {namespace} namespace.")
    } else {
        "No resources found".to_string()
    }
}

/// With several kinds in one table set, kubectl prefixes names with their kind.
pub fn prefix_names(info: &ResourceInfo, table: &mut Table) {
    if table.columns.first().map(|c| c.name) != Some("Name") {
        return;
    }
    let kind = kind_ref(info);
    for row in &mut table.rows {
        if let Some(cell) = row.cells.first_mut() {
            *cell = format!("{kind}/{cell}");
        }
    }
}

/// Fetches the objects of each target: listed when no names are given, else fetched one
/// by one (a missing one is reported and the rest still printed).
async fn fetch(
    ctx: &mut Ctx<'_>,
    targets: &[Target],
    all_namespaces: bool,
    params: &ListParams,
) -> Result<(Vec<(&'static ResourceInfo, Vec<Value>)>, bool)> {
    let mut ok = true;
    let mut groups = Vec::new();
    for t in targets {
        let ns = scope(t.info, &ctx.namespace, all_namespaces).map(str::to_string);
        let mut items = Vec::new();
        if t.names.is_empty() {
            items = ctx.client.list(t.info, ns.as_deref(), params).await?.items;
        } else {
            if all_namespaces && t.info.namespaced {
                bail!("a resource cannot be retrieved by name across all namespaces");
            }
            for name in &t.names {
                match ctx.client.get(t.info, ns.as_deref(), name).await {
                    Ok(v) => items.push(v),
                    Err(e) => {
                        ctx.report(&e)?;
                        ok = false;
                    }
                }
            }
        }
        let items = items
            .into_iter()
            .map(|v| output::with_type(t.info, v))
            .collect();
        groups.push((t.info, items));
    }
    Ok((groups, ok))
}

pub async fn run(ctx: &mut Ctx<'_>, args: &GetArgs) -> Result<Outcome> {
    let targets = parse_targets(&args.args)?;
    let params = ListParams {
        label_selector: args.selector.clone(),
        field_selector: args.field_selector.clone(),
        ..Default::default()
    };
    if args.watch {
        let [target] = targets.as_slice() else {
            bail!("you may only specify a single resource type with --watch");
        };
        return watch(ctx, target, args, &params).await;
    }
    let (groups, ok) = fetch(ctx, &targets, args.all_namespaces, &params).await?;
    let named = targets.iter().any(|t| !t.names.is_empty());
    match args.output {
        Some(OutputFormat::Yaml | OutputFormat::Json) => {
            let mut all: Vec<Value> = groups.into_iter().flat_map(|(_, items)| items).collect();
            let single = targets.len() == 1 && targets[0].names.len() == 1;
            let doc = if single && all.len() == 1 {
                all.remove(0)
            } else if named && all.is_empty() {
                // Every named object was missing; the errors said so.
                return Ok(Outcome::from_ok(ok));
            } else {
                output::list(all)
            };
            if args.output == Some(OutputFormat::Yaml) {
                output::yaml(ctx.out, &doc)?;
            } else {
                output::json(ctx.out, &doc)?;
            }
        }
        Some(OutputFormat::Name) => {
            for (info, items) in &groups {
                for v in items {
                    output::name(ctx.out, info, v)?;
                }
            }
        }
        Some(OutputFormat::Wide) | None => {
            let wide = args.output == Some(OutputFormat::Wide);
            let now = Utc::now();
            let several = groups.len() > 1;
            let mut printed = false;
            for (info, items) in &groups {
                if items.is_empty() {
                    continue;
                }
                let mut table = printers::table(info, items, now);
                if several {
                    prefix_names(info, &mut table);
                }
                if printed {
                    writeln!(ctx.out)?;
                }
                let with_ns = args.all_namespaces && info.namespaced;
                ctx.out
                    .write_all(printers::render(&table, wide, with_ns).as_bytes())?;
                printed = true;
            }
            if !printed && ok {
                let infos: Vec<&ResourceInfo> = targets.iter().map(|t| t.info).collect();
                writeln!(
                    ctx.err,
                    "{}",
                    no_resources_message(&infos, &ctx.namespace, args.all_namespaces)
                )?;
            }
        }
    }
    Ok(Outcome::from_ok(ok))
}

/// Prints objects as they change, after the current list, until interrupted. A watch the
/// server ends is resumed from the last resourceVersion seen.
async fn watch(
    ctx: &mut Ctx<'_>,
    target: &Target,
    args: &GetArgs,
    params: &ListParams,
) -> Result<Outcome> {
    let info = target.info;
    if args.all_namespaces && !target.names.is_empty() && info.namespaced {
        bail!("a resource cannot be retrieved by name across all namespaces");
    }
    let ns = scope(info, &ctx.namespace, args.all_namespaces).map(str::to_string);
    let wanted = |v: &Value| {
        target.names.is_empty()
            || v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| target.names.iter().any(|w| w == n))
    };
    let list = ctx.client.list(info, ns.as_deref(), params).await?;
    let mut rv = list.resource_version().to_string();
    let items: Vec<Value> = list
        .items
        .into_iter()
        .filter(|v| wanted(v))
        .map(|v| output::with_type(info, v))
        .collect();
    let mut printer = WatchPrinter {
        info,
        format: args.output,
        with_ns: args.all_namespaces && info.namespaced,
        widths: Vec::new(),
        header_done: false,
    };
    printer.print(ctx.out, &items)?;
    loop {
        let mut stream = ctx.client.watch(info, ns.as_deref(), params, &rv).await?;
        let mut saw_any = false;
        while let Some(event) = stream.next().await {
            saw_any = true;
            let obj = match event? {
                WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
                WatchEvent::Bookmark { resource_version } => {
                    rv = resource_version;
                    continue;
                }
                WatchEvent::Error(status) => return Err(ClientError::from_status(&status).into()),
            };
            if let Some(v) = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                rv = v.to_string();
            }
            if wanted(&obj) {
                printer.print(ctx.out, &[output::with_type(info, obj)])?;
            }
        }
        if !saw_any {
            // The server ended the watch at once; do not spin.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Prints watch output so rows stay aligned with the first table.
struct WatchPrinter {
    info: &'static ResourceInfo,
    format: Option<OutputFormat>,
    with_ns: bool,
    widths: Vec<usize>,
    header_done: bool,
}

impl WatchPrinter {
    fn print(&mut self, out: &mut dyn Write, objs: &[Value]) -> Result<()> {
        if objs.is_empty() {
            return Ok(());
        }
        match self.format {
            Some(OutputFormat::Yaml) => {
                for o in objs {
                    writeln!(out, "---")?;
                    output::yaml(out, o)?;
                }
            }
            Some(OutputFormat::Json) => {
                for o in objs {
                    output::json(out, o)?;
                }
            }
            Some(OutputFormat::Name) => {
                for o in objs {
                    output::name(out, self.info, o)?;
                }
            }
            Some(OutputFormat::Wide) | None => {
                let table = printers::table(self.info, objs, Utc::now());
                let wide = self.format == Some(OutputFormat::Wide);
                let text = printers::render_lines(
                    &table,
                    wide,
                    self.with_ns,
                    !self.header_done,
                    &mut self.widths,
                );
                self.header_done = true;
                out.write_all(text.as_bytes())?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// `weftctl api-resources`: the kinds served, as kubectl lists them.
pub fn api_resources(ctx: &mut Ctx<'_>) -> Result<()> {
    let mut text = String::from("NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND\n");
    for r in RESOURCES {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            r.plural,
            r.short_names.join(","),
            r.api_version(),
            r.namespaced,
            r.kind
        ));
    }
    ctx.out
        .write_all(printers::tabwrite(&text, 6, 3).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weft_api::resources;

    #[test]
    fn empty_messages_match_kubectl() {
        assert_eq!(
            no_resources_message(&[&resources::SERVICE], "default", false),
            "No resources found in default namespace."
        );
        assert_eq!(
            no_resources_message(&[&resources::SERVICE], "default", true),
            "No resources found"
        );
        assert_eq!(
            no_resources_message(&[&resources::NODE], "default", false),
            "No resources found"
        );
    }

    #[test]
    fn scope_rules() {
        assert_eq!(scope(&resources::SERVICE, "a", false), Some("a"));
        assert_eq!(scope(&resources::SERVICE, "a", true), None);
        assert_eq!(scope(&resources::NODE, "a", false), None);
    }

    #[test]
    fn several_kinds_prefix_names() {
        let now = Utc::now();
        let mut t = printers::table(
            &resources::SERVICE,
            &[json!({"metadata": {"name": "web"}})],
            now,
        );
        prefix_names(&resources::SERVICE, &mut t);
        assert_eq!(t.rows[0].cells[0], "service/web");
        let mut t = printers::table(
            &resources::INGRESS,
            &[json!({"metadata": {"name": "web"}})],
            now,
        );
        prefix_names(&resources::INGRESS, &mut t);
        assert_eq!(t.rows[0].cells[0], "ingress.networking.k8s.io/web");
    }
}
