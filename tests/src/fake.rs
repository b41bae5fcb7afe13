//! Misbehaving TCP servers on loopback, for testing how clients cope with peers that are not
//! Redis.
//!
//! - [`FakeServer::garbage`] answers every read with bytes that are not RESP.
//! - [`FakeServer::replying`] answers every read with bytes of your choosing.
//! - [`FakeServer::silent`] accepts connections, reads and discards, and never answers.
//! - [`FakeServer::closing`] accepts connections and closes them at once.
//!
//! Each server is a listener on `127.0.0.1:0` driven by a background thread (plus one thread per
//! open connection); dropping the [`FakeServer`] stops and joins them all and closes every
//! connection.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often the background threads check whether they should stop.
const POLL: Duration = Duration::from_millis(10);

/// What [`FakeServer::garbage`] sends first on every answer; the rest is pseudo-random bytes.
pub const GARBAGE_PREFIX: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\r\n";

/// How a [`FakeServer`] treats a connection.
#[derive(Debug, Clone)]
enum Behaviour {
    /// Answer every read with [`GARBAGE_PREFIX`] and pseudo-random bytes.
    Garbage,
    /// Answer every read with these bytes.
    Reply(Vec<u8>),
    /// Read and discard; never write.
    Silent,
    /// Close right after accepting.
    Closing,
}

/// A loopback TCP server that misbehaves in one fixed way; stopped on drop.
#[derive(Debug)]
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
}

impl FakeServer {
    /// A server that answers anything it reads with bytes that are not RESP: an HTTP `400`
    /// status line followed by pseudo-random bytes.
    pub fn garbage() -> FakeServer {
        FakeServer::spawn(Behaviour::Garbage)
    }

    /// A server that answers every read (however many bytes it held) with `bytes`, unchanged.
    /// Useful for a truncated frame, an error reply, or a reply to the wrong question.
    pub fn replying(bytes: impl Into<Vec<u8>>) -> FakeServer {
        FakeServer::spawn(Behaviour::Reply(bytes.into()))
    }

    /// A server that accepts connections and reads from them but never writes a byte; the
    /// connections stay open until the server is dropped.
    pub fn silent() -> FakeServer {
        FakeServer::spawn(Behaviour::Silent)
    }

    /// A server that accepts connections and closes each one immediately.
    pub fn closing() -> FakeServer {
        FakeServer::spawn(Behaviour::Closing)
    }

    /// `redis://127.0.0.1:P` for this server.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many connections the server has accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    fn spawn(behaviour: Behaviour) -> FakeServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("fake server: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake server: no local address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("fake server: cannot make the listener nonblocking: {e}"));
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("fake-server-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &behaviour, &shared))
                .unwrap_or_else(|e| panic!("fake server: cannot spawn its thread: {e}"))
        };
        FakeServer {
            addr,
            shared,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, behaviour: &Behaviour, shared: &Arc<Shared>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let n = shared.accepted.fetch_add(1, Ordering::SeqCst);
                if let Behaviour::Closing = behaviour {
                    drop(stream);
                    continue;
                }
                let behaviour = behaviour.clone();
                let shared = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name(format!("fake-conn-{n}"))
                    .spawn(move || serve(stream, &behaviour, &shared, n as u64));
                if let Ok(handle) = spawned {
                    conns.push(handle);
                }
                conns.retain(|h| !h.is_finished());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Transient accept errors (e.g. the peer reset before accept): keep serving.
            Err(_) => thread::sleep(POLL),
        }
    }
    for handle in conns {
        let _ = handle.join();
    }
}

/// Serves one connection until the peer closes, an I/O error, or the server stops.
fn serve(mut stream: TcpStream, behaviour: &Behaviour, shared: &Shared, seed: u64) {
    // The accepted socket may inherit nonblocking mode from the listener on some platforms.
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut rng = XorShift::new(seed);
    let mut buf = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                let answer = match behaviour {
                    Behaviour::Garbage => garbage(&mut rng),
                    Behaviour::Reply(bytes) => bytes.clone(),
                    Behaviour::Silent | Behaviour::Closing => continue,
                };
                if stream.write_all(&answer).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// [`GARBAGE_PREFIX`] plus 64 pseudo-random bytes. The first byte, `H`, is not a RESP type
/// marker in either RESP2 or RESP3, so any decoder must reject the answer outright.
fn garbage(rng: &mut XorShift) -> Vec<u8> {
    let mut out = GARBAGE_PREFIX.to_vec();
    out.extend((0..64).map(|_| rng.byte()));
    out
}

/// A tiny deterministic generator; quality does not matter here.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // Keeps the low 8 bits on purpose.
        (self.0 & 0xff) as u8
    }
}
