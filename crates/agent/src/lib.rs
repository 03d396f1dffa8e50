//! The node agent's pod-level building blocks: IPAM for the node's podCIDR, the per-pod
//! `/etc/resolv.conf` and `/etc/hosts`, a process runtime that runs containers' commands
//! inside the pod's network namespace, readiness probes, and a small echo server for
//! exercising the network.
//!
//! Kernel networking (veth, bridge, VXLAN) is not here: it lives in `weft-netlink` and
//! the agent wires the two together.

pub mod echo_server;
mod fsutil;
pub mod ipam;
pub mod node;
pub mod pod_exec;
pub mod podfiles;
pub mod probes;
pub mod runtime;

pub use pod_exec::pod_exec_main;
