//! Local `redis-server` nodes on free loopback ports, for `redlock demo`, `redlock bench` and
//! the command's tests.
//!
//! Every server is a child of this process, runs without persistence in its own temporary
//! directory, and is only ever signalled by its process id (never by name), so concurrent users
//! do not disturb each other. Dropping [`LocalNodes`] kills the servers and removes the
//! directories.

use crate::client::{Conn, Reply};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The server program, looked up on `PATH`.
pub const REDIS_SERVER: &str = "redis-server";

/// What to install when [`REDIS_SERVER`] is missing.
pub const INSTALL_HINT: &str = "install the redis-server package \
     (Debian/Ubuntu: `apt-get install redis-server`; Fedora: `dnf install redis`; \
     macOS: `brew install redis`), or run `cargo xtask demo`, which installs it as root";

/// How long a node gets to answer `PING` after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports one node tries before giving up.
const PORT_ATTEMPTS: usize = 20;

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Why local nodes could not be started.
#[derive(Debug)]
pub enum StartError {
    /// `redis-server` is not on `PATH`.
    NotInstalled,
    /// A server did not come up; the text includes its log.
    Failed(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NotInstalled => {
                write!(f, "`{REDIS_SERVER}` was not found on PATH: {INSTALL_HINT}")
            }
            StartError::Failed(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for StartError {}

/// A set of independent `redis-server` processes on loopback; killed when dropped.
#[derive(Debug)]
pub struct LocalNodes {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl LocalNodes {
    /// Starts `n` servers and waits until each answers `PING`.
    pub fn start(n: usize) -> Result<LocalNodes, StartError> {
        let mut nodes = LocalNodes {
            nodes: Vec::with_capacity(n),
        };
        for _ in 0..n {
            // Pushed one at a time so that a failure part-way still cleans up (Drop).
            nodes.nodes.push(Node::start()?);
        }
        Ok(nodes)
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `redis://127.0.0.1:PORT` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Every node's URL, in order.
    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.url(i)).collect()
    }

    /// The URLs joined with commas, as `--nodes` takes them.
    pub fn nodes_arg(&self) -> String {
        self.urls().join(",")
    }

    /// The port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// The process id of node `i` (`None` once killed).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].lock().as_ref().map(Child::id)
    }

    /// Pauses node `i` with SIGSTOP: connections are still accepted, nothing is answered.
    pub fn pause(&self, i: usize) -> io::Result<()> {
        self.signal(i, "-STOP")
    }

    /// Resumes node `i` with SIGCONT.
    pub fn resume(&self, i: usize) -> io::Result<()> {
        self.signal(i, "-CONT")
    }

    /// Kills node `i` (SIGCONT, then SIGKILL) and waits for it. Idempotent.
    pub fn kill(&self, i: usize) {
        self.nodes[i].kill();
    }

    fn signal(&self, i: usize, sig: &str) -> io::Result<()> {
        let pid = self
            .pid(i)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "node is not running"))?;
        send_signal(sig, pid)
    }
}

impl Drop for LocalNodes {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill();
            let _ = fs::remove_dir_all(&node.dir);
        }
    }
}

/// Sends `sig` (as `kill(1)` spells it: `-TERM`, `-STOP`, …) to process `pid`.
pub fn send_signal(sig: &str, pid: u32) -> io::Result<()> {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill {sig} {pid} failed ({status})"
        )))
    }
}

impl Node {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kill(&self) {
        if let Some(mut child) = self.lock().take() {
            if matches!(child.try_wait(), Ok(None)) {
                // A stopped process still dies of SIGKILL, but wake it anyway.
                let _ = send_signal("-CONT", child.id());
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    fn start() -> Result<Node, StartError> {
        let dir = std::env::temp_dir().join(format!(
            "redlock-cli-{}-{}",
            std::process::id(),
            DIR_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)
                .map_err(|e| StartError::Failed(format!("cannot create {}: {e}", dir.display())))?;
            let port = free_port()
                .map_err(|e| StartError::Failed(format!("no free loopback port: {e}")))?;
            match spawn_ready(port, &dir) {
                Ok(child) => {
                    return Ok(Node {
                        port,
                        dir,
                        child: Mutex::new(Some(child)),
                    })
                }
                Err(Spawn::PortInUse(log)) => last = log,
                Err(Spawn::NotInstalled) => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(StartError::NotInstalled);
                }
                Err(Spawn::Other(log)) => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(StartError::Failed(log));
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        Err(StartError::Failed(format!(
            "redis-server found no free port in {PORT_ATTEMPTS} attempts; last log:\n{last}"
        )))
    }
}

enum Spawn {
    NotInstalled,
    PortInUse(String),
    Other(String),
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn read_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("redis.log")).unwrap_or_default()
}

fn spawn_ready(port: u16, dir: &Path) -> Result<Child, Spawn> {
    let log_path = dir.join("redis.log");
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Spawn::Other(format!("cannot create {}: {e}", log_path.display())))
    };
    let (out, err) = (open_log()?, open_log()?);
    let spawned = Command::new(REDIS_SERVER)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--protected-mode", "no"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Spawn::NotInstalled),
        Err(e) => return Err(Spawn::Other(format!("cannot start {REDIS_SERVER}: {e}"))),
    };
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + READY_TIMEOUT;
    let me = format!("process_id:{}\r\n", child.id());
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = read_log(dir);
            let text = format!("redis-server on port {port} exited with {status}:\n{log}");
            return Err(if log.contains("Address already in use") {
                Spawn::PortInUse(text)
            } else {
                Spawn::Other(text)
            });
        }
        // PONG from our own process (not another server that owns the port).
        let ready = Conn::open_url(&url, Duration::from_millis(500))
            .and_then(|mut c| c.call(&["INFO", "server"]));
        match ready {
            Ok(Reply::Bulk(info)) if String::from_utf8_lossy(&info).contains(&me) => {
                return Ok(child)
            }
            Ok(Reply::Bulk(_)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Spawn::PortInUse(format!(
                    "port {port} belongs to another server"
                )));
            }
            _ if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Spawn::Other(format!(
                    "redis-server on port {port} did not answer within {READY_TIMEOUT:?}:\n{}",
                    read_log(dir)
                )));
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
