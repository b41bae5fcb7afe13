//! Independent `redis-server` processes on free loopback ports.
//!
//! [`Cluster::try_start`] (or [`Cluster::start`], which panics, for tests) spawns `n` servers
//! (no replication, no persistence), each in its own temporary directory and on its own free
//! port, and waits until every one answers as itself. Faults are injected per node by process
//! id: [`Cluster::stop`] / [`Cluster::cont`] (SIGSTOP / SIGCONT: a paused node whose socket
//! still accepts connections), [`Cluster::kill`] (SIGKILL, a crash) and [`Cluster::restart`] (a
//! fresh, empty server on the same port).
//!
//! [`Cluster::start_serving`] also opens a TLS port ([`ServerTls`]) and/or a Unix socket on
//! every node, besides the plaintext port the helpers here use.
//!
//! Every process is a child of this process and is only ever signalled by its pid, never by
//! name, so concurrent users do not disturb each other. Dropping the [`Cluster`] kills every
//! server and removes the temporary directories.
//!
//! The methods take `&self` (each node's process sits behind a mutex), so a cluster can be
//! shared through an `Arc` between a thread driving a client and one injecting faults. Methods
//! without `try_` panic with the node's details on failure (for tests); the `try_` ones return
//! errors (for `redlock demo` and the benchmark).

use crate::resp::{request, Reply};
use crate::signal::signal;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The server program, looked up on `PATH`, unless [`SERVER_BIN_ENV`] names another.
pub const REDIS_SERVER: &str = "redis-server";

/// The environment variable naming the server program to start instead of `redis-server`
/// (a path, or a name looked up on `PATH`): `valkey-server`, or a newer Redis, runs the same
/// live tests.
pub const SERVER_BIN_ENV: &str = "REDLOCK_SERVER_BIN";

/// The server program nodes are started from: [`SERVER_BIN_ENV`] when set and not empty, else
/// [`REDIS_SERVER`].
pub fn server_bin() -> std::ffi::OsString {
    std::env::var_os(SERVER_BIN_ENV)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| REDIS_SERVER.into())
}

/// What to install when [`REDIS_SERVER`] is missing.
pub const INSTALL_HINT: &str = "install the redis-server package \
     (Debian/Ubuntu: `apt-get install redis-server`; Fedora: `dnf install redis`; \
     macOS: `brew install redis`), or run `cargo xtask test` / `cargo xtask demo`, which \
     install it as root";

/// How long a node gets to answer after it was spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The read/write timeout [`Cluster::cmd`] and the other panicking helpers use.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(2);

/// How many fresh ports one node tries before giving up.
const PORT_ATTEMPTS: usize = 20;

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Why nodes could not be started.
#[derive(Debug)]
pub enum StartError {
    /// `redis-server` is not on `PATH`.
    NotInstalled,
    /// A server did not come up; the text says why and includes its log.
    Failed(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NotInstalled => {
                let bin = server_bin();
                write!(f, "`{}` was not found", bin.to_string_lossy())?;
                if std::env::var_os(SERVER_BIN_ENV).is_some_and(|s| !s.is_empty()) {
                    write!(f, " (named by {SERVER_BIN_ENV})")
                } else {
                    write!(f, " on PATH: {INSTALL_HINT}")
                }
            }
            StartError::Failed(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for StartError {}

/// What every node serves besides its plaintext loopback port (which the helpers here use).
#[derive(Debug, Clone, Default)]
pub struct Serve {
    /// A TLS port too (`--tls-port`), with these certificates.
    pub tls: Option<ServerTls>,
    /// A Unix socket too (`--unixsocket`), at `redis.sock` in the node's directory.
    pub unix_socket: bool,
}

/// The files a node's TLS port serves with (PEM).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server's certificate (`--tls-cert-file`).
    pub cert: PathBuf,
    /// Its private key (`--tls-key-file`).
    pub key: PathBuf,
    /// The CA that client certificates must chain to (`--tls-ca-cert-file`).
    pub ca: PathBuf,
    /// Whether clients must present a certificate (`--tls-auth-clients yes|no`).
    pub require_client_cert: bool,
}

/// A set of independent `redis-server` processes on loopback, killed on drop.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Node>,
}

/// One server process on its own port and in its own directory (shared with
/// [`RedisCluster`](crate::RedisCluster)); killed, and its directory removed, when dropped.
#[derive(Debug)]
pub(crate) struct Node {
    port: u16,
    /// The TLS port, when the node serves one.
    tls_port: Option<u16>,
    dir: PathBuf,
    serve: Serve,
    /// Arguments beyond the common ones (kept for a restart).
    extra: Vec<OsString>,
    state: Mutex<NodeState>,
}

#[derive(Debug)]
struct NodeState {
    /// `None` once the process was killed and reaped.
    child: Option<Child>,
    /// Whether the last signal sent was SIGSTOP.
    stopped: bool,
}

impl Cluster {
    /// Starts `n` `redis-server` processes and waits until each answers.
    ///
    /// Each server runs with `--port P --bind 127.0.0.1 --save "" --appendonly no --dir D
    /// --daemonize no --protected-mode no`, where `P` is a free loopback port and `D` a fresh
    /// directory under [`std::env::temp_dir`]; its stdout and stderr go to `D/redis.log`.
    /// A server is ready when `INFO server` on its port reports its own process id (not that of
    /// another server that happened to own the port). On error the servers started so far are
    /// stopped.
    pub fn try_start(n: usize) -> Result<Cluster, StartError> {
        Cluster::try_start_serving(n, &Serve::default())
    }

