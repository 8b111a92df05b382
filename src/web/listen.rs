//! The web page's listeners and connections: bound at startup (a port in use or a bad key
//! stops the start, like the LMTP listeners), then one accept loop per listener. Each
//! connection is hyper's HTTP/1 with a deadline for the request head and a bounded head
//! size; connections beyond [`MAX_CONNECTIONS`] are closed at once. On shutdown the loops
//! stop accepting, open connections finish the request they are in (bounded by
//! [`DRAIN`]), and unix socket files are removed.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{router, WebState};
use crate::config::{ListenAddr, WebConfig};
use crate::quarantine::link::{KeyError, LinkKey};
use crate::reload::Current;

/// Connections served at once, over all listeners; a reverse proxy keeps a few open.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client has to send a request's head (request line and header fields).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head read (hyper's read buffer): a URL with a token and a browser's
/// headers fit many times over.
const MAX_HEAD: usize = 16 * 1024;

/// How long open connections may take to finish on shutdown.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Why the web server could not start; `serve` logs it and does not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// `[web] secret_file` cannot be used.
    #[error("web.secret_file: {0}")]
    Key(#[from] KeyError),
    /// `[web] listen` is set but a key it needs is not (config validation prevents it).
    #[error("web.{0}: needed when web.listen is set")]
    Missing(&'static str),
    /// A TCP address cannot be bound.
    #[error("web.listen: cannot listen on {addr}: {source}")]
    Bind {
        addr: ListenAddr,
        source: std::io::Error,
    },
    /// Another process answers on the unix socket.
    #[error("web.listen: cannot listen on {addr}: a server is already answering on that socket")]
    SocketInUse { addr: ListenAddr },
    /// A unix socket could not be set up; nothing is left behind.
    #[error("web.listen: cannot listen on {addr}: {source}")]
    Unix {
        addr: ListenAddr,
        source: std::io::Error,
    },
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// The bound web server and its key, ready to [`Web::run`].
pub struct Web {
    listeners: Vec<Listener>,
    key: LinkKey,
}

impl Web {
    /// Reads the key and binds every `[web] listen` address; `None` when the page is off.
    /// Nothing stays bound when one step fails. The listeners and the key keep their
    /// startup values (a reload changes neither); everything else is read per request.
    pub async fn bind(web: &WebConfig) -> Result<Option<Web>, WebError> {
        if !web.enabled() {
            return Ok(None);
        }
        let path = web
            .secret_file
            .as_deref()
            .ok_or(WebError::Missing("secret_file"))?;
        let key = LinkKey::load(path)?;
        let mut listeners = Vec::new();
        for addr in &web.listen {
            let bound = match addr {
                ListenAddr::Tcp(sa) => {
                    TcpListener::bind(sa)
                        .await
                        .map(Listener::Tcp)
                        .map_err(|source| WebError::Bind {
                            addr: addr.clone(),
                            source,
                        })
                }
                ListenAddr::Unix(path) => bind_unix(addr, path).await,
            };
            match bound {
                Ok(listener) => listeners.push(listener),
                Err(e) => {
                    remove_sockets(&listeners);
                    return Err(e);
                }
            }
        }
        Ok(Some(Web { listeners, key }))
    }

    /// The bound addresses (a TCP port 0 resolved to the port the system chose).
    pub fn local_addrs(&self) -> Vec<ListenAddr> {
        self.listeners
            .iter()
            .filter_map(|l| match l {
                Listener::Tcp(t) => t.local_addr().ok().map(ListenAddr::Tcp),
                Listener::Unix(_, path) => Some(ListenAddr::Unix(path.clone())),
            })
            .collect()
    }

    /// Serves until `shutdown` resolves, then drains (bounded by [`DRAIN`]) and removes the
    /// unix socket files.
    /// `current` gives each request the running services.
    pub async fn run(self, current: Current, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let app = router(WebState::new(current, self.key));
        let paths: Vec<PathBuf> = self
            .listeners
            .iter()
            .filter_map(|l| match l {
                Listener::Unix(_, path) => Some(path.clone()),
                Listener::Tcp(_) => None,
            })
            .collect();
        let mut loops = JoinSet::new();
        for listener in self.listeners {
            loops.spawn(accept_loop(
                listener,
                app.clone(),
                Arc::clone(&slots),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        let drained = async {
            while let Some(connections) = loops.join_next().await {
                if let Ok(mut connections) = connections {
                    while connections.join_next().await.is_some() {}
                }
            }
        };
        if tokio::time::timeout(DRAIN, drained).await.is_err() {
            tracing::warn!("web: connections still open after the drain time; closing them");
        }
        for path in paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes the socket files of listeners bound before a failure.
fn remove_sockets(listeners: &[Listener]) {
    for l in listeners {
        if let Listener::Unix(_, path) = l {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A stale socket file is replaced, a live one refused (two instances never share one).
/// The socket is open to every local user (mode 0666), like a TCP port on 127.0.0.1: the
/// pages need a signed link, not a peer's identity.
async fn bind_unix(addr: &ListenAddr, path: &Path) -> Result<Listener, WebError> {
    let unix = |source| WebError::Unix {
        addr: addr.clone(),
        source,
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(WebError::SocketInUse { addr: addr.clone() });
        }
        std::fs::remove_file(path).map_err(unix)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(unix)?;
    }
    let listener = UnixListener::bind(path).map_err(unix)?;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)) {
        drop(listener);
        let _ = std::fs::remove_file(path);
        return Err(unix(e));
    }
    Ok(Listener::Unix(listener, path.to_path_buf()))
}

/// Accepts until `stop`; returns the connections still running.
async fn accept_loop(
    listener: Listener,
    app: axum::Router,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            a = accept(&listener) => a,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                // EMFILE and friends: log, pause, keep serving.
                tracing::error!(error = %e, "web: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the limit: closed at once (dropped) rather than queued behind slow peers.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!("web: connection limit reached; closing a new connection");
            continue;
        };
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            match stream {
                Stream::Tcp(s) => serve_connection(s, app, stop).await,
                Stream::Unix(s) => serve_connection(s, app, stop).await,
            }
            drop(slot);
        });
    }
    connections
}

/// Resolves once `stop` is set (or its sender is gone); holds no borrow of the value, so
/// the future stays `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Stream> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Stream::Tcp(s)),
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
    }
}

/// One HTTP/1 connection until the client closes it, its head deadline passes, or `stop`
/// (then it finishes the request it is in and closes).
async fn serve_connection<S>(stream: S, app: axum::Router, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        r = connection.as_mut() => r,
        _ = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        // A client that goes away or sends garbage: expected, not the server's fault.
        tracing::debug!(error = %e, "web: connection ended with an error");
    }
}
