//! A relay that accepts TCP connections and never says a word: the SMTP client waits for
//! a greeting that does not come. A sender stuck on it keeps what it took (an outbox pass
//! keeps its leases) until the test lets the connections go.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A silent listener on a free loopback port; its thread ends with the test process.
pub struct Tarpit {
    addr: SocketAddr,
    /// Every connection accepted and not yet let go.
    held: Arc<Mutex<Vec<TcpStream>>>,
    /// How many were ever accepted.
    accepted: Arc<Mutex<usize>>,
}

impl Tarpit {
    pub fn start() -> Tarpit {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tarpit");
        let addr = listener.local_addr().expect("tarpit addr");
        let held = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let (h, a) = (Arc::clone(&held), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                h.lock().expect("held").push(stream);
                *a.lock().expect("accepted") += 1;
            }
        });
        Tarpit {
            addr,
            held,
            accepted,
        }
    }

    /// Where it listens (a `[notify] relay`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        *self.accepted.lock().expect("accepted")
    }

    /// Waits until `n` connections were accepted; fails after `timeout`.
    pub fn wait_accepted(&self, n: usize, timeout: Duration) {
        let started = Instant::now();
        while self.accepted() < n {
            assert!(
                started.elapsed() < timeout,
                "the tarpit got {} of {n} connections within {timeout:?}",
                self.accepted()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes every connection held now (the client sees the connection drop); later ones
    /// are held again.
    pub fn release(&self) {
        for stream in self.held.lock().expect("held").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