    /// [`Cluster::try_start`], each node also serving what `serve` asks for (a TLS port on
    /// another free port, a Unix socket in its directory).
    pub fn try_start_serving(n: usize, serve: &Serve) -> Result<Cluster, StartError> {
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(n),
        };
        for _ in 0..n {
            // Pushed one at a time so that a failure part-way still cleans up (Drop).
            cluster.nodes.push(Node::start_fresh(serve)?);
        }
        Ok(cluster)
    }

    /// [`Cluster::try_start_serving`] for tests.
    ///
    /// # Panics
    ///
    /// As [`Cluster::start`].
    pub fn start_serving(n: usize, serve: &Serve) -> Cluster {
        Cluster::try_start_serving(n, serve)
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
    }

    /// [`Cluster::try_start`] for tests.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not on `PATH` or a server does not become ready within
    /// [`READY_TIMEOUT`] (the message includes its log).
    pub fn start(n: usize) -> Cluster {
        Cluster::try_start(n).unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `redis://127.0.0.1:P` for node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}", self.node(i).port)
    }

    /// The URLs of all nodes, in index order.
    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.url(i)).collect()
    }

    /// `rediss://localhost:P` for node `i`'s TLS port (the host name a test certificate names).
    ///
    /// # Panics
    ///
    /// If the cluster was started without TLS.
    pub fn tls_url(&self, i: usize) -> String {
        format!("rediss://localhost:{}", self.tls_port(i))
    }

    /// Node `i`'s TLS port.
    ///
    /// # Panics
    ///
    /// If the cluster was started without TLS.
    pub fn tls_port(&self, i: usize) -> u16 {
        self.node(i)
            .tls_port
            .unwrap_or_else(|| panic!("live node {i} serves no TLS port"))
    }

    /// The path of node `i`'s Unix socket (whether or not it serves one).
    pub fn socket_path(&self, i: usize) -> PathBuf {
        self.node(i).dir.join("redis.sock")
    }

    /// `redis+unix:///…/redis.sock` for node `i`.
    pub fn unix_url(&self, i: usize) -> String {
        format!("redis+unix://{}", self.socket_path(i).display())
    }

    /// The URLs joined with commas, as `redlock --nodes` and `redlock-bench --urls` take them.
    pub fn urls_arg(&self) -> String {
        self.urls().join(",")
    }

    /// The TCP port node `i` listens on (unchanged across [`Cluster::restart`]).
    pub fn port(&self, i: usize) -> u16 {
        self.node(i).port
    }

    /// The socket address of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.node(i).port))
    }

    /// The temporary directory of node `i` (its `--dir`, holding `redis.log`).
    pub fn dir(&self, i: usize) -> &Path {
        &self.node(i).dir
    }

    /// The process id of node `i`'s current server (it changes on [`Cluster::restart`]);
    /// `None` once it was killed and not restarted.
    pub fn try_pid(&self, i: usize) -> Option<u32> {
        self.node(i).try_pid()
    }

    /// [`Cluster::try_pid`] for tests.
    ///
    /// # Panics
    ///
    /// If the node was killed and not restarted.
    pub fn pid(&self, i: usize) -> u32 {
        self.try_pid(i)
            .unwrap_or_else(|| panic!("live node {i} is not running (killed and not restarted)"))
    }

    /// Pauses node `i` with SIGSTOP. Its socket still accepts connections (the kernel completes
    /// the handshake), but nothing is answered until [`Cluster::try_cont`].
    pub fn try_stop(&self, i: usize) -> io::Result<()> {
        let mut state = self.node(i).lock();
        signal("-STOP", state.pid()?)?;
        state.stopped = true;
        Ok(())
    }

    /// Resumes node `i` with SIGCONT after [`Cluster::try_stop`].
    pub fn try_cont(&self, i: usize) -> io::Result<()> {
        let mut state = self.node(i).lock();
        signal("-CONT", state.pid()?)?;
        state.stopped = false;
        Ok(())
    }

    /// [`Cluster::try_stop`] for tests.
    ///
    /// # Panics
    ///
    /// If the node is not running or `kill` fails.
    pub fn stop(&self, i: usize) {
        if let Err(e) = self.try_stop(i) {
            panic!("live node {i}: SIGSTOP failed: {e}");
        }
    }

    /// [`Cluster::try_cont`] for tests.
    ///
    /// # Panics
    ///
    /// If the node is not running or `kill` fails.
    pub fn cont(&self, i: usize) {
        if let Err(e) = self.try_cont(i) {
            panic!("live node {i}: SIGCONT failed: {e}");
        }
    }

    /// Whether node `i` was paused with [`Cluster::stop`] and not resumed since.
    pub fn is_stopped(&self, i: usize) -> bool {
        let state = self.node(i).lock();
        state.child.is_some() && state.stopped
    }

    /// Kills node `i` with SIGKILL (a crash: no shutdown, all data lost) and waits for it to
    /// exit. Connections to its port are refused until [`Cluster::restart`]. Does nothing if the
    /// node is already dead.
    pub fn kill(&self, i: usize) {
        self.node(i).kill();
    }

    /// Starts node `i` again on the same port with empty data (killing it first if it is still
    /// running), and waits until it answers.
    ///
    /// # Panics
    ///
    /// If the server does not become ready within [`READY_TIMEOUT`] (for instance because
    /// something else took the port meanwhile).
    pub fn restart(&self, i: usize) {
        let node = self.node(i);
        let mut state = node.lock();
        state.kill();
        clear_dir(&node.dir);
        // The port may still be held briefly by an unrelated socket; retry for a while.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match spawn_ready(
                node.port,
                node.tls_port,
                &node.dir,
                &node.serve,
                &node.extra,
            ) {
                Ok(child) => {
                    state.child = Some(child);
                    state.stopped = false;
                    return;
                }
                Err(Spawn::PortInUse(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!(
                    "live node {i} did not restart on port {}: {}",
                    node.port,
                    StartError::from(e)
                ),
            }
        }
    }

    /// Whether node `i`'s process is alive (a stopped process counts as running).
    pub fn is_running(&self, i: usize) -> bool {
        self.node(i).is_running()
    }

    /// Sends one command to node `i` over a fresh connection and returns the reply, with
    /// `timeout` for connecting, writing and reading.
    ///
    /// A stopped node gives an error of kind `WouldBlock` or `TimedOut` after `timeout`; a
    /// killed one `ConnectionRefused`.
    pub fn try_cmd<A: AsRef<[u8]>>(
        &self,
        i: usize,
        args: &[A],
        timeout: Duration,
    ) -> io::Result<Reply> {
        request(self.addr(i), args, timeout)
    }

    /// Sends one command to node `i` and returns the reply (which may be [`Reply::Error`]).
    ///
    /// # Panics
    ///
    /// On an I/O error or a timeout ([`CMD_TIMEOUT`]); use [`Cluster::try_cmd`] to observe
    /// those.
    pub fn cmd<A: AsRef<[u8]>>(&self, i: usize, args: &[A]) -> Reply {
        match self.try_cmd(i, args, CMD_TIMEOUT) {
            Ok(reply) => reply,
            Err(e) => panic!(
                "live node {i} (port {}): command {} failed: {e}",
                self.port(i),
                show_args(args)
            ),
        }
    }

    /// `GET key` on node `i`, as UTF-8 (lossily).
    ///
    /// # Panics
    ///
    /// As [`Cluster::cmd`], or if the reply is neither a bulk string nor nil.
    pub fn get(&self, i: usize, key: &str) -> Option<String> {
        match self.cmd(i, &["GET", key]) {
            Reply::Nil => None,
            Reply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            other => panic!("live node {i}: GET {key:?} answered {other:?}"),
        }
    }

    /// How many nodes hold `key`, counting only nodes that are running and not stopped.
    pub fn exists_any(&self, key: &str) -> usize {
        self.reachable()
            .filter(|&i| expect_int(i, "EXISTS", self.cmd(i, &["EXISTS", key])) == 1)
            .count()
    }

    /// How many nodes still hold `key` once it is gone from all of them or `within` has passed.
    /// A release returns when a majority confirmed; the other nodes' deletes land just after.
    pub fn exists_after(&self, key: &str, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let n = self.exists_any(key);
            if n == 0 || Instant::now() >= deadline {
                return n;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// `PTTL key` on node `i`: milliseconds left, `-1` for no expiry, `-2` for no such key.
    pub fn pttl(&self, i: usize, key: &str) -> i64 {
        expect_int(i, "PTTL", self.cmd(i, &["PTTL", key]))
    }

    /// `FLUSHALL` on every node that is running and not stopped.
    pub fn flushall(&self) {
        for i in self.reachable() {
            match self.cmd(i, &["FLUSHALL"]) {
                Reply::Status(s) if &s[..] == b"OK" => {}
                other => panic!("live node {i}: FLUSHALL answered {other:?}"),
            }
        }
    }

    /// All keys on node `i` (`KEYS *`), sorted.
    pub fn keys(&self, i: usize) -> Vec<String> {
        let mut keys: Vec<String> = match self.cmd(i, &["KEYS", "*"]) {
            Reply::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                    other => panic!("live node {i}: KEYS returned an element {other:?}"),
                })
                .collect(),
            other => panic!("live node {i}: KEYS answered {other:?}"),
        };
        keys.sort();
        keys
    }

    /// The contents of node `i`'s log (its stdout and stderr), for failure messages.
    pub fn log(&self, i: usize) -> String {
        read_log(&self.node(i).dir)
    }

    fn node(&self, i: usize) -> &Node {
        match self.nodes.get(i) {
            Some(node) => node,
            None => panic!(
                "no live node {i}: the cluster has {} nodes",
                self.nodes.len()
            ),
        }
    }

    fn reachable(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.is_running(i) && !self.is_stopped(i))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    /// Spawns a server on a fresh port in a fresh directory, retrying on port collisions.
    fn start_fresh(serve: &Serve) -> Result<Node, StartError> {
        Node::start_fresh_with(serve, &|_| Ok(Vec::new()))
    }

    /// [`Node::start_fresh`] with the arguments `extra` gives for the node's directory
    /// appended to the common ones; asked again for each port attempt (so ports it picks are
    /// fresh too).
    pub(crate) fn start_fresh_with(
        serve: &Serve,
        extra: &dyn Fn(&Path) -> io::Result<Vec<OsString>>,
    ) -> Result<Node, StartError> {
        // Removes the directory if anything below fails before the node exists.
        let guard = DirGuard(Some(make_dir()?));
        let dir = guard.path();
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()
                .map_err(|e| StartError::Failed(format!("no free loopback port: {e}")))?;
            let extra = extra(dir)
                .map_err(|e| StartError::Failed(format!("cannot prepare the arguments: {e}")))?;
            let tls_port = match serve.tls {
                Some(_) => Some(
                    free_port()
                        .map_err(|e| StartError::Failed(format!("no free loopback port: {e}")))?,
                ),
                None => None,
            };
            match spawn_ready(port, tls_port, dir, serve, &extra) {
                Ok(child) => {
                    return Ok(Node {
                        port,
                        tls_port,
                        serve: serve.clone(),
                        extra,
                        dir: guard.disarm(),
                        state: Mutex::new(NodeState {
                            child: Some(child),
                            stopped: false,
                        }),
                    })
                }
                Err(Spawn::PortInUse(log)) => {
                    last = log;
                    clear_dir(dir);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StartError::Failed(format!(
            "redis-server found no free port in {PORT_ATTEMPTS} attempts; last log:\n{last}"
        )))
    }

    /// The plaintext port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The node's directory (its `--dir`, holding `redis.log`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current process id; `None` once killed.
    pub(crate) fn try_pid(&self) -> Option<u32> {
        self.lock().child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap (see [`NodeState::kill`]).
    pub(crate) fn kill(&self) {
        self.lock().kill();
    }

    /// Whether the process is alive (a stopped one counts); reaps it if it exited.
    pub(crate) fn is_running(&self) -> bool {
        let mut state = self.lock();
        let exited = match state.child.as_mut() {
            None => return false,
            Some(child) => !matches!(child.try_wait(), Ok(None)),
        };
        if exited {
            state.child = None;
            state.stopped = false;
        }
        !exited
    }

    fn lock(&self) -> MutexGuard<'_, NodeState> {
        // A panic while holding the lock leaves the state consistent enough to clean up.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl NodeState {
    fn pid(&self) -> io::Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the node is not running"))
    }

    /// SIGCONT (in case it is stopped), SIGKILL, wait. Idempotent.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                // A stopped process still dies of SIGKILL, but wake it anyway.
                let _ = signal("-CONT", child.id());
                // `Child::kill` sends SIGKILL to this child's pid.
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.stopped = false;
    }
}

