//! The ManageSieve server (RFC 5804): users upload, list, activate, fetch and delete their
//! own Sieve scripts, validated by the compiler and limits that run them at delivery.
//!
//! - [`parse`]: the command parser (sans I/O; literal sizes checked before any byte).
//! - [`reply`]: every response the client sees.
//! - [`session`]: one connection (greeting, deadlines, STARTTLS, dispatch);
//!   `authenticate.rs` and `scripts.rs` hold the verbs.
//! - [`auth`]: the login interface and SASL PLAIN; [`passwd`] fits the shared
//!   [`crate::auth::Authenticator`] (users_file or Dovecot) to it.
//! - [`dir`]: the user's script directory in Pigeonhole's layout (atomic writes, flock).
//! - [`tls`]: the certificate and key, reloaded on SIGHUP.
//!
//! [`start`] binds `[managesieve] listen` and serves until the stop signal; it follows the
//! services a reload installs (new limits, new TLS material) without a restart. The
//! listeners and the connection limit keep their startup configuration.

pub mod auth;
mod authenticate;
pub mod dir;
pub mod parse;
pub mod passwd;
pub mod reply;
mod scripts;
pub mod session;
pub mod tls;

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::managesieve::{plaintext_allowed_on, AuthBackend};
use crate::config::ListenAddr;
use crate::delivery::Services;

pub use auth::{AuthFailure, Authenticate};
pub use session::{Session, Shared};

/// Object-safe union of the stream traits a session needs (TCP, unix, TLS, in-memory).
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("managesieve.listen: cannot listen on {addr}: {source}")]
    Bind {
        addr: ListenAddr,
        source: std::io::Error,
    },
    #[error("managesieve.tls_cert/tls_key: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("managesieve.auth: {0}")]
    Auth(String),
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

/// The backend `[managesieve] auth` names, with the shared failed-login limits.
fn authenticator(
    backend: &AuthBackend,
    domains: &[String],
) -> Result<Arc<dyn Authenticate>, StartError> {
    use crate::auth::{Authenticator, Limits, Scheme};
    let authenticator = match backend {
        AuthBackend::UsersFile(path) => Authenticator::users_file(
            "managesieve",
            path,
            domains,
            Scheme::Crypt,
            Limits::default(),
        ),
        AuthBackend::Dovecot(socket) => {
            Authenticator::dovecot("managesieve", socket, Limits::default())
        }
    };
    Ok(Arc::new(authenticator))
}

/// A running server: its addresses, and the task to await after the stop signal.
pub struct Running {
    /// The bound addresses (a TCP port 0 becomes the real port).
    pub addrs: Vec<ListenAddr>,
    /// Ends once every listener is closed and the sessions are done (bounded).
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `[managesieve] listen` and serves until `stop` turns true; `None` when the
/// section has no listener. `services` follows reloads.
pub async fn start(
    services: watch::Receiver<Arc<Services>>,
    stop: watch::Receiver<bool>,
) -> Result<Option<Running>, StartError> {
    let (config, domains) = {
        let services = services.borrow();
        (
            services.config.managesieve.clone(),
            services.config.mailbox.domains.clone(),
        )
    };
    if !config.enabled() {
        return Ok(None);
    }
    let acceptor = match &config.tls {
        Some((cert, key)) => Some(tls::load(cert, key)?),
        None => None,
    };
    let shared = Arc::new(Shared {
        services: services.clone(),
        auth: authenticator(&config.auth, &domains)?,
        tls: tls::TlsCell::new(acceptor),
    });
    let mut listeners = Vec::new();
    for addr in &config.listen {
        let bound = match addr {
            ListenAddr::Tcp(sa) => TcpListener::bind(sa).await.map(Listener::Tcp),
            ListenAddr::Unix(path) => bind_unix(path).map(|l| Listener::Unix(l, path.clone())),
        };
        match bound {
            Ok(l) => listeners.push((l, config.allow_plaintext_auth && plaintext_allowed_on(addr))),
            Err(source) => {
                return Err(StartError::Bind {
                    addr: addr.clone(),
                    source,
                })
            }
        }
    }
    let addrs = listeners
        .iter()
        .filter_map(|(l, _)| match l {
            Listener::Tcp(t) => t.local_addr().ok().map(ListenAddr::Tcp),
            Listener::Unix(_, p) => Some(ListenAddr::Unix(p.clone())),
        })
        .collect();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let task = tokio::spawn(async move {
        let reload = tokio::spawn(follow_tls(services, Arc::clone(&shared)));
        let mut loops = JoinSet::new();
        let mut paths = Vec::new();
        for (listener, plaintext_ok) in listeners {
            if let Listener::Unix(_, path) = &listener {
                paths.push(path.clone());
            }
            loops.spawn(accept_loop(
                listener,
                plaintext_ok,
                Arc::clone(&shared),
                Arc::clone(&slots),
                stop.clone(),
            ));
        }
        while loops.join_next().await.is_some() {}
        reload.abort();
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    });
    Ok(Some(Running { addrs, task }))
}

/// A stale socket file is replaced; the socket is open to every local user (each still
/// has to log in).
fn bind_unix(path: &std::path::Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "a server is already answering on that socket",
        ));
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Loads the TLS material again whenever a reload installs new services; a file that
/// cannot be used is logged and the old material stays.
async fn follow_tls(mut services: watch::Receiver<Arc<Services>>, shared: Arc<Shared>) {
    while services.changed().await.is_ok() {
        let tls = services.borrow_and_update().config.managesieve.tls.clone();
        match tls {
            Some((cert, key)) => match tls::load(&cert, &key) {
                Ok(acceptor) => {
                    shared.tls.set(Some(acceptor));
                    tracing::info!("managesieve: TLS certificate and key reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "managesieve: TLS material not reloaded; keeping the old")
                }
            },
            None => shared.tls.set(None),
        }
    }
}

async fn accept_loop(
    listener: Listener,
    plaintext_ok: bool,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        let accepted: std::io::Result<(Box<dyn AsyncStream>, Option<std::net::SocketAddr>)> = tokio::select! {
            _ = stop.wait_for(|v| *v) => break,
            a = async {
                match &listener {
                    Listener::Tcp(l) => l.accept().await.map(|(s, a)| {
                        let _ = s.set_nodelay(true);
                        (Box::new(s) as Box<dyn AsyncStream>, Some(a))
                    }),
                    Listener::Unix(l, _) => l.accept().await.map(|(s, _)| (Box::new(s) as Box<dyn AsyncStream>, None)),
                }
            } => a,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "managesieve: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                ?peer,
                "managesieve: connection refused: every slot is taken"
            );
            sessions.spawn(async move {
                let mut out = Vec::new();
                reply::Response::bye("Too many connections; try later").write_to(&mut out);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    let _ = stream.write_all(&out).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let session = Session::new(
            stream,
            Arc::clone(&shared),
            peer,
            plaintext_ok,
            stop.clone(),
        );
        sessions.spawn(async move {
            match session.run().await {
                Ok(end) => tracing::debug!(?peer, ?end, "managesieve: session ended"),
                Err(e) => tracing::info!(?peer, error = %e, "managesieve: session ended with an I/O error"),
            }
            drop(slot);
        });
    }
    // Sessions saw the stop too and say BYE; bounded so a stuck client cannot hold the exit.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
}
