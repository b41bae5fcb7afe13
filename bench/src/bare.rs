//! The runtime alone (`--mode bare`): one caller does the two round trips of an uncontended
//! acquire+release (`SET key token NX PX ttl`, then the compare-and-delete `EVALSHA`) on the
//! adapter's own runtime and socket, with no lock library in between. It is the one-client
//! latency floor of that runtime on this machine, taken beside the library's C=1 case, so the
//! p50 target (two `redis-benchmark` round trips) can be read against what the runtime itself
//! reaches.
//!
//! For the blocking adapter "its runtime" is how it is built: the caller's thread hands each
//! request to a task on a private thread's smol executor and parks until the reply comes back.

use crate::ceiling::COMPARE_AND_DELETE;
use crate::row::Measured;
use crate::{cpu, Adapter};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;
use std::time::{Duration, Instant};

/// The `client` of the JSON line.
pub const CLIENT: &str = "runtime alone";
/// Pairs of round trips before measuring (the connection settled, the script cached).
const WARMUP_PAIRS: u64 = 50;
/// The token every `SET` carries (keys are fresh, so it never meets another).
const TOKEN: &str = "redlock-bench-bare-token";

/// Runs the bare loop for `duration` on `adapter`'s runtime against `url` (`redis://host:port`
/// without credentials or TLS), `ttl` for each key; keys start with `prefix`.
pub fn run(
    adapter: Adapter,
    url: &str,
    ttl: Duration,
    duration: Duration,
    prefix: &str,
) -> Result<Measured, String> {
    let addr = host_port(url)?;
    let job = Job {
        ttl_ms: ttl.as_millis().max(1),
        duration,
        prefix: prefix.to_string(),
    };
    match adapter {
        Adapter::Tokio => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(async {
                    // On a worker thread, as the library's callers are spawned.
                    tokio::spawn(async move {
                        let s = tokio::net::TcpStream::connect(addr).await?;
                        s.set_nodelay(true)?;
                        job.run(TokioTrips(s)).await
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
                })
            }),
        Adapter::Smol => smol::block_on(smol::spawn(async move {
            let s = smol::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            job.run(Stream(s)).await
        }))
        .map_err(|e| e.to_string()),
        Adapter::AsyncStd => async_std::task::block_on(async_std::task::spawn(async move {
            let s = async_std::net::TcpStream::connect((addr.0.as_str(), addr.1)).await?;
            s.set_nodelay(true)?;
            job.run(Stream(s)).await
        }))
        .map_err(|e| e.to_string()),
        Adapter::Blocking => blocking(addr, job),
    }
}

