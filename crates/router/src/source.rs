//! Routes from a file instead of the API server: multi-document YAML (or JSON) holding
//! DNS objects, Ingresses, Services and Endpoints, decoded, defaulted and validated
//! exactly as the API server would. Objects without a namespace go to `default`.

use std::path::Path;

use weft_api::core::{Endpoints, Service};
use weft_api::networking::Ingress;
use weft_api::weft::Dns;
use weft_api::{decode_documents, AnyObject, DecodeError, ValidationErrors};

use crate::routes::Sources;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Decode(DecodeError),
    #[error("{origin}: {kind} {name}: {errors}")]
    Invalid {
        origin: String,
        kind: &'static str,
        name: String,
        errors: ValidationErrors,
    },
    #[error("{origin}: {kind} {name}: a routes file holds only DNS, Ingress, Service and Endpoints objects")]
    Kind {
        origin: String,
        kind: &'static str,
        name: String,
    },
}

/// The objects routes are built from.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub dnses: Vec<Dns>,
    pub ingresses: Vec<Ingress>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
}

impl Objects {
    pub fn sources(&self) -> Sources<'_> {
        Sources {
            dnses: &self.dnses,
            ingresses: &self.ingresses,
            services: &self.services,
            endpoints: &self.endpoints,
        }
    }
}

pub fn load_file(path: &Path) -> Result<Objects, SourceError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: origin.clone(),
        source,
    })?;
    parse(&text, &origin)
}

/// Parses `text`; `origin` names it in errors. The first bad object fails the whole file,
/// so a typo never silently drops a route.
pub fn parse(text: &str, origin: &str) -> Result<Objects, SourceError> {
    let mut out = Objects::default();
    for decoded in decode_documents(text, origin) {
        let mut obj = decoded.map_err(SourceError::Decode)?;
        if !matches!(
            obj,
            AnyObject::Dns(_)
                | AnyObject::Ingress(_)
                | AnyObject::Service(_)
                | AnyObject::Endpoints(_)
        ) {
            return Err(SourceError::Kind {
                origin: origin.to_string(),
                kind: obj.kind(),
                name: obj.name().to_string(),
            });
        }
        if obj.namespace().is_none() {
            obj.meta_mut().namespace = Some("default".into());
        }
        obj.apply_defaults();
        // Endpoints here may name loopback addresses, which the API server refuses for
        // pods, so that a router can front local processes (the benchmark does).
        if !matches!(obj, AnyObject::Endpoints(_)) {
            obj.validate().map_err(|errors| SourceError::Invalid {
                origin: origin.to_string(),
                kind: obj.kind(),
                name: obj.name().to_string(),
                errors,
            })?;
        }
        match obj {
            AnyObject::Dns(o) => out.dnses.push(o),
            AnyObject::Ingress(o) => out.ingresses.push(o),
            AnyObject::Service(o) => out.services.push(o),
            AnyObject::Endpoints(o) => out.endpoints.push(o),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{ForwardMode, RouteTable};

    const FILE: &str = r#"
apiVersion: weft.io/v1
kind: DNS
metadata: {name: shop}
spec:
  host: Shop.Example.com
  paths:
  - {path: /wear, service: {name: wear, port: 80}}
---
apiVersion: v1
kind: Service
metadata: {name: wear}
spec:
  clusterIP: 10.96.0.20
  ports: [{port: 80, targetPort: 9000}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: wear}
subsets:
- addresses: [{ip: 127.0.0.1}]
  ports: [{port: 9000}]
"#;

    #[test]
    fn a_routes_file_builds_a_table() {
        let objects = parse(FILE, "routes.yaml").unwrap();
        let table = RouteTable::build(&objects.sources(), ForwardMode::Endpoints);
        let m = table.lookup("shop.example.com", "/wear/x", None).unwrap();
        assert_eq!(m.upstream_path, "/x");
        assert_eq!(
            m.route.backend.targets,
            vec!["127.0.0.1:9000".parse::<std::net::SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn mistakes_name_the_file_and_field() {
        let typo = FILE.replace("paths:", "pathz:");
        let e = parse(&typo, "routes.yaml").unwrap_err().to_string();
        assert!(e.contains("routes.yaml") && e.contains("pathz"), "{e}");
        let pod = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n";
        let e = parse(pod, "r.yaml").unwrap_err().to_string();
        assert!(e.contains("Namespace x") && e.contains("only DNS"), "{e}");
        let bad = FILE.replace("path: /wear", "path: wear");
        let e = parse(&bad, "r.yaml").unwrap_err().to_string();
        assert!(e.contains("spec.paths[0].path"), "{e}");
    }
}
