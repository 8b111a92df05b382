//! Listeners (TCP and unix), the connection limit, and graceful shutdown: on SIGTERM the
//! accept loops stop, idle sessions get `421`, in-flight deliveries finish (bounded by
//! `shutdown_timeout_secs`), then [`Server::run`] returns.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::{Config, ListenAddr};
use crate::delivery::Services;
use crate::lmtp::{reply, Peer, Session};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: ListenAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: a server is already answering on that socket")]
    SocketInUse { addr: ListenAddr },
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// Bound listeners plus the shared services, ready to run.
pub struct Server {
    listeners: Vec<Listener>,
    services: Arc<Services>,
}

impl Server {
    /// Binds every configured address; fails on the first that cannot be bound.
    pub async fn bind(services: Arc<Services>) -> Result<Server, ServerError> {
        let config: &Config = &services.config;
        let mut listeners = Vec::new();
        for addr in &config.server.listen {
            let listener = match addr {
                ListenAddr::Tcp(sa) => {
                    TcpListener::bind(sa)
                        .await
                        .map(Listener::Tcp)
                        .map_err(|source| ServerError::Bind {
                            addr: addr.clone(),
                            source,
                        })?
                }
                ListenAddr::Unix(path) => bind_unix(addr, path, config.server.socket_mode).await?,
            };
            listeners.push(listener);
        }
        Ok(Server {
            listeners,
            services,
        })
    }

    /// The addresses actually bound (a TCP port 0 becomes the real port).
    pub fn local_addrs(&self) -> Vec<ListenAddr> {
        self.listeners
            .iter()
            .filter_map(|l| match l {
                Listener::Tcp(t) => t.local_addr().ok().map(ListenAddr::Tcp),
                Listener::Unix(_, path) => Some(ListenAddr::Unix(path.clone())),
            })
            .collect()
    }

    /// Serves until `shutdown` resolves, then drains: see the module doc.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let server = &self.services.config.server;
        let limit = Arc::new(Semaphore::new(server.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut accept_loops = JoinSet::new();
        let mut unix_paths = Vec::new();
        for listener in self.listeners {
            if let Listener::Unix(_, path) = &listener {
                unix_paths.push(path.clone());
            }
            accept_loops.spawn(accept_loop(
                listener,
                Arc::clone(&self.services),
                Arc::clone(&limit),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        tracing::info!("shutting down: idle sessions get 421, in-flight deliveries finish");
        let _ = stop_tx.send(true);
        let mut sessions = JoinSet::new();
        while let Some(done) = accept_loops.join_next().await {
            if let Ok(set) = done {
                sessions.spawn(drain(set));
            }
        }
        let timeout = server.shutdown_timeout;
        let all = async { while sessions.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!(
                timeout_secs = timeout.as_secs(),
                "sessions still busy after the shutdown timeout; exiting"
            );
        }
        for path in unix_paths {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("stopped");
    }
}

async fn drain(mut set: JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

/// A stale socket file (no server behind it) is replaced; a live one is an error, so two
/// instances never steal each other's socket.
async fn bind_unix(addr: &ListenAddr, path: &Path, mode: u32) -> Result<Listener, ServerError> {
    let err = |source| ServerError::Bind {
        addr: addr.clone(),
        source,
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServerError::SocketInUse { addr: addr.clone() });
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(Listener::Unix(listener, path.to_path_buf()))
}

/// Accepts until shutdown; returns the set of session tasks still running.
async fn accept_loop(
    listener: Listener,
    services: Arc<Services>,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut sessions = JoinSet::new();
    loop {
        // Reap finished sessions so the set does not grow without bound.
        while sessions.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = stop.wait_for(|v| *v) => break,
            a = accept(&listener) => a,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: log, pause briefly, keep serving.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(peer = %peer, "connection refused: max_connections reached");
            sessions.spawn(async move {
                let mut stream = stream;
                let mut out = Vec::new();
                reply::too_many_connections().write_to(&mut out);
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let session = Session::new(stream, Arc::clone(&services), peer, stop.clone());
        sessions.spawn(async move {
            if let Err(e) = session.run().await {
                tracing::info!(error = %e, "session ended with an I/O error");
            }
            drop(permit);
        });
    }
    sessions
}

/// A boxed stream so TCP and unix sessions share one code path.
type Stream = Box<dyn AsyncStream>;

/// Object-safe union of the stream traits a session needs.
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, Peer)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Box::new(s), Peer::Tcp(addr)))
        }
        Listener::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            Ok((Box::new(s), Peer::Unix))
        }
    }
}
