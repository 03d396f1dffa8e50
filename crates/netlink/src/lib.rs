//! Weft's kernel-facing layer: named network namespaces and small typed rtnetlink calls
//! (links, addresses, routes, neighbours, bridge FDB), the kernel's IPVS table over generic
//! netlink ([`ipvs`]), plus the [`OverlayKernel`] seam the
//! node agent programs its VXLAN peers through.
//!
//! One [`Netlink`] handle acts in one network namespace: [`Netlink::new`] in the caller's,
//! [`Netlink::in_netns`] in any other. Every error names the object it was about.
//!
//! ```no_run
//! # async fn demo() -> weft_netlink::Result<()> {
//! use weft_netlink::{diff_peers, netns, Netlink, OverlayKernel, VxlanOverlay};
//!
//! let path = netns::create("pod-1")?; // as `ip netns add pod-1`
//! let pod = Netlink::in_netns(&path).await?;
//! if let Some(lo) = pod.link("lo").await? {
//!     pod.set_up(lo.index).await?;
//! }
//!
//! let host = Netlink::new()?;
//! let vxlan = host.link("weft.1").await?.expect("created at start-up");
//! let overlay = VxlanOverlay::new(host, vxlan.index);
//! let (to_add, to_remove) = diff_peers(&[/* from the API server */], &overlay.peers().await?);
//! for p in &to_remove {
//!     overlay.remove_peer(p).await?;
//! }
//! for p in &to_add {
//!     overlay.add_peer(p).await?;
//! }
//! # Ok(()) }
//! ```

mod addr;
mod conn;
mod error;
mod fdb;
pub mod ipvs;
mod link;
mod mac;
mod neigh;
pub mod netns;
pub mod nft;
pub mod overlay;
mod route;
mod sysctl;

pub use conn::Netlink;
pub use error::{NetlinkError, Result};
pub use fdb::FdbEntry;
pub use link::{Link, VethIntoSpec, VxlanInfo, VxlanSpec};
pub use mac::{format_mac, parse_mac, Mac};
pub use neigh::{Neighbour, NeighbourState};
pub use netns::run_in_netns;
pub use overlay::{diff_peers, MemoryOverlay, OverlayCall, OverlayKernel, PeerEntry, VxlanOverlay};
pub use route::{Route, RouteProtocol, RouteScope, RouteSpec};
pub use sysctl::{sysctl_get, sysctl_path, sysctl_set};

/// The IP network types used throughout the API.
pub use ipnet::{IpNet, Ipv4Net};
