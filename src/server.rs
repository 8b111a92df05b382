//! Listeners (TCP and unix), the connection limit, and graceful shutdown: on SIGTERM the
//! accept loops stop, idle sessions get `421`, in-flight deliveries finish (bounded by
//! `shutdown_timeout_secs`), then [`Server::run`] returns.
//!
//! The connection limit keeps `reserved_connections` of its `max_connections` slots for
//! trusted peers (`xforward_from`: the MTA, a unix-socket peer judged by its uid from
//! `SO_PEERCRED`). Slow or hostile clients can fill the rest, but the session deadlines
//! (see [`crate::lmtp`]) drop each of them within `idle_timeout` (or DATA's allowance), and
//! meanwhile the MTA still gets a slot.
//!
//! The services come from a [`Current`] cell that a SIGHUP reload replaces (see
//! [`crate::reload`]): each connection starts with the services current when it is
//! accepted, and its session switches to newer ones at its next MAIL. The listeners and
//! the connection slots are set up once and keep their startup configuration.

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
use crate::lmtp::{is_trusted, reply, Peer, Session};
use crate::reload::Current;

/// Why the server could not start. Each names the listener; `serve` adds what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A TCP address cannot be bound (in use, not ours, a privileged port).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: ListenAddr,
        source: std::io::Error,
    },
    /// Another process answers on the unix socket.
    #[error("cannot listen on {addr}: a server is already answering on that socket")]
    SocketInUse { addr: ListenAddr },
    /// A step of setting up a unix socket failed; nothing is left behind.
    #[error("cannot listen on {addr}: cannot {step}: {source}")]
    Unix {
        addr: ListenAddr,
        step: UnixStep,
        source: std::io::Error,
    },
}

/// The step of [`ServerError::Unix`], with the path or value it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixStep {
    /// Remove a stale socket file (no server behind it).
    RemoveStale(PathBuf),
    /// Create the socket's directory.
    CreateDir(PathBuf),
    /// Create the socket in its directory.
    Bind(PathBuf),
    /// Give the socket `[server] socket_group`.
    Chown(u32),
    /// Give the socket `[server] socket_mode`.
    Chmod(u32),
}

