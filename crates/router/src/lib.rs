//! weft router: the HTTP path router for Minik8s' DNS objects and Kubernetes Ingresses.
//!
//! A DNS object (`weft.io/v1`, kind `DNS`) maps a host and URL paths to Service ports:
//!
//! ```yaml
//! apiVersion: weft.io/v1
//! kind: DNS
//! metadata: {name: shop}
//! spec:
//!   host: shop.example.com
//!   paths:
//!   - {path: /wear, service: {name: wear, port: 80}}
//!   - {path: /watch, service: {name: watch, port: 80}}
//! ```
//!
//! **Matching.** The host must equal the request's host exactly, ignoring case and any
//! `:port`. Among that host's paths the longest prefix on segment boundaries wins:
//! `/wear` matches `/wear`, `/wear/` and `/wear/a/b`, never `/wearable`. Paths compare as
//! sent (case-sensitive, not percent-decoded).
//!
//! **Stripping (DNS objects).** The matched prefix is removed before forwarding, as
//! Minik8s' nginx `location /wear { proxy_pass http://svc:port/; }` did, but without
//! nginx's double slash: the rest of the path keeps its single leading `/`, an empty rest
//! becomes `/`, and the query string is kept. Under `/wear`: `/wear/a?q=1` → `/a?q=1`,
//! `/wear` → `/`, `/wear/` → `/`, `/wear?q=1` → `/?q=1`. The removed prefix is passed on
//! in `X-Forwarded-Prefix`.
//!
//! **Ingress** (`networking.k8s.io/v1`) paths are never stripped. `pathType: Exact`
//! matches the path exactly; `Prefix` matches segment-wise as Kubernetes defines it (a
//! trailing `/` in the rule is ignored); `ImplementationSpecific` is treated as `Prefix`.
//! Rules with a host, with a `*.` wildcard host (one label), without a host, and
//! `defaultBackend` are tried in that order. When several objects claim the same host and
//! path, the oldest (`creationTimestamp`, then namespace/name) wins and the conflict is
//! reported.
//!
//! **Forwarding.** To the Service's ready endpoints (target port resolved through the
//! Endpoints' port names, as kube-proxy does), round-robin, over pooled keep-alive
//! connections, or optionally to the ClusterIP ([`ForwardMode`]). Unknown host or path →
//! 404, no ready endpoint → 503, a backend refusing or failing → 502, no response headers
//! in time → 504; each names what it could not reach, and is logged.

mod error;
mod forward;
mod h1;
pub mod headers;
pub mod routes;
mod server;
pub mod source;
mod upstream;
mod workers;

pub use error::{Failure, RouterError};
pub use forward::ResponseBody;
pub use routes::{ForwardMode, RouteTable, Sources};
pub use server::{bind, serve, Routes, ServerConfig};
pub use workers::{spawn_workers, Workers};
