pub mod apiserver;
pub mod dns;
pub mod echo_server;
pub mod node;
pub mod proxy;
pub mod router;
pub mod token;

/// Resolves on SIGINT or SIGTERM: how every daemon here is asked to stop.
pub async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "no SIGTERM handler; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