/// `host:port` of a plain `redis://` URL.
fn host_port(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("{url}: the bare loop takes a plain redis:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "{url}: the bare loop sends no AUTH: give a URL without credentials"
        ));
    }
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| format!("{url}: no port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{url}: port {port:?} is not a number"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// What the loop does, whatever carries its bytes.
struct Job {
    ttl_ms: u128,
    duration: Duration,
    prefix: String,
}

impl Job {
    async fn run(self, mut trips: impl Trips) -> io::Result<Measured> {
        let sha = match trips
            .trip(&command(&["SCRIPT", "LOAD", COMPARE_AND_DELETE]))
            .await?
        {
            Reply::Bulk(sha) => sha,
            other => return Err(unexpected("SCRIPT LOAD", &other)),
        };
        let ttl = self.ttl_ms.to_string();
        let pair = |i: u64| {
            let key = format!("{}:bare:{i}", self.prefix);
            (
                command(&["SET", &key, TOKEN, "NX", "PX", &ttl]),
                command(&["EVALSHA", &sha, "1", &key, TOKEN]),
            )
        };
        for i in 0..WARMUP_PAIRS {
            let (set, del) = pair(i);
            both(&mut trips, &set, &del).await?;
        }
        let cpu0 = cpu::process_time();
        let end = Instant::now() + self.duration;
        let (mut lat_ns, mut errors) = (Vec::new(), 0);
        for i in WARMUP_PAIRS.. {
            // Built before the clock starts: the library's caller hands over a resource name.
            let (set, del) = pair(i);
            let start = Instant::now();
            if start >= end {
                break;
            }
            if both(&mut trips, &set, &del).await? {
                lat_ns.push((Instant::now() - start).as_nanos() as u64);
            } else {
                errors += 1;
            }
        }
        let cpu = match (cpu0, cpu::process_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        };
        // Every operation that completed was counted: the loop stops before one would end late.
        let completed = lat_ns.len() as u64;
        Ok(Measured::from_latencies(
            lat_ns,
            completed,
            errors,
            self.duration,
            cpu,
        ))
    }
}

/// The `SET` then the delete; whether the first was granted and the second deleted.
async fn both(trips: &mut impl Trips, set: &[u8], del: &[u8]) -> io::Result<bool> {
    let granted = trips.trip(set).await? == Reply::Ok;
    let deleted = trips.trip(del).await? == Reply::Int(1);
    Ok(granted && deleted)
}

/// A reply of the shapes the loop meets.
#[derive(Debug, PartialEq)]
enum Reply {
    Ok,
    Nil,
    Int(i64),
    Bulk(String),
}

fn unexpected(what: &str, reply: &Reply) -> io::Error {
    io::Error::other(format!("{what}: unexpected reply {reply:?}"))
}

/// One RESP command.
fn command(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The reply in `buf` if it is whole: `Ok(None)` while more bytes are needed.
fn parse(buf: &[u8]) -> io::Result<Option<Reply>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[1..end]);
    let bad = || io::Error::other(format!("bad reply line {:?}", String::from_utf8_lossy(buf)));
    match buf[0] {
        b'+' if line == "OK" => Ok(Some(Reply::Ok)),
        b':' => line.parse().map(|n| Some(Reply::Int(n))).map_err(|_| bad()),
        b'$' if line == "-1" => Ok(Some(Reply::Nil)),
        b'$' => {
            let len: usize = line.parse().map_err(|_| bad())?;
            let body = end + 2;
            if buf.len() < body + len + 2 {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(&buf[body..body + len]).into_owned();
            Ok(Some(Reply::Bulk(text)))
        }
        b'-' => Err(io::Error::other(format!("server error: {line}"))),
        _ => Err(bad()),
    }
}

/// One request out, its reply back.
trait Trips {
    async fn trip(&mut self, request: &[u8]) -> io::Result<Reply>;
}

/// The reply in `buf` once whole, after a read of `n` bytes (0: the node closed).
fn reply_from(buf: &[u8], n: usize) -> io::Result<Option<Reply>> {
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    parse(buf)
}

/// A smol or async-std stream (both `futures-io`).
struct Stream<S>(S);

impl<S: AsyncRead + AsyncWrite + Unpin> Trips for Stream<S> {
    async fn trip(&mut self, request: &[u8]) -> io::Result<Reply> {
        self.0.write_all(request).await?;
        let mut buf = Vec::with_capacity(128);
        let mut chunk = [0u8; 512];
        loop {
            let n = self.0.read(&mut chunk).await?;
            buf.extend_from_slice(&chunk[..n]);
            if let Some(reply) = reply_from(&buf, n)? {
                return Ok(reply);
            }
        }
    }
}

/// A tokio stream, through its readiness calls (the bench builds tokio without `io-util`).
struct TokioTrips(tokio::net::TcpStream);

impl Trips for TokioTrips {
    async fn trip(&mut self, mut request: &[u8]) -> io::Result<Reply> {
        while !request.is_empty() {
            match self.0.try_write(request) {
                Ok(n) => request = &request[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.0.writable().await?,
                Err(e) => return Err(e),
            }
        }
        let mut buf = Vec::with_capacity(128);
        let mut chunk = [0u8; 512];
        loop {
            match self.0.try_read(&mut chunk) {
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(reply) = reply_from(&buf, n)? {
                        return Ok(reply);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.0.readable().await?,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The blocking adapter's shape: requests go over a channel to a task on a private thread
/// (a one-thread smol executor), the caller's thread parks until the reply comes back.
fn blocking(addr: (String, u16), job: Job) -> Result<Measured, String> {
    let (to_io, requests) = smol::channel::bounded::<Vec<u8>>(1);
    let (replies, from_io) = smol::channel::bounded::<io::Result<Reply>>(1);
    let stream =
        std::net::TcpStream::connect((addr.0.as_str(), addr.1)).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let io_thread = std::thread::Builder::new()
        .name("bare-io".into())
        .spawn(move || {
            let executor = smol::Executor::new();
            smol::block_on(executor.run(async {
                let mut s = match smol::Async::new(stream) {
                    Ok(s) => Stream(s),
                    Err(e) => {
                        let _ = replies.send(Err(e)).await;
                        return;
                    }
                };
                while let Ok(request) = requests.recv().await {
                    if replies.send(s.trip(&request).await).await.is_err() {
                        return;
                    }
                }
            }));
        })
        .map_err(|e| e.to_string())?;
    let result = smol::future::block_on(job.run(Hop { to_io, from_io }));
    let _ = io_thread.join();
    result.map_err(|e| e.to_string())
}

/// The caller's side of [`blocking`]: it waits without a reactor, as a blocking caller does.
struct Hop {
    to_io: smol::channel::Sender<Vec<u8>>,
    from_io: smol::channel::Receiver<io::Result<Reply>>,
}

impl Trips for Hop {
    async fn trip(&mut self, request: &[u8]) -> io::Result<Reply> {
        let gone = || io::Error::other("the I/O thread stopped");
        self.to_io
            .send(request.to_vec())
            .await
            .map_err(|_| gone())?;
        self.from_io.recv().await.map_err(|_| gone())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_once_whole() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Some(Reply::Ok));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some(Reply::Nil));
        assert_eq!(parse(b":1\r\n").unwrap(), Some(Reply::Int(1)));
        assert_eq!(
            parse(b"$3\r\nabc\r\n").unwrap(),
            Some(Reply::Bulk("abc".into()))
        );
        // Not whole yet.
        assert_eq!(parse(b"+OK").unwrap(), None);
        assert_eq!(parse(b"$3\r\nab").unwrap(), None);
        assert_eq!(parse(b"").unwrap(), None);
        // A server error or a line of another shape is an error, not a guess.
        let e = parse(b"-NOSCRIPT No matching script\r\n").unwrap_err();
        assert!(e.to_string().contains("NOSCRIPT"), "{e}");
        assert!(parse(b":x\r\n").is_err());
        assert!(parse(b"*1\r\n").is_err());
        // The node closed the connection.
        assert!(reply_from(b"", 0).is_err());
    }

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(
            command(&["SET", "k", "v"]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
    }

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            host_port("redis://127.0.0.1:7001").unwrap(),
            ("127.0.0.1".into(), 7001)
        );
        assert_eq!(
            host_port("redis://[::1]:7001/0").unwrap(),
            ("::1".into(), 7001)
        );
        assert!(host_port("rediss://127.0.0.1:7001").is_err());
        assert!(host_port("redis://127.0.0.1").is_err());
        assert!(host_port("redis://127.0.0.1:x").is_err());
        assert!(host_port("redis://user:pw@127.0.0.1:7001").is_err());
    }
}
