//! nginx's worker model on tokio: W threads, each a single-threaded runtime with its own
//! listening socket (SO_REUSEPORT: the kernel spreads connections over them) and its own
//! pool of backend connections. A request is served start to finish on one thread, with
//! no locks or cross-thread wake-ups on its path; one multi-threaded runtime measured about
//! half of nginx's requests/s in `scripts/bench-router`.

use std::net::SocketAddr;
use std::thread;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::error::RouterError;
use crate::server::{serve, Routes, ServerConfig};

/// The running worker threads.
pub struct Workers {
    stop: watch::Sender<bool>,
    threads: Vec<thread::JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads.len())
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    // Inherited by accepted connections (see `serve`).
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Starts `workers` threads (at least one) serving `addr`. Returns once every thread
/// listens, or with the first thread's error. With port 0 the first worker picks the port
/// and the others join it.
pub fn spawn_workers(
    addr: SocketAddr,
    workers: usize,
    routes: Routes,
    config: ServerConfig,
) -> Result<Workers, RouterError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut running = Workers {
        stop: stop_tx,
        threads: Vec::new(),
        local_addr: addr,
    };
    for i in 0..workers.max(1) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (routes, config, mut stop) = (routes.clone(), config.clone(), stop_rx.clone());
        let bind_to = running.local_addr;
        let thread = thread::Builder::new()
            .name(format!("weft-router-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(RouterError::Runtime(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match reuseport_listener(bind_to) {
                        Ok(l) => l,
                        Err(source) => {
                            let _ = ready_tx.send(Err(RouterError::Listen {
                                addr: bind_to,
                                source,
                            }));
                            return;
                        }
                    };
                    let _ = ready_tx.send(listener.local_addr().map_err(RouterError::LocalAddr));
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    if let Err(e) = serve(listener, routes, config, stopped).await {
                        tracing::error!(worker = i, error = %e, "router worker stopped");
                    }
                });
            })
            .map_err(RouterError::Thread)?;
        running.threads.push(thread);
        match ready_rx.recv() {
            Ok(Ok(local)) => running.local_addr = local,
            Ok(Err(e)) => {
                running.stop();
                return Err(e);
            }
            Err(_) => {
                running.stop();
                return Err(RouterError::WorkerExited);
            }
        }
    }
    Ok(running)
}

impl Workers {
    /// The address served (with the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// True when a worker thread has ended without being stopped.
    pub fn any_exited(&self) -> bool {
        self.threads.iter().any(|t| t.is_finished())
    }

    /// Stops accepting, drops open connections and waits for the threads (blocking).
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

/// Dropped without [`Workers::stop`] (say, an aborted task owned it), the threads are
/// still told to stop, without waiting for them.
impl Drop for Workers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