/// Owns a node's directory until the node is built; removes it when dropped armed.
struct DirGuard(Option<PathBuf>);

impl DirGuard {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or_else(|| Path::new(""))
    }

    fn disarm(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Why a spawned server did not become ready.
enum Spawn {
    /// `redis-server` is not on `PATH`.
    NotInstalled,
    /// It found its port taken (it exited saying so, or another server answered); with its log.
    PortInUse(String),
    /// Anything else (exit, timeout, unexpected answer); with its log.
    Other(String),
}

impl From<Spawn> for StartError {
    fn from(s: Spawn) -> StartError {
        match s {
            Spawn::NotInstalled => StartError::NotInstalled,
            Spawn::PortInUse(text) | Spawn::Other(text) => StartError::Failed(text),
        }
    }
}

/// Spawns `redis-server` on `port` (and `tls_port`, and a Unix socket, as `serve` asks) in
/// `dir`, with `extra` after the other arguments, and waits until `INFO server` on `port` names
/// its process. On failure the process is killed and reaped.
fn spawn_ready(
    port: u16,
    tls_port: Option<u16>,
    dir: &Path,
    serve: &Serve,
    extra: &[OsString],
) -> Result<Child, Spawn> {
    let log_path = dir.join("redis.log");
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Spawn::Other(format!("cannot create {}: {e}", log_path.display())))
    };
    let (out, err) = (open_log()?, open_log()?);
    let mut command = Command::new(server_bin());
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--protected-mode", "no"]);
    if let (Some(tls), Some(tls_port)) = (&serve.tls, tls_port) {
        command
            .args(["--tls-port", &tls_port.to_string()])
            .arg("--tls-cert-file")
            .arg(&tls.cert)
            .arg("--tls-key-file")
            .arg(&tls.key)
            .arg("--tls-ca-cert-file")
            .arg(&tls.ca)
            .args([
                "--tls-auth-clients",
                if tls.require_client_cert { "yes" } else { "no" },
            ]);
    }
    if serve.unix_socket {
        command
            .arg("--unixsocket")
            .arg(dir.join("redis.sock"))
            .args(["--unixsocketperm", "700"]);
    }
    command.args(extra);
    let spawned = command.stdin(Stdio::null()).stdout(out).stderr(err).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Spawn::NotInstalled),
        Err(e) => {
            let bin = server_bin();
            return Err(Spawn::Other(format!(
                "cannot start {}: {e}",
                bin.to_string_lossy()
            )));
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    // Ours, not another server that owns the port (ours then exits "Address already in use").
    let me = format!("process_id:{}\r\n", child.id());
    let mut last_err;
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
        match request(addr, &["INFO", "server"], Duration::from_millis(500)) {
            Ok(Reply::Bulk(info)) if String::from_utf8_lossy(&info).contains(&me) => {
                return Ok(child)
            }
            Ok(Reply::Bulk(_)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Spawn::PortInUse(format!(
                    "port {port} is served by another process; log:\n{}",
                    read_log(dir)
                )));
            }
            // Still loading (`-LOADING`), or not listening yet.
            Ok(other) => last_err = format!("INFO answered {other:?}"),
            Err(e) => last_err = e.to_string(),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Spawn::Other(format!(
                "redis-server on port {port} did not answer within {READY_TIMEOUT:?} \
                 (last: {last_err}); log:\n{}",
                read_log(dir)
            )));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A port that was free on 127.0.0.1 a moment ago (bind port 0, read it, release it).
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A new, empty, uniquely named directory under the system temp dir.
fn make_dir() -> Result<PathBuf, StartError> {
    loop {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("redlock-live-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Left over from an earlier process that had the same pid: take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(StartError::Failed(format!(
                    "cannot create {}: {e}",
                    dir.display()
                )))
            }
        }
    }
}

/// Empties `dir` (keeps the directory itself).
fn clear_dir(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

pub(crate) fn read_log(dir: &Path) -> String {
    let path = dir.join("redis.log");
    match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn expect_int(i: usize, what: &str, reply: Reply) -> i64 {
    match reply {
        Reply::Int(n) => n,
        other => panic!("live node {i}: {what} answered {other:?}"),
    }
}

pub(crate) fn show_args<A: AsRef<[u8]>>(args: &[A]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
        .collect();
    format!("{parts:?}")
}