impl std::fmt::Display for UnixStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnixStep::RemoveStale(p) => write!(f, "remove the stale socket {}", p.display()),
            UnixStep::CreateDir(p) => write!(f, "create the directory {}", p.display()),
            UnixStep::Bind(p) => write!(f, "create the socket in {}", p.display()),
            UnixStep::Chown(gid) => write!(f, "give the socket group {gid} (server.socket_group)"),
            UnixStep::Chmod(mode) => {
                write!(f, "give the socket mode {mode:04o} (server.socket_mode)")
            }
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// Bound listeners plus the shared services, ready to run.
pub struct Server {
    listeners: Vec<Listener>,
    current: Current,
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
                        })
                }
                ListenAddr::Unix(path) => {
                    let server = &config.server;
                    bind_unix(addr, path, server.socket_mode, server.socket_group).await
                }
            };
            match listener {
                Ok(listener) => listeners.push(listener),
                Err(e) => {
                    // The sockets bound so far go too: a failed start leaves no file that
                    // looks like a server.
                    for listener in listeners {
                        if let Listener::Unix(_, path) = listener {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(Server {
            listeners,
            current: Current::new(services),
        })
    }

    /// The cell holding the services sessions use: replace its content to reload.
    pub fn current(&self) -> Current {
        self.current.clone()
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
        let startup = self.current.get();
        let server = &startup.config.server;
        let limit = Arc::new(Limits {
            general: Semaphore::new(server.max_connections - server.reserved_connections),
            reserved: Semaphore::new(server.reserved_connections),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut accept_loops = JoinSet::new();
        let mut unix_paths = Vec::new();
        for listener in self.listeners {
            if let Listener::Unix(_, path) = &listener {
                unix_paths.push(path.clone());
            }
            accept_loops.spawn(accept_loop(
                listener,
                self.current.clone(),
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
        // The drain allowance may have been reloaded since the start.
        let timeout = self.current.get().config.server.shutdown_timeout;
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

/// The connection slots: `general` for anyone, `reserved` only for trusted peers, who try
/// `general` first. Together they are `max_connections`.
struct Limits {
    general: Semaphore,
    reserved: Semaphore,
}

impl Limits {
    /// A slot for a peer, or `None` when every slot it may use is taken.
    fn acquire(self: &Arc<Self>, trusted: bool) -> Option<Slot> {
        if self.general.try_acquire().map(|p| p.forget()).is_ok() {
            return Some(Slot {
                limits: Arc::clone(self),
                reserved: false,
            });
        }
        if trusted && self.reserved.try_acquire().map(|p| p.forget()).is_ok() {
            return Some(Slot {
                limits: Arc::clone(self),
                reserved: true,
            });
        }
        None
    }
}

/// One taken slot; given back on drop.
struct Slot {
    limits: Arc<Limits>,
    reserved: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self.reserved {
            true => self.limits.reserved.add_permits(1),
            false => self.limits.general.add_permits(1),
        }
    }
}

/// A stale socket file (no server behind it) is replaced; a live one is an error, so two
/// instances never steal each other's socket. The group is set before the mode, so the
/// socket is never open to the wrong group; when either fails, the new socket is removed
/// again (no stale file for the next start or the MTA to find).
async fn bind_unix(
    addr: &ListenAddr,
    path: &Path,
    mode: u32,
    group: Option<u32>,
) -> Result<Listener, ServerError> {
    let err = |step: UnixStep| {
        let addr = addr.clone();
        move |source| ServerError::Unix { addr, step, source }
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServerError::SocketInUse { addr: addr.clone() });
        }
        std::fs::remove_file(path).map_err(err(UnixStep::RemoveStale(path.to_path_buf())))?;
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(err(UnixStep::CreateDir(dir.to_path_buf())))?;
    let listener = UnixListener::bind(path).map_err(err(UnixStep::Bind(dir.to_path_buf())))?;
    let finish = || -> Result<(), ServerError> {
        if let Some(gid) = group {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(err(UnixStep::Chown(gid)))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(err(UnixStep::Chmod(mode)))
    };
    if let Err(e) = finish() {
        drop(listener);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(Listener::Unix(listener, path.to_path_buf()))
}

/// Accepts until shutdown; returns the set of session tasks still running.
async fn accept_loop(
    listener: Listener,
    current: Current,
    limit: Arc<Limits>,
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
        let (stream, peer, uid) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: log, pause briefly, keep serving.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let services: Arc<Services> = current.get();
        let trusted = is_trusted(&services.config, peer, uid);
        let Some(slot) = limit.acquire(trusted) else {
            tracing::warn!(
                peer = %peer,
                uid,
                trusted,
                "connection refused: every slot this peer may use is taken"
            );
            let timeout = services.config.server.idle_timeout;
            sessions.spawn(async move {
                let mut stream = stream;
                let mut out = Vec::new();
                reply::too_many_connections().write_to(&mut out);
                // Bounded: a peer that does not read must not pile up tasks.
                let _ = tokio::time::timeout(timeout, async {
                    let _ = stream.write_all(&out).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let session = Session::new(stream, services, peer, stop.clone())
            .peer_uid(uid)
            .follow(current.subscribe());
        let active = crate::metrics::session();
        sessions.spawn(async move {
            let _active = active;
            if let Err(e) = session.run().await {
                tracing::info!(error = %e, "session ended with an I/O error");
            }
            drop(slot);
        });
    }
    sessions
}

/// A boxed stream so TCP and unix sessions share one code path.
type Stream = Box<dyn AsyncStream>;

/// Object-safe union of the stream traits a session needs.
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

/// Accepts one connection: the stream, the peer, and a unix-socket peer's uid.
async fn accept(listener: &Listener) -> std::io::Result<(Stream, Peer, Option<u32>)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Box::new(s), Peer::Tcp(addr), None))
        }
        Listener::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            // SO_PEERCRED: the uid of the process that connected. If the kernel cannot
            // say, the peer is treated as unknown (untrusted unless plain "unix").
            let uid = match s.peer_cred() {
                Ok(cred) => Some(cred.uid()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the unix peer's credentials");
                    None
                }
            };
            Ok((Box::new(s), Peer::Unix, uid))
        }
    }
}
