//! Resolving what the user typed (`svc`, `pods`, `ingress.networking.k8s.io`,
//! `svc/web`) into resources, and printing resources the way kubectl names them.

use anyhow::{bail, Result};
use weft_api::resources::{self, ResourceInfo};

/// The resource a user-typed kind names: plural, singular, kind or short name, optionally
/// qualified by group (`ingresses.networking.k8s.io`). Case-insensitive.
pub fn resolve_kind(name: &str) -> Result<&'static ResourceInfo> {
    match resources::by_name(name) {
        Some(info) => Ok(info),
        None => bail!("the server doesn't have a resource type {name:?}"),
    }
}

/// kubectl's name for a resource in messages: the lower-case kind, qualified by group
/// outside the core group: `service`, `ingress.networking.k8s.io`, `dns.weft.io`.
pub fn kind_ref(info: &ResourceInfo) -> String {
    let kind = info.kind.to_ascii_lowercase();
    if info.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", info.group)
    }
}

/// `service/web`: what `apply` and `-o name` print.
pub fn object_ref(info: &ResourceInfo, name: &str) -> String {
    format!("{}/{name}", kind_ref(info))
}

/// One kind and the names asked for (none: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub info: &'static ResourceInfo,
    pub names: Vec<String>,
}

/// Parses `get`/`describe`/`delete` arguments the way kubectl does: either
/// `KIND[,KIND...] [NAME...]`, or only `KIND/NAME` arguments. Targets keep the order in
/// which kinds first appear.
pub fn parse_targets(args: &[String]) -> Result<Vec<Target>> {
    let Some(first) = args.first() else {
        bail!("you must specify the type of resource (e.g. `weftctl get svc`); `weftctl api-resources` lists them");
    };
    let mut targets: Vec<Target> = Vec::new();
    if first.contains('/') {
        for arg in args {
            let Some((kind, name)) = arg.split_once('/') else {
                bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'weftctl get resource/<resource_name>' instead of 'weftctl get resource resource/<resource_name>')");
            };
            if name.is_empty() || name.contains('/') {
                bail!(
                    "arguments in resource/name form must have a single resource and name: {arg:?}"
                );
            }
            let info = resolve_kind(kind)?;
            match targets.iter_mut().find(|t| std::ptr::eq(t.info, info)) {
                Some(t) => t.names.push(name.to_string()),
                None => targets.push(Target {
                    info,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(targets);
    }
    let names: Vec<String> = args[1..].to_vec();
    if let Some(bad) = names.iter().find(|n| n.contains('/')) {
        bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (got {bad:?} after {first:?})");
    }
    for kind in first.split(',').filter(|k| !k.is_empty()) {
        let info = resolve_kind(kind)?;
        if !targets.iter().any(|t| std::ptr::eq(t.info, info)) {
            targets.push(Target {
                info,
                names: names.clone(),
            });
        }
    }
    if targets.is_empty() {
        bail!("you must specify the type of resource");
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn short_plural_singular_and_kind_names() {
        for (typed, kind) in [
            ("svc", "Service"),
            ("services", "Service"),
            ("Service", "Service"),
            ("po", "Pod"),
            ("pod", "Pod"),
            ("no", "Node"),
            ("ep", "Endpoints"),
            ("ns", "Namespace"),
            ("ing", "Ingress"),
            ("ingresses.networking.k8s.io", "Ingress"),
            ("netpol", "NetworkPolicy"),
            ("ev", "Event"),
            ("dns", "DNS"),
            ("dnses", "DNS"),
        ] {
            assert_eq!(resolve_kind(typed).unwrap().kind, kind, "{typed}");
        }
        assert_eq!(
            resolve_kind("deploy").unwrap_err().to_string(),
            "the server doesn't have a resource type \"deploy\""
        );
    }

    #[test]
    fn kubectl_style_refs() {
        assert_eq!(object_ref(&resources::SERVICE, "web"), "service/web");
        assert_eq!(object_ref(&resources::NAMESPACE, "x"), "namespace/x");
        assert_eq!(object_ref(&resources::DNS, "shop"), "dns.weft.io/shop");
        assert_eq!(
            object_ref(&resources::INGRESS, "web"),
            "ingress.networking.k8s.io/web"
        );
        assert_eq!(
            kind_ref(&resources::NETWORK_POLICY),
            "networkpolicy.networking.k8s.io"
        );
    }

    #[test]
    fn targets() {
        let t = parse_targets(&strs(&["svc", "a", "b"])).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].info.kind, "Service");
        assert_eq!(t[0].names, ["a", "b"]);

        let t = parse_targets(&strs(&["svc,po"])).unwrap();
        assert_eq!(
            t.iter().map(|t| t.info.kind).collect::<Vec<_>>(),
            ["Service", "Pod"]
        );
        assert!(t.iter().all(|t| t.names.is_empty()));

        let t = parse_targets(&strs(&["svc/a", "po/b", "service/c"])).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].names, ["a", "c"]);
        assert_eq!(t[1].names, ["b"]);

        assert!(parse_targets(&strs(&["svc/a", "b"])).is_err());
        assert!(parse_targets(&strs(&["svc", "po/b"])).is_err());
        assert!(parse_targets(&[]).is_err());
        assert!(parse_targets(&strs(&["nope"])).is_err());
    }
}
