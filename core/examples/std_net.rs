//! Drives the sans-IO `Engine` over blocking `std::net` sockets: acquire a lock, hold it,
//! release it. This is the whole adapter contract in one loop, for people writing their own
//! transport.
//!
//! ```text
//! cargo run -p redlock-core --example std_net -- 127.0.0.1:6379 [more HOST:PORT…]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]
// an example prints what it does

// A test (or example) plays the adapter: it owns the clock and the sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use redlock_core::{Config, Engine, Event, NodeConfig, NodeId, OpId, Options, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

fn main() -> std::process::ExitCode {
    // Errors print with `Display`: one line naming each failing node and why, not a Debug dump.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut addrs: Vec<String> = std::env::args().skip(1).collect();
    if addrs.is_empty() {
        addrs.push("127.0.0.1:6379".into());
    }
    // The core takes node configurations, not URLs: a transport of your own decides what an
    // address is. Here, `host:port`.
    let nodes = addrs
        .iter()
        .map(|a| {
            let (host, port) = a.rsplit_once(':').ok_or("expected HOST:PORT")?;
            Ok(NodeConfig::new(host, port.parse()?))
        })
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    let config = Config::new(nodes, Options::default());
    let mut sockets: Vec<Option<TcpStream>> = Vec::new();
    let start = Instant::now();
    let mut engine = Engine::new(config.clone(), start, seed())?;
    for (i, node) in config.nodes.iter().enumerate() {
        // A node that is down only costs its vote; the others can still form a quorum.
        let sock = TcpStream::connect((node.host.as_str(), node.port)).ok();
        if let Some(s) = &sock {
            s.set_nonblocking(true)?;
            s.set_nodelay(true)?;
            engine.handle_connected(Instant::now(), NodeId::new(i));
        }
        sockets.push(sock);
    }

    let op = engine.acquire(
        Instant::now(),
        ["example:std_net"],
        Duration::from_secs(10),
        token()?,
        SystemTime::now(),
    )?;
    let lock = match run_until_done(&mut engine, &mut sockets, op)? {
        Event::Acquired { result, .. } => result?,
        other => return Err(format!("unexpected {other:?}").into()),
    };
    let validity = lock.remaining(Instant::now());
    writeln!(
        std::io::stdout(),
        "acquired {:?} (token {}, valid for {validity:?})",
        lock.resources(),
        lock.token()
    )?;

    let op = engine.release(Instant::now(), &lock);
    match run_until_done(&mut engine, &mut sockets, op)? {
        Event::Released { result, .. } => writeln!(
            std::io::stdout(),
            "released on {} node(s)",
            result?.confirmed
        )?,
        other => return Err(format!("unexpected {other:?}").into()),
    }
    Ok(())
}

/// Moves bytes and time until `op` completes.
fn run_until_done(
    engine: &mut Engine,
    sockets: &mut [Option<TcpStream>],
    op: OpId,
) -> std::io::Result<Event> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        while let Some((node, bytes)) = engine.poll_transmit() {
            if let Some(Some(sock)) = sockets.get_mut(node.index()) {
                write_all(sock, &bytes)?;
            }
        }
        while let Some(event) = engine.poll_event() {
            match event {
                // Each operation completes with the event of its kind; this one is ours.
                event if event.op() == Some(op) => return Ok(event),
                Event::Reconnect { link, reason } => {
                    // A real adapter reconnects with backoff; the example just drops the node.
                    writeln!(std::io::stderr(), "{link} broke: {reason}")?;
                    if let Some(slot) = sockets.get_mut(link.index()) {
                        *slot = None;
                    }
                }
                // A real adapter opens the link; this example's nodes are standalone and
                // nothing waits for releases, so the engine never asks for one.
                Event::Open { link, .. } => writeln!(std::io::stderr(), "{link} not opened")?,
                _ => {}
            }
        }
        let now = Instant::now();
        for (i, slot) in sockets.iter_mut().enumerate() {
            let Some(sock) = slot else { continue };
            match sock.read(&mut buf) {
                Ok(0) => {
                    *slot = None;
                    engine.handle_disconnected(now, NodeId::new(i));
                }
                Ok(n) => engine.handle_input(now, NodeId::new(i), &buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    *slot = None;
                    engine.handle_disconnected(now, NodeId::new(i));
                }
            }
        }
        if engine.poll_timeout().is_some_and(|t| now >= t) {
            engine.handle_timeout(now);
        }
        // A real adapter waits on readiness (epoll, an async runtime); polling keeps this short.
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn write_all(sock: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match sock.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// 20 bytes from the OS CSPRNG (the core never draws entropy itself).
fn token() -> std::io::Result<Token> {
    let mut random = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    Ok(Token::from_random(&random).expect("20 bytes"))
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    u64::from_le_bytes(b)
}
