//! systemd's readiness protocol (`sd_notify(3)`), for `Type=notify` units: one datagram of
//! `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET`.
//!
//! Written here rather than linked from libsystemd: the protocol is one `sendto(2)`, and a
//! missing `$NOTIFY_SOCKET` (started by hand, by a test, or under another supervisor) means
//! "nobody is listening", not an error.
//!
//! The server sends [`ready`] once every listener is bound (so `systemctl start` returns
//! only when Postfix can connect), [`stopping`] when a shutdown signal arrives, and around a
//! configuration reload [`reloading`], then [`ready`] again.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor an abstract name (`@name`).
    #[error("NOTIFY_SOCKET={0:?} is not an absolute path or an @abstract socket name")]
    BadAddress(String),
    /// Creating the socket or sending the datagram failed.
    #[error("cannot notify systemd at {socket:?}: {source}")]
    Send {
        /// The `$NOTIFY_SOCKET` value.
        socket: String,
        /// The error of `socket(2)` or `sendto(2)`.
        source: std::io::Error,
    },
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments, e.g. `"READY=1"`) to the
/// socket in `$NOTIFY_SOCKET`. `Ok(false)`: the variable is unset or empty, so no service
/// manager waits for us and nothing was sent.
pub fn notify(state: &str) -> Result<bool, NotifyError> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(socket) if !socket.is_empty() => send(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` as one datagram to `socket`: a filesystem path (starting with `/`) or a
/// Linux abstract socket name (starting with `@`), as `$NOTIFY_SOCKET` gives them.
pub fn send(socket: &OsStr, state: &str) -> Result<(), NotifyError> {
    let shown = || socket.to_string_lossy().into_owned();
    let bytes = socket.as_bytes();
    let addr = match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket),
        // The kernel's abstract namespace: the leading '@' stands for the NUL byte.
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        _ => return Err(NotifyError::BadAddress(shown())),
    }
    .map_err(|_| NotifyError::BadAddress(shown()))?;
    let io = |source| NotifyError::Send {
        socket: shown(),
        source,
    };
    let datagram = UnixDatagram::unbound().map_err(io)?;
    datagram.send_to_addr(state.as_bytes(), &addr).map_err(io)?;
    Ok(())
}

/// `READY=1`: startup (or a reload) is complete; every listener accepts connections.
pub fn ready() {
    notify_logged("READY=1");
}

/// `STOPPING=1`: a shutdown signal arrived; in-flight deliveries are finishing.
pub fn stopping() {
    notify_logged("STOPPING=1");
}

/// `RELOADING=1` with the `CLOCK_MONOTONIC` timestamp systemd ≥ 253 wants with it: a reload
/// has begun. Send [`ready`] when it is done, whether the new configuration was taken or
/// refused (the old one still serves).
pub fn reloading() {
    notify_logged(&reloading_state());
}

/// The `RELOADING=1` message; without a readable monotonic clock, the bare `RELOADING=1`
/// that systemd before 253 expects anyway.
fn reloading_state() -> String {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(now) => {
            let usec = now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000;
            format!("RELOADING=1\nMONOTONIC_USEC={usec}")
        }
        Err(_) => "RELOADING=1".to_string(),
    }
}

/// Readiness is advice to the service manager, so a failure never stops the server: it is
/// logged, and systemd's start timeout (with this line in the journal) tells the admin.
fn notify_logged(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!(state, "notified systemd"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "systemd notification failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A listening datagram socket standing in for systemd's notify socket.
    fn listener(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_each_state_as_one_datagram_to_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind");
        for state in ["READY=1", "STOPPING=1", "RELOADING=1\nMONOTONIC_USEC=1"] {
            send(path.as_os_str(), state).expect("send");
            assert_eq!(listener(&socket), state);
        }
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("sievegate-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind");
        send(OsStr::new(&format!("@{name}")), "READY=1").expect("send");
        assert_eq!(listener(&socket), "READY=1");
    }

    #[test]
    fn refuses_what_is_not_a_socket_address() {
        for bad in ["", "relative/notify", "notify"] {
            assert!(
                matches!(
                    send(OsStr::new(bad), "READY=1"),
                    Err(NotifyError::BadAddress(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_socket_nobody_listens_on_is_a_send_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gone");
        assert!(matches!(
            send(path.as_os_str(), "READY=1"),
            Err(NotifyError::Send { .. })
        ));
    }

    #[test]
    fn reloading_carries_a_monotonic_timestamp() {
        let state = reloading_state();
        let usec = state
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .expect("RELOADING with MONOTONIC_USEC");
        assert!(usec.parse::<u64>().expect("a number") > 0);
    }
}
