//! [`Netlink`]: one rtnetlink connection bound to one network namespace, and the two
//! request shapes everything else is built from (acknowledged change, dump).

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use tokio::task::JoinHandle;

use crate::error::{NetlinkError, Result};
use crate::netns;

/// An async rtnetlink handle for one network namespace. Cheap to clone; the connection
/// task stops when the last clone is dropped.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    _conn: Arc<ConnectionTask>,
}

/// Aborts the connection task when the last [`Netlink`] clone goes away.
struct ConnectionTask(JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

type Parts = (
    rtnetlink::proto::Connection<RouteNetlinkMessage>,
    rtnetlink::Handle,
);

impl Netlink {
    /// A connection in the calling thread's namespace. Needs a tokio runtime.
    pub fn new() -> Result<Self> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| NetlinkError::io("netlink socket", &e))?;
        Ok(Self::start((conn, handle)))
    }

    /// A connection whose socket was created inside the namespace at `ns_path`, so every
    /// request made through it acts there, whichever thread polls it.
    pub async fn in_netns(ns_path: impl AsRef<Path>) -> Result<Self> {
        let ns_path = ns_path.as_ref().to_path_buf();
        let runtime = tokio::runtime::Handle::current();
        let what = format!("netlink socket in netns {}", ns_path.display());
        let parts = tokio::task::spawn_blocking(move || {
            netns::run_in_netns(&ns_path, move || {
                // The socket registers with the caller's runtime, though made on this thread.
                let _rt = runtime.enter();
                rtnetlink::new_connection().map(|(conn, handle, _)| (conn, handle))
            })
        })
        .await
        .map_err(|e| NetlinkError::protocol(what.clone(), e))??
        .map_err(|e| NetlinkError::io(what, &e))?;
        Ok(Self::start(parts))
    }

    /// [`Netlink::in_netns`] for a namespace made by `ip netns add` or [`netns::create`].
    pub async fn in_named_netns(name: &str) -> Result<Self> {
        Self::in_netns(netns::path(name)).await
    }

    fn start((conn, handle): Parts) -> Self {
        Self {
            handle,
            _conn: Arc::new(ConnectionTask(tokio::spawn(conn))),
        }
    }

    /// The underlying rtnetlink handle, for requests this crate has no method for.
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Sends a change request and waits for the kernel's acknowledgement. `flags` are
    /// added to `NLM_F_REQUEST | NLM_F_ACK`.
    pub(crate) async fn ack(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
        object: impl FnOnce() -> String,
    ) -> Result<()> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_ACK | flags, object)
            .await
            .map(drop)
    }

    /// Sends a dump request and collects every reply.
    pub(crate) async fn dump(
        &self,
        message: RouteNetlinkMessage,
        object: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_DUMP, object)
            .await
    }

    /// Sends a single-object get request; `Ok(None)` when the kernel says it is not there.
    pub(crate) async fn get(
        &self,
        message: RouteNetlinkMessage,
        object: impl FnOnce() -> String,
    ) -> Result<Option<RouteNetlinkMessage>> {
        match self.exchange(message, NLM_F_REQUEST, object).await {
            Ok(replies) => Ok(replies.into_iter().next()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn exchange(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
        object: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = flags;
        let mut handle = self.handle.clone();
        let mut replies = match handle.request(request) {
            Ok(replies) => replies,
            Err(e) => return Err(NetlinkError::protocol(object(), e)),
        };
        let mut out = Vec::new();
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(e) => {
                    if let Some(code) = e.code {
                        return Err(NetlinkError::os(object(), code.get()));
                    }
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(NetlinkError::protocol(object(), "reply overrun"));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}
