//! An in-memory model of one Redis node, for driving the sans-IO engine without sockets.
//!
//! The model is split in two layers so that a simulator can put any transport in between:
//!
//! - **Semantics**: [`Node::execute`] runs one command (a list of arguments) against the node's
//!   state on a [`Session`] and returns a [`Value`]. Keys live in numbered databases and expire
//!   on the caller's virtual clock: every call takes `now: Instant`, nothing reads a real clock.
//! - **Byte stream**: [`Node::feed`] takes request bytes from one connection (RESP arrays of bulk
//!   strings, or inline commands), runs every complete command, applies injected [`Fault`]s, and
//!   returns the encoded replies (RESP2, or RESP3 after `HELLO 3`). [`parse_command`] and
//!   [`Value::encode`] are the two halves, usable on their own.
//!
//! The lock scripts are not interpreted as Lua: the node knows the engine's default scripts
//! ([`redlock_core::ACQUIRE`], [`EXTEND`], [`RELEASE`], and the fencing pair
//! [`FENCED_ACQUIRE`] / [`FENCE`]) by source and SHA-1 and runs their semantics natively
//! ([`ScriptKind`]); other sources can be taught with [`Node::learn_script`]. The script cache
//! behaves as Redis's does: empty at start and after a restart or `SCRIPT FLUSH`, filled by `EVAL`
//! and `SCRIPT LOAD`, and `EVALSHA` of an unknown SHA replies [`NOSCRIPT`].
//!
//! Fault knobs: [`Node::flush_scripts`], [`Node::crash`] / [`Node::restart`] (with or without
//! keeping the data), [`Node::set_stalled`] (a node that reads but does not answer), and
//! [`Node::inject`] to fail, hang, close or garble particular commands.
//!
//! ```
//! use redlock_sim::model::{Node, Value};
//! use std::time::{Duration, Instant};
//!
//! let t0 = Instant::now(); // any instant: the model only compares instants it is given
//! let mut node = Node::new(t0, 1);
//! let mut session = node.connect().unwrap();
//! let reply = node.feed(t0, &mut session, b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$3\r\n100\r\n");
//! assert_eq!(&reply[..], b"+OK\r\n");
//! assert_eq!(node.get(t0, 0, b"k"), Some(bytes::Bytes::from_static(b"v")));
//! assert_eq!(node.get(t0 + Duration::from_millis(101), 0, b"k"), None);
//! assert_eq!(Value::Int(3).to_bytes(redlock_core::Protocol::Resp2), &b":3\r\n"[..]);
//! ```

use bytes::{Buf, Bytes, BytesMut};
use redlock_core::{script_sha, Protocol, ACQUIRE, EXTEND, FENCE, FENCED_ACQUIRE, RELEASE};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

/// The error `EVALSHA` replies for a SHA that is not in the script cache (Redis's exact text).
pub const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// How many databases a node has (`SELECT 0` to `SELECT 15`), as a default Redis.
pub const DATABASES: u32 = 16;

/// The `redis_version` the node reports in `INFO` and `HELLO`.
pub const VERSION: &str = "7.2.4";

/// The most elements a request array may have before it is a protocol error (as Redis).
const MAX_MULTIBULK: i64 = 1024 * 1024;

/// The largest bulk argument the parser accepts (Redis's default `proto-max-bulk-len`).
const MAX_BULK: i64 = 512 * 1024 * 1024;

/// The longest inline command or header line before it is a protocol error (as Redis).
const MAX_INLINE: usize = 64 * 1024;

// ----- values ---------------------------------------------------------------------------------

/// One reply, before encoding. [`Value::encode`] writes it as RESP2 or RESP3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A simple string (`+OK`).
    Simple(String),
    /// An error reply (`-ERR ...`): the text after the `-`.
    Error(String),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// A verbatim string (RESP3 `=`, with a three-letter format such as `txt`); a bulk string in
    /// RESP2.
    Verbatim(Bytes),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// An array.
    Array(Vec<Value>),
    /// A map (RESP3 `%`); a flat array of alternating keys and values in RESP2.
    Map(Vec<(Value, Value)>),
    /// A boolean (RESP3 `#`); `:1` or a null in RESP2, as Redis converts Lua booleans.
    Bool(bool),
    /// An out-of-band push (RESP3 `>`, e.g. a client-tracking invalidation); an array in RESP2.
    Push(Vec<Value>),
}

impl Value {
    /// `+OK`.
    pub fn ok() -> Value {
        Value::Simple("OK".into())
    }

    /// An error reply with `text` (e.g. `"ERR syntax error"`).
    pub fn error(text: impl Into<String>) -> Value {
        Value::Error(text.into())
    }

    /// A bulk string.
    pub fn bulk(bytes: impl AsRef<[u8]>) -> Value {
        Value::Bulk(Bytes::copy_from_slice(bytes.as_ref()))
    }

    /// Appends this value, encoded in `protocol`, to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Value::Simple(s) => line(out, b'+', s.as_bytes()),
            Value::Error(e) => line(out, b'-', e.as_bytes()),
            Value::Int(i) => line(out, b':', i.to_string().as_bytes()),
            Value::Bulk(b) => blob(out, b'$', b),
            Value::Verbatim(b) if resp3 => {
                let mut v = Vec::with_capacity(b.len() + 4);
                v.extend_from_slice(b"txt:");
                v.extend_from_slice(b);
                blob(out, b'=', &v);
            }
            Value::Verbatim(b) => blob(out, b'$', b),
            Value::Nil if resp3 => out.extend_from_slice(b"_\r\n"),
            Value::Nil => out.extend_from_slice(b"$-1\r\n"),
            Value::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for v in items {
                    v.encode(protocol, out);
                }
            }
            Value::Push(items) => {
                let kind = if resp3 { b'>' } else { b'*' };
                line(out, kind, items.len().to_string().as_bytes());
                for v in items {
                    v.encode(protocol, out);
                }
            }
            Value::Map(pairs) if resp3 => {
                line(out, b'%', pairs.len().to_string().as_bytes());
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Value::Map(pairs) => {
                line(out, b'*', (pairs.len() * 2).to_string().as_bytes());
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Value::Bool(b) if resp3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Value::Bool(true) => out.extend_from_slice(b":1\r\n"),
            Value::Bool(false) => out.extend_from_slice(b"$-1\r\n"),
        }
    }

    /// This value encoded in `protocol`.
    pub fn to_bytes(&self, protocol: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(protocol, &mut out);
        out.freeze()
    }
}

fn line(out: &mut BytesMut, kind: u8, body: &[u8]) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn blob(out: &mut BytesMut, kind: u8, body: &[u8]) {
    line(out, kind, body.len().to_string().as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

// ----- request parsing ------------------------------------------------------------------------

/// Request bytes that are not a valid command: Redis replies `-ERR Protocol error: …` and closes
/// the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Takes one complete command off the front of `buf`.
///
/// Returns `Ok(None)` (leaving `buf` untouched) while the command is incomplete. Accepts RESP
/// arrays of bulk strings, as clients send, and inline commands (`PING\r\n`), as `redis-cli`
/// and telnet do. An empty array or empty inline line is skipped, as Redis does.
///
/// ```
/// let mut buf = bytes::BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI"[..]);
/// let cmd = redlock_sim::model::parse_command(&mut buf).unwrap().unwrap();
/// assert_eq!(cmd, vec![bytes::Bytes::from_static(b"GET"), bytes::Bytes::from_static(b"k")]);
/// assert_eq!(redlock_sim::model::parse_command(&mut buf).unwrap(), None);
/// ```
pub fn parse_command(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let parsed = if first == b'*' {
            parse_multibulk(buf)?
        } else {
            parse_inline(buf)?
        };
        match parsed {
            None => return Ok(None),
            Some((used, args)) => {
                buf.advance(used);
                if !args.is_empty() {
                    return Ok(Some(args));
                }
            }
        }
    }
}

/// Every complete command in `bytes`, in order (a trailing incomplete command is ignored).
///
/// Handy for looking at what an engine transmitted.
pub fn parse_commands(bytes: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(cmd) = parse_command(&mut buf)? {
        out.push(cmd);
    }
    Ok(out)
}

fn find_line(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn parse_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// `Some((bytes consumed, args))` for a complete array.
fn parse_multibulk(buf: &[u8]) -> Result<Option<(usize, Vec<Bytes>)>, ProtocolError> {
    let Some(end) = find_line(buf, 1) else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError("too big mbulk count string".into()));
        }
        return Ok(None);
    };
    let n = parse_int(&buf[1..end])
        .filter(|n| *n <= MAX_MULTIBULK)
        .ok_or_else(|| ProtocolError("invalid multibulk length".into()))?;
    let mut pos = end + 2;
    let mut args = Vec::with_capacity(usize::try_from(n.clamp(0, 1024)).unwrap_or(0));
    for _ in 0..n.max(0) {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        if kind != b'$' {
            return Err(ProtocolError(format!(
                "expected '$', got '{}'",
                char::from(kind)
            )));
        }
        let Some(end) = find_line(buf, pos + 1) else {
            if buf.len() - pos > MAX_INLINE {
                return Err(ProtocolError("too big bulk count string".into()));
            }
            return Ok(None);
        };
        let len = parse_int(&buf[pos + 1..end])
            .filter(|n| (0..=MAX_BULK).contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ProtocolError("invalid bulk length".into()))?;
        let start = end + 2;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            // Redis does not check the terminator; it would desync. Treat it as an error.
            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
        }
        args.push(Bytes::copy_from_slice(&buf[start..start + len]));
        pos = start + len + 2;
    }
    Ok(Some((pos, args)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<(usize, Vec<Bytes>)>, ProtocolError> {
    let Some(nl) = buf.iter().position(|b| *b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    if line.contains(&b'"') || line.contains(&b'\'') {
        return Err(ProtocolError(
            "quoted inline arguments are not modelled".into(),
        ));
    }
    let args = line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|a| !a.is_empty())
        .map(Bytes::copy_from_slice)
        .collect();
    Ok(Some((nl + 1, args)))
}

// ----- scripts --------------------------------------------------------------------------------

/// Which lock script semantics a script source stands for; the model runs these natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptKind {
    /// Refuse with 0 if any key exists; otherwise `SET key ARGV[1] PX ARGV[2]` for every key and
    /// return 1.
    Acquire,
    /// If every key holds `ARGV[1]`, `PEXPIRE` each to `ARGV[2]` and return 1; otherwise 0.
    Extend,
    /// Delete every key holding `ARGV[1]`; return how many.
    Release,
    /// [`redlock_core::FENCED_ACQUIRE`]: `KEYS` are n lock keys then n fence-counter keys.
    /// Refuse with `{0}` if any lock key exists; otherwise `SET` every lock key to `ARGV[1]`
    /// with `PX ARGV[2]` and reply `{1, c}`, `c` the largest counter (0 when none is set).
    FencedAcquire,
    /// [`redlock_core::FENCE`]: `KEYS` as for [`FencedAcquire`](ScriptKind::FencedAcquire).
    /// Only if every lock key holds `ARGV[1]`, raise each counter to `ARGV[2]` (never lower it;
    /// no expiry) and reply 1; otherwise change nothing and reply 0.
    Fence,
    /// A script that touches nothing and replies this integer (for user-supplied scripts that
    /// misbehave, e.g. a fence write-back that skips the write).
    Reply(i64),
}

// ----- faults ---------------------------------------------------------------------------------

/// Which commands a [`Fault`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Every command.
    Any,
    /// Commands with this name (case-insensitive), e.g. `"EVAL"` or `"INFO"`.
    Command(String),
    /// `EVAL` / `EVALSHA` of a script the node knows as this kind (cached or not).
    Script(ScriptKind),
}

/// What a [`Fault`] does to a matching command instead of (or after) running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Do not run the command; reply with this value (e.g. `Value::error("BUSY ...")`).
    Reply(Value),
    /// Do not run the command; write these raw bytes as the reply (garbage, a wrong type, …).
    Raw(Bytes),
    /// Do not run the command; never reply to it or anything after it on this connection
    /// (a lost request on a stuck connection).
    Hang,
    /// Run the command, then hang: its effect happens but no reply ever arrives.
    ExecuteThenHang,
    /// Do not run the command; close the connection (replies to earlier commands are still
    /// returned).
    Close,
    /// Run the command, then close the connection without replying.
    ExecuteThenClose,
    /// Write this value first (typically a [`Value::Push`]), then run the command and reply as
    /// usual.
    Before(Value),
}

/// A rule injected with [`Node::inject`]: the first rule that matches a command decides its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Which commands it applies to.
    pub matches: Match,
    /// What it does.
    pub action: FaultAction,
    /// Let this many matching commands through untouched first.
    pub skip: u32,
    /// Apply to this many matching commands, then retire; `None` applies forever.
    pub times: Option<u32>,
}

impl Fault {
    /// A rule applying `action` to every command matching `matches`, forever.
    pub fn new(matches: Match, action: FaultAction) -> Fault {
        Fault {
            matches,
            action,
            skip: 0,
            times: None,
        }
    }

    /// The same rule, applied only `n` times.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }

    /// The same rule, letting the first `n` matching commands through.
    pub fn skip(mut self, n: u32) -> Fault {
        self.skip = n;
        self
    }
}

// ----- sessions -------------------------------------------------------------------------------

/// Whether a connection is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Commands run and replies come back.
    Open,
    /// Input is read and thrown away; no reply will ever come (a [`FaultAction::Hang`]).
    Hung,
    /// The node closed the connection (protocol error, a close fault, a crash or restart).
    Closed,
}

/// One client connection's server-side state: protocol, selected database, authentication,
/// name, and bytes of a command not yet complete. Made by [`Node::connect`].
#[derive(Debug, Clone)]
pub struct Session {
    id: u64,
    generation: u64,
    protocol: Protocol,
    db: u32,
    authed: bool,
    name: Option<Bytes>,
    input: BytesMut,
    state: SessionState,
}

impl Session {
    /// The `CLIENT ID` of this connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The protocol replies are encoded in (RESP2 until `HELLO 3`).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The selected database.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// The name set by `CLIENT SETNAME` or `HELLO … SETNAME`.
    pub fn name(&self) -> Option<&[u8]> {
        self.name.as_deref()
    }

    /// Whether the connection is open, hung or closed. A session of a node that crashed or
    /// restarted reads as closed only after its next [`Node::feed`]; see [`Node::is_alive`].
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Bytes received but not yet a complete command.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }
}

// ----- the node -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: Bytes,
    expires: Option<Instant>,
}

impl Entry {
    /// Redis keeps a key until the clock passes its expiry time.
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| now <= at)
    }
}

/// One key as [`Node::dump`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDump {
    /// The database.
    pub db: u32,
    /// The key.
    pub key: Bytes,
    /// Its value.
    pub value: Bytes,
    /// When it expires, if ever.
    pub expires: Option<Instant>,
}

/// A model Redis node. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Node {
    seed: u64,
    generation: u64,
    up: bool,
    stalled: bool,
    started: Instant,
    data: BTreeMap<(u32, Bytes), Entry>,
    /// Loaded scripts: SHA-1 → source.
    cache: BTreeMap<String, Bytes>,
    /// Scripts the model knows how to run: SHA-1 → semantics.
    known: HashMap<String, ScriptKind>,
    password: Option<(Option<String>, String)>,
    faults: Vec<Fault>,
    next_client: u64,
    processed: u64,
    log: Option<Vec<Vec<Bytes>>>,
}

impl Node {
    /// A fresh, running node started at `now`, with no keys, an empty script cache, no password,
    /// and the default lock scripts known. `seed` names it (its `run_id` derives from the seed
    /// and the number of restarts).
    pub fn new(now: Instant, seed: u64) -> Node {
        let mut node = Node {
            seed,
            generation: 0,
            up: true,
            stalled: false,
            started: now,
            data: BTreeMap::new(),
            cache: BTreeMap::new(),
            known: HashMap::new(),
            password: None,
            faults: Vec::new(),
            next_client: 1,
            processed: 0,
            log: None,
        };
        node.learn_script(ACQUIRE, ScriptKind::Acquire);
        node.learn_script(EXTEND, ScriptKind::Extend);
        node.learn_script(RELEASE, ScriptKind::Release);
        node.learn_script(FENCED_ACQUIRE, ScriptKind::FencedAcquire);
        node.learn_script(FENCE, ScriptKind::Fence);
        node
    }

    /// Teaches the node to run `source` (e.g. a user-supplied script) with `kind`'s semantics.
    /// It is not loaded into the cache: `EVALSHA` still says NOSCRIPT until `EVAL` or
    /// `SCRIPT LOAD`.
    pub fn learn_script(&mut self, source: &str, kind: ScriptKind) {
        self.known.insert(sha_of(source.as_bytes()), kind);
    }

    /// Requires `AUTH [user] password` (or `HELLO … AUTH user password`) before other commands.
    /// `user` `None` is the `default` user.
    pub fn set_password(&mut self, user: Option<&str>, password: &str) {
        self.password = Some((user.map(str::to_string), password.to_string()));
    }

    /// The node's current `run_id` (40 hex characters; changes on every restart).
    pub fn run_id(&self) -> String {
        script_sha(&format!(
            "model-node seed={} gen={}",
            self.seed, self.generation
        ))
    }

    /// Seconds since the node (re)started, as `INFO` reports them.
    pub fn uptime(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Whether the node is running (not crashed).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether `session` is still a live connection to this node (open or hung, not closed, and
    /// made since the last crash or restart).
    pub fn is_alive(&self, session: &Session) -> bool {
        self.up && session.generation == self.generation && session.state != SessionState::Closed
    }

    /// The node process dies: every connection is closed, nothing runs until
    /// [`restart`](Node::restart). Keys are kept in memory so that a restart may choose to keep
    /// them (persistence) or not.
    pub fn crash(&mut self) {
        self.up = false;
        self.generation += 1;
    }

    /// Starts the node again at `now` (crashing it first if it is running): a new `run_id`,
    /// uptime from zero, an empty script cache, and every old connection closed.
    /// `keep_data` keeps the keys (with their absolute expiry times), as a node with AOF
    /// `fsync always` would; otherwise the node comes back empty.
    ///
    /// An empty restart is exactly the case that breaks Redlock's safety unless the restart is
    /// delayed by at least the longest lock ttl (the Redis docs' "delayed restarts").
    pub fn restart(&mut self, now: Instant, keep_data: bool) {
        if self.up {
            self.crash();
        }
        self.up = true;
        self.started = now;
        self.cache.clear();
        if !keep_data {
            self.data.clear();
        }
    }

    /// `SCRIPT FLUSH`: forget every loaded script.
    pub fn flush_scripts(&mut self) {
        self.cache.clear();
    }

    /// Whether the script with this SHA-1 is loaded.
    pub fn script_cached(&self, sha: &str) -> bool {
        self.cache.contains_key(&sha.to_ascii_lowercase())
    }

    /// Loads `source` into the script cache, as `SCRIPT LOAD` does; returns its SHA-1.
    pub fn load_script(&mut self, source: &str) -> String {
        let sha = sha_of(source.as_bytes());
        self.cache
            .insert(sha.clone(), Bytes::copy_from_slice(source.as_bytes()));
        sha
    }

    /// A stalled node reads requests but runs none of them and answers nothing until un-stalled
    /// (like a `SIGSTOP`ped process). On un-stalling, buffered input runs at the next
    /// [`feed`](Node::feed) (call it with no bytes to pump).
    pub fn set_stalled(&mut self, stalled: bool) {
        self.stalled = stalled;
    }

    /// Whether the node is stalled.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Adds a fault rule (after any already present; the first matching rule wins).
    pub fn inject(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Starts recording every command run (or matched by a fault) in order; see
    /// [`take_log`](Node::take_log).
    pub fn record(&mut self, on: bool) {
        self.log = on.then(Vec::new);
    }

    /// The commands recorded since the last call (empty when not recording).
    pub fn take_log(&mut self) -> Vec<Vec<Bytes>> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// How many commands the node has parsed since it was made (faulted ones included).
    pub fn commands_processed(&self) -> u64 {
        self.processed
    }

    /// A new connection, or `None` while the node is down.
    pub fn connect(&mut self) -> Option<Session> {
        if !self.up {
            return None;
        }
        let id = self.next_client;
        self.next_client += 1;
        Some(Session {
            id,
            generation: self.generation,
            protocol: Protocol::Resp2,
            db: 0,
            authed: self.password.is_none(),
            name: None,
            input: BytesMut::new(),
            state: SessionState::Open,
        })
    }

    // ----- direct state access (for tests; no protocol) ------------------------------------

    /// The value of `key` in database `db` at `now`, if it exists.
    pub fn get(&self, now: Instant, db: u32, key: &[u8]) -> Option<Bytes> {
        self.entry(now, db, key).map(|e| e.value.clone())
    }

    /// The time `key` has left at `now`: `None` if it does not exist, `Some(None)` if it has no
    /// expiry.
    pub fn ttl(&self, now: Instant, db: u32, key: &[u8]) -> Option<Option<Duration>> {
        self.entry(now, db, key)
            .map(|e| e.expires.map(|at| at.saturating_duration_since(now)))
    }

    /// Sets `key` in database `db`, expiring `ttl` after `now` if given.
    pub fn set(&mut self, now: Instant, db: u32, key: &[u8], value: &[u8], ttl: Option<Duration>) {
        self.data.insert(
            (db, Bytes::copy_from_slice(key)),
            Entry {
                value: Bytes::copy_from_slice(value),
                expires: ttl.map(|t| now + t),
            },
        );
    }

    /// Deletes `key` from database `db`; returns whether it existed at `now`.
    pub fn del(&mut self, now: Instant, db: u32, key: &[u8]) -> bool {
        let existed = self.entry(now, db, key).is_some();
        self.data.remove(&(db, Bytes::copy_from_slice(key)));
        existed
    }

    /// Every live key at `now`, ordered by database and key.
    pub fn dump(&self, now: Instant) -> Vec<KeyDump> {
        self.data
            .iter()
            .filter(|(_, e)| e.live(now))
            .map(|((db, key), e)| KeyDump {
                db: *db,
                key: key.clone(),
                value: e.value.clone(),
                expires: e.expires,
            })
            .collect()
    }

    fn entry(&self, now: Instant, db: u32, key: &[u8]) -> Option<&Entry> {
        self.data
            .get(&(db, Bytes::copy_from_slice(key)))
            .filter(|e| e.live(now))
    }

    /// Drops `key` if it has expired at `now`, as Redis's lazy expiry does.
    fn expire_key(&mut self, now: Instant, db: u32, key: &Bytes) {
        let k = (db, key.clone());
        if self.data.get(&k).is_some_and(|e| !e.live(now)) {
            self.data.remove(&k);
        }
    }

    // ----- the byte stream -----------------------------------------------------------------

    /// Reads `bytes` from `session`'s socket at `now`: runs every complete command, in order,
    /// and returns the encoded replies.
    ///
    /// Afterwards check [`Session::state`]: a protocol error, a close fault, or a crashed or
    /// restarted node leaves the session closed (bytes after that point are not read; replies
    /// before it are returned, as a socket delivers them before the close). A hung session or
    /// a stalled node swallows input (a stalled node keeps it and runs it once un-stalled).
    pub fn feed(&mut self, now: Instant, session: &mut Session, bytes: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        if !self.up || session.generation != self.generation {
            session.state = SessionState::Closed;
        }
        match session.state {
            SessionState::Closed => return out.freeze(),
            SessionState::Hung => {
                session.input.clear();
                return out.freeze();
            }
            SessionState::Open => {}
        }
        session.input.extend_from_slice(bytes);
        if self.stalled {
            return out.freeze();
        }
        loop {
            let args = match parse_command(&mut session.input) {
                Ok(Some(args)) => args,
                Ok(None) => break,
                Err(e) => {
                    Value::error(format!("ERR {e}")).encode(session.protocol, &mut out);
                    session.state = SessionState::Closed;
                    session.input.clear();
                    break;
                }
            };
            self.processed += 1;
            if let Some(log) = &mut self.log {
                log.push(args.clone());
            }
            match self.fault_for(&args) {
                None => {
                    let reply = self.execute(now, session, &args);
                    reply.encode(session.protocol, &mut out);
                }
                Some(FaultAction::Reply(v)) => v.encode(session.protocol, &mut out),
                Some(FaultAction::Raw(b)) => out.extend_from_slice(&b),
                Some(FaultAction::Hang) => session.state = SessionState::Hung,
                Some(FaultAction::ExecuteThenHang) => {
                    self.execute(now, session, &args);
                    session.state = SessionState::Hung;
                }
                Some(FaultAction::Close) => session.state = SessionState::Closed,
                Some(FaultAction::ExecuteThenClose) => {
                    self.execute(now, session, &args);
                    session.state = SessionState::Closed;
                }
                Some(FaultAction::Before(v)) => {
                    v.encode(session.protocol, &mut out);
                    let reply = self.execute(now, session, &args);
                    reply.encode(session.protocol, &mut out);
                }
            }
            if session.state != SessionState::Open {
                session.input.clear();
                break;
            }
        }
        out.freeze()
    }

    fn fault_for(&mut self, args: &[Bytes]) -> Option<FaultAction> {
        let name = args.first().map(|a| a.to_ascii_uppercase())?;
        let script = match name.as_slice() {
            b"EVALSHA" => args.get(1).and_then(|s| {
                self.known
                    .get(&String::from_utf8_lossy(s).to_ascii_lowercase())
            }),
            b"EVAL" => args.get(1).and_then(|s| self.known.get(&sha_of(s))),
            _ => None,
        }
        .copied();
        let i = self.faults.iter().position(|f| {
            let hit = match &f.matches {
                Match::Any => true,
                Match::Command(c) => c.as_bytes().eq_ignore_ascii_case(&name),
                Match::Script(k) => script == Some(*k),
            };
            hit && f.times != Some(0)
        })?;
        let fault = &mut self.faults[i];
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        if let Some(t) = &mut fault.times {
            *t -= 1;
        }
        let action = fault.action.clone();
        if fault.times == Some(0) {
            self.faults.remove(i);
        }
        Some(action)
    }

    // ----- command semantics ---------------------------------------------------------------

    /// Runs one command on `session` at `now` and returns its reply, ignoring faults and stalls.
    ///
    /// Modelled: `AUTH`, `HELLO`, `SELECT`, `CLIENT SETNAME|GETNAME|ID`, `PING`, `ECHO`, `GET`,
    /// `SET` (`NX`, `XX`, `PX`, `EX`, `KEEPTTL`, `GET`), `DEL`, `EXISTS`, `PEXPIRE`, `EXPIRE`,
    /// `PTTL`, `TTL`, `INFO`, `EVAL`, `EVALSHA`, `SCRIPT LOAD|EXISTS|FLUSH`, `FLUSHDB`,
    /// `FLUSHALL`, `DBSIZE`. Anything else is an unknown-command error.
    pub fn execute(&mut self, now: Instant, session: &mut Session, args: &[Bytes]) -> Value {
        let Some(name) = args.first() else {
            return Value::error("ERR empty command");
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let argv = &args[1..];
        if !session.authed && name != "AUTH" && name != "HELLO" {
            return Value::error("NOAUTH Authentication required.");
        }
        let arity = |min: usize, max: Option<usize>| {
            argv.len() >= min && max.is_none_or(|m| argv.len() <= m)
        };
        let wrong = || {
            Value::error(format!(
                "ERR wrong number of arguments for '{}' command",
                name.to_ascii_lowercase()
            ))
        };
        let db = session.db;
        match name.as_str() {
            "AUTH" if arity(1, Some(2)) => self.auth(session, argv),
            "HELLO" => self.hello(session, argv),
            "SELECT" if arity(1, Some(1)) => match int_arg(&argv[0]) {
                Some(n) if (0..i64::from(DATABASES)).contains(&n) => {
                    session.db = u32::try_from(n).unwrap_or(0);
                    Value::ok()
                }
                Some(_) => Value::error("ERR DB index is out of range"),
                None => Value::error("ERR value is not an integer or out of range"),
            },
            "CLIENT" if arity(1, None) => self.client(session, argv),
            "PING" if arity(0, Some(1)) => match argv.first() {
                None => Value::Simple("PONG".into()),
                Some(msg) => Value::Bulk(msg.clone()),
            },
            "ECHO" if arity(1, Some(1)) => Value::Bulk(argv[0].clone()),
            "GET" if arity(1, Some(1)) => match self.entry(now, db, &argv[0]) {
                Some(e) => Value::Bulk(e.value.clone()),
                None => Value::Nil,
            },
            "SET" if arity(2, None) => self.cmd_set(now, db, argv),
            "DEL" if arity(1, None) => {
                let n = argv.iter().filter(|k| self.del(now, db, k)).count();
                Value::Int(n as i64)
            }
            "EXISTS" if arity(1, None) => {
                let n = argv
                    .iter()
                    .filter(|k| self.entry(now, db, k).is_some())
                    .count();
                Value::Int(n as i64)
            }
            "PEXPIRE" | "EXPIRE" if arity(2, Some(2)) => {
                let unit = if name == "PEXPIRE" { 1 } else { 1000 };
                match int_arg(&argv[1]).and_then(|n| n.checked_mul(unit)) {
                    None => Value::error("ERR value is not an integer or out of range"),
                    Some(ms) => Value::Int(i64::from(self.pexpire(now, db, &argv[0], ms))),
                }
            }
            "PTTL" | "TTL" if arity(1, Some(1)) => match self.ttl(now, db, &argv[0]) {
                None => Value::Int(-2),
                Some(None) => Value::Int(-1),
                Some(Some(left)) => {
                    let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
                    Value::Int(if name == "PTTL" {
                        ms
                    } else {
                        (ms + 500) / 1000
                    })
                }
            },
            "DBSIZE" if arity(0, Some(0)) => {
                let n = self
                    .data
                    .iter()
                    .filter(|((d, _), e)| *d == db && e.live(now))
                    .count();
                Value::Int(n as i64)
            }
            "FLUSHDB" => {
                self.data.retain(|(d, _), _| *d != db);
                Value::ok()
            }
            "FLUSHALL" => {
                self.data.clear();
                Value::ok()
            }
            "INFO" => self.info(now, argv),
            "EVAL" | "EVALSHA" if arity(2, None) => self.eval(now, db, &name, argv),
            "SCRIPT" if arity(1, None) => self.script(argv),
            "AUTH" | "SELECT" | "CLIENT" | "PING" | "ECHO" | "GET" | "SET" | "DEL" | "EXISTS"
            | "PEXPIRE" | "EXPIRE" | "PTTL" | "TTL" | "DBSIZE" | "EVAL" | "EVALSHA" | "SCRIPT" => {
                wrong()
            }
            _ => {
                let rest: Vec<String> = argv
                    .iter()
                    .map(|a| format!("'{}'", String::from_utf8_lossy(a)))
                    .collect();
                Value::error(format!(
                    "ERR unknown command '{}', with args beginning with: {}",
                    String::from_utf8_lossy(&args[0]),
                    rest.join(" ")
                ))
            }
        }
    }

    fn check_password(&self, user: Option<&[u8]>, pass: &[u8]) -> Result<(), Value> {
        let Some((want_user, want_pass)) = &self.password else {
            return Err(Value::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        };
        let user_ok = match (user, want_user) {
            (None | Some(b"default"), None) => true,
            (Some(u), Some(w)) => u == w.as_bytes(),
            _ => false,
        };
        if user_ok && pass == want_pass.as_bytes() {
            Ok(())
        } else {
            Err(Value::error(
                "WRONGPASS invalid username-password pair or user is disabled.",
            ))
        }
    }

    fn auth(&mut self, session: &mut Session, argv: &[Bytes]) -> Value {
        let (user, pass) = match argv {
            [pass] => (None, pass),
            [user, pass] => (Some(&user[..]), pass),
            _ => return Value::error("ERR syntax error"),
        };
        match self.check_password(user, pass) {
            Ok(()) => {
                session.authed = true;
                Value::ok()
            }
            Err(e) => e,
        }
    }

    fn hello(&mut self, session: &mut Session, argv: &[Bytes]) -> Value {
        let mut protocol = session.protocol;
        let mut rest = argv;
        if let Some((ver, tail)) = rest.split_first() {
            protocol = match int_arg(ver) {
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                Some(_) => return Value::error("NOPROTO unsupported protocol version"),
                None => {
                    return Value::error("ERR Protocol version is not an integer or out of range")
                }
            };
            rest = tail;
        }
        let mut name = None;
        let mut authed = session.authed;
        while let Some((opt, tail)) = rest.split_first() {
            match (opt.to_ascii_uppercase().as_slice(), tail) {
                (b"AUTH", [user, pass, more @ ..]) => {
                    if let Err(e) = self.check_password(Some(user), pass) {
                        return e;
                    }
                    authed = true;
                    rest = more;
                }
                (b"SETNAME", [n, more @ ..]) => {
                    name = Some(n.clone());
                    rest = more;
                }
                _ => {
                    return Value::error(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(opt)
                    ))
                }
            }
        }
        if !authed {
            return Value::error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        session.authed = true;
        session.protocol = protocol;
        if name.is_some() {
            session.name = name;
        }
        let proto = if protocol == Protocol::Resp3 { 3 } else { 2 };
        Value::Map(vec![
            (Value::bulk("server"), Value::bulk("redis")),
            (Value::bulk("version"), Value::bulk(VERSION)),
            (Value::bulk("proto"), Value::Int(proto)),
            (
                Value::bulk("id"),
                Value::Int(i64::try_from(session.id).unwrap_or(i64::MAX)),
            ),
            (Value::bulk("mode"), Value::bulk("standalone")),
            (Value::bulk("role"), Value::bulk("master")),
            (Value::bulk("modules"), Value::Array(Vec::new())),
        ])
    }

    fn client(&mut self, session: &mut Session, argv: &[Bytes]) -> Value {
        match (argv[0].to_ascii_uppercase().as_slice(), &argv[1..]) {
            (b"SETNAME", [name]) => {
                if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                    return Value::error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                session.name = if name.is_empty() {
                    None
                } else {
                    Some(name.clone())
                };
                Value::ok()
            }
            (b"GETNAME", []) => session.name.clone().map_or(Value::Nil, Value::Bulk),
            (b"ID", []) => Value::Int(i64::try_from(session.id).unwrap_or(i64::MAX)),
            (sub, _) => Value::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            )),
        }
    }

    fn info(&self, now: Instant, argv: &[Bytes]) -> Value {
        let section = argv
            .first()
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
            .unwrap_or_else(|| "default".into());
        let mut text = String::new();
        if matches!(
            section.as_str(),
            "server" | "default" | "all" | "everything"
        ) {
            let up = self.uptime(now).as_secs();
            text.push_str(&format!(
                "# Server\r\nredis_version:{VERSION}\r\nredis_mode:standalone\r\nos:Model 1.0 x86_64\r\narch_bits:64\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:6379\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\n",
                self.seed + 1,
                self.run_id(),
                up / 86_400
            ));
        }
        if matches!(
            section.as_str(),
            "keyspace" | "default" | "all" | "everything"
        ) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            text.push_str("# Keyspace\r\n");
            let mut counts: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
            for ((db, _), e) in &self.data {
                if e.live(now) {
                    let c = counts.entry(*db).or_default();
                    c.0 += 1;
                    c.1 += usize::from(e.expires.is_some());
                }
            }
            for (db, (keys, expires)) in counts {
                text.push_str(&format!(
                    "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n"
                ));
            }
        }
        Value::Verbatim(Bytes::from(text))
    }

    fn cmd_set(&mut self, now: Instant, db: u32, argv: &[Bytes]) -> Value {
        let (key, value) = (&argv[0], &argv[1]);
        let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
        let mut expiry: Option<Duration> = None;
        let mut opts = argv[2..].iter();
        while let Some(opt) = opts.next() {
            match opt.to_ascii_uppercase().as_slice() {
                b"NX" if !xx => nx = true,
                b"XX" if !nx => xx = true,
                b"GET" => get = true,
                b"KEEPTTL" if expiry.is_none() => keepttl = true,
                unit @ (b"PX" | b"EX") if expiry.is_none() && !keepttl => {
                    let Some(n) = opts.next().and_then(int_arg) else {
                        return Value::error("ERR value is not an integer or out of range");
                    };
                    let Some(ms) = u64::try_from(n)
                        .ok()
                        .filter(|n| *n > 0)
                        .and_then(|n| n.checked_mul(if unit == b"EX" { 1000 } else { 1 }))
                    else {
                        return Value::error("ERR invalid expire time in 'set' command");
                    };
                    expiry = Some(Duration::from_millis(ms));
                }
                _ => return Value::error("ERR syntax error"),
            }
        }
        let old = self.entry(now, db, key).cloned();
        let reply_old = || {
            old.as_ref()
                .map_or(Value::Nil, |e| Value::Bulk(e.value.clone()))
        };
        if (nx && old.is_some()) || (xx && old.is_none()) {
            return if get { reply_old() } else { Value::Nil };
        }
        let expires = match (expiry, keepttl) {
            (Some(d), _) => Some(now + d),
            (None, true) => old.as_ref().and_then(|e| e.expires),
            (None, false) => None,
        };
        self.data.insert(
            (db, key.clone()),
            Entry {
                value: value.clone(),
                expires,
            },
        );
        if get {
            reply_old()
        } else {
            Value::ok()
        }
    }

    /// Whether every key in `keys` holds `token` (the extend and fence scripts' condition).
    fn all_hold(&self, db: u32, keys: &[Bytes], token: &Bytes) -> bool {
        keys.iter().all(|k| {
            self.data
                .get(&(db, k.clone()))
                .is_some_and(|e| e.value == *token)
        })
    }

    /// Whether some key in `keys` holds another token (the acquire scripts' refusal).
    fn any_held_by_other(&self, db: u32, keys: &[Bytes], token: &Bytes) -> bool {
        keys.iter().any(|k| {
            self.data
                .get(&(db, k.clone()))
                .is_some_and(|e| e.value != *token)
        })
    }

    /// `PEXPIRE`: whether the key existed. A non-positive time deletes the key, as Redis does.
    fn pexpire(&mut self, now: Instant, db: u32, key: &Bytes, ms: i64) -> bool {
        self.expire_key(now, db, key);
        let Some(e) = self.data.get_mut(&(db, key.clone())) else {
            return false;
        };
        match u64::try_from(ms) {
            Ok(ms) if ms > 0 => e.expires = Some(now + Duration::from_millis(ms)),
            _ => {
                self.data.remove(&(db, key.clone()));
            }
        }
        true
    }

    fn script(&mut self, argv: &[Bytes]) -> Value {
        match (argv[0].to_ascii_uppercase().as_slice(), &argv[1..]) {
            (b"LOAD", [source]) => Value::bulk(self.load_script(&String::from_utf8_lossy(source))),
            (b"EXISTS", shas) if !shas.is_empty() => Value::Array(
                shas.iter()
                    .map(|s| Value::Int(i64::from(self.script_cached(&String::from_utf8_lossy(s)))))
                    .collect(),
            ),
            (b"FLUSH", [] | [_]) => {
                self.flush_scripts();
                Value::ok()
            }
            (sub, _) => Value::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
                String::from_utf8_lossy(sub)
            )),
        }
    }

    fn eval(&mut self, now: Instant, db: u32, name: &str, argv: &[Bytes]) -> Value {
        let sha = if name == "EVAL" {
            self.load_script(&String::from_utf8_lossy(&argv[0]))
        } else {
            let sha = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
            if !self.cache.contains_key(&sha) {
                return Value::error(NOSCRIPT);
            }
            sha
        };
        let numkeys = match int_arg(&argv[1]) {
            None => return Value::error("ERR value is not an integer or out of range"),
            Some(n) if n < 0 => return Value::error("ERR Number of keys can't be negative"),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let rest = &argv[2..];
        if numkeys > rest.len() {
            return Value::error("ERR Number of keys can't be greater than number of args");
        }
        let (keys, args) = rest.split_at(numkeys);
        let Some(kind) = self.known.get(&sha).copied() else {
            return Value::error(format!(
                "ERR the model cannot run script {sha}: teach it with Node::learn_script"
            ));
        };
        let script_error = |detail: &str| {
            Value::error(format!(
                "ERR Error running script (call to f_{sha}): @user_script: {detail}"
            ))
        };
        let Some(token) = args.first() else {
            return script_error("ARGV[1] (the token) is missing");
        };
        for k in keys {
            self.expire_key(now, db, k);
        }
        match kind {
            ScriptKind::Acquire => {
                let Some(ms) = args
                    .get(1)
                    .and_then(int_arg)
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n > 0)
                else {
                    return script_error("ERR invalid expire time in 'set' command");
                };
                // As the script: refuse only a key held with another token.
                if self.any_held_by_other(db, keys, token) {
                    return Value::Int(0);
                }
                for k in keys {
                    self.data.insert(
                        (db, k.clone()),
                        Entry {
                            value: token.clone(),
                            expires: Some(now + Duration::from_millis(ms)),
                        },
                    );
                }
                Value::Int(1)
            }
            ScriptKind::Extend => {
                let Some(ms) = args.get(1).and_then(int_arg) else {
                    return script_error("ERR value is not an integer or out of range");
                };
                if !self.all_hold(db, keys, token) {
                    return Value::Int(0);
                }
                for k in keys {
                    // As the script: raise the remaining ttl, never lower it.
                    let left = self
                        .data
                        .get(&(db, k.clone()))
                        .and_then(|e| e.expires)
                        .map(|at| at.saturating_duration_since(now));
                    if left.is_some_and(|left| {
                        left < Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                    }) {
                        self.pexpire(now, db, k, ms);
                    }
                }
                Value::Int(1)
            }
            ScriptKind::Release => {
                let mut n = 0;
                for k in keys {
                    let key = (db, k.clone());
                    if self.data.get(&key).is_some_and(|e| e.value == *token) {
                        self.data.remove(&key);
                        n += 1;
                    }
                }
                Value::Int(n)
            }
            ScriptKind::FencedAcquire => {
                let Some(ms) = args
                    .get(1)
                    .and_then(int_arg)
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n > 0)
                else {
                    return script_error("ERR invalid expire time in 'set' command");
                };
                let (locks, counters) = keys.split_at(keys.len() / 2);
                if self.any_held_by_other(db, locks, token) {
                    return Value::Array(vec![Value::Int(0)]);
                }
                let top = counters
                    .iter()
                    .map(|k| self.counter(now, db, k))
                    .max()
                    .unwrap_or(0);
                for k in locks {
                    self.data.insert(
                        (db, k.clone()),
                        Entry {
                            value: token.clone(),
                            expires: Some(now + Duration::from_millis(ms)),
                        },
                    );
                }
                Value::Array(vec![Value::Int(1), Value::Int(top)])
            }
            ScriptKind::Fence => {
                let Some(t) = args.get(1).and_then(int_arg) else {
                    return script_error("attempt to compare nil with number");
                };
                let (locks, counters) = keys.split_at(keys.len() / 2);
                if !self.all_hold(db, locks, token) {
                    return Value::Int(0);
                }
                for k in counters {
                    self.expire_key(now, db, k);
                    if t > self.counter(now, db, k) {
                        self.data.insert(
                            (db, k.clone()),
                            Entry {
                                value: args[1].clone(),
                                expires: None,
                            },
                        );
                    }
                }
                Value::Int(1)
            }
            ScriptKind::Reply(n) => Value::Int(n),
        }
    }

    /// A fence counter as the scripts read it: `tonumber(GET k or '0') or 0`.
    fn counter(&self, now: Instant, db: u32, key: &Bytes) -> i64 {
        self.entry(now, db, key)
            .and_then(|e| parse_int(&e.value))
            .unwrap_or(0)
    }
}

/// [`script_sha`], remembered per thread: simulations hash the same few sources millions of
/// times.
fn sha_of(source: &[u8]) -> String {
    thread_local! {
        static SHAS: std::cell::RefCell<HashMap<Vec<u8>, String>> =
            std::cell::RefCell::new(HashMap::new());
    }
    SHAS.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(sha) = m.get(source) {
            return sha.clone();
        }
        let sha = script_sha(&String::from_utf8_lossy(source));
        if m.len() >= 256 {
            m.clear();
        }
        m.insert(source.to_vec(), sha.clone());
        sha
    })
}

fn int_arg(b: &Bytes) -> Option<i64> {
    parse_int(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redlock_core::resp::{encode_command, Decoder, Reply};

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode_command(&mut b, args);
        b.to_vec()
    }

    fn replies(protocol: Protocol, bytes: &[u8]) -> Vec<Reply> {
        let mut d = Decoder::new(protocol, 1 << 20);
        let mut out = Vec::new();
        d.feed(bytes, |r| out.push(r)).expect("valid RESP");
        assert_eq!(d.buffered(), 0, "trailing bytes");
        out
    }

    fn run(node: &mut Node, now: Instant, s: &mut Session, args: &[&str]) -> Reply {
        let out = node.feed(now, s, &cmd(args));
        let mut r = replies(s.protocol(), &out);
        assert_eq!(r.len(), 1, "{args:?} → {out:?}");
        r.remove(0)
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn err_starts(r: &Reply, prefix: &str) -> bool {
        matches!(r, Reply::Error(e) if e.starts_with(prefix))
    }

    #[test]
    fn strings_and_expiry() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut n = Node::new(t, 0);
        let mut s = n.connect().unwrap();
        assert_eq!(
            run(&mut n, t, &mut s, &["PING"]),
            Reply::Status("PONG".into())
        );
        assert_eq!(
            run(&mut n, t, &mut s, &["SET", "k", "v", "PX", "100"]),
            Reply::Status("OK".into())
        );
        assert_eq!(run(&mut n, t, &mut s, &["SET", "k", "w", "NX"]), Reply::Nil);
        assert_eq!(run(&mut n, t, &mut s, &["GET", "k"]), bulk("v"));
        assert_eq!(
            run(&mut n, t + ms(40), &mut s, &["PTTL", "k"]),
            Reply::Int(60)
        );
        assert_eq!(
            run(&mut n, t + ms(100), &mut s, &["EXISTS", "k", "k", "x"]),
            Reply::Int(2)
        );
        assert_eq!(run(&mut n, t + ms(101), &mut s, &["GET", "k"]), Reply::Nil);
        assert_eq!(
            run(&mut n, t + ms(101), &mut s, &["PTTL", "k"]),
            Reply::Int(-2)
        );
        assert_eq!(
            run(&mut n, t, &mut s, &["SET", "p", "1"]),
            Reply::Status("OK".into())
        );
        assert_eq!(run(&mut n, t, &mut s, &["PTTL", "p"]), Reply::Int(-1));
        assert_eq!(
            run(&mut n, t, &mut s, &["PEXPIRE", "p", "10"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut n, t, &mut s, &["PEXPIRE", "nope", "10"]),
            Reply::Int(0)
        );
        assert_eq!(
            run(&mut n, t + ms(11), &mut s, &["DEL", "p", "k"]),
            Reply::Int(1)
        );
        assert!(err_starts(
            &run(&mut n, t, &mut s, &["SET", "k", "v", "PX", "0"]),
            "ERR invalid expire"
        ));
        assert!(err_starts(
            &run(&mut n, t, &mut s, &["GET"]),
            "ERR wrong number"
        ));
        assert!(err_starts(
            &run(&mut n, t, &mut s, &["FROB"]),
            "ERR unknown command"
        ));
        assert_eq!(
            run(&mut n, t, &mut s, &["SELECT", "3"]),
            Reply::Status("OK".into())
        );
        assert_eq!(
            run(&mut n, t, &mut s, &["SET", "z", "3"]),
            Reply::Status("OK".into())
        );
        assert_eq!(n.get(t, 3, b"z"), Some(Bytes::from_static(b"3")));
        assert_eq!(n.get(t, 0, b"z"), None);
        assert!(err_starts(
            &run(&mut n, t, &mut s, &["SELECT", "16"]),
            "ERR DB index"
        ));
    }

    #[test]
    fn scripts_and_cache() {
        let t = Instant::now();
        let mut n = Node::new(t, 0);
        let mut s = n.connect().unwrap();
        let acq = script_sha(ACQUIRE);
        let r = run(
            &mut n,
            t,
            &mut s,
            &["EVALSHA", &acq, "1", "k", "tok", "1000"],
        );
        assert_eq!(r, Reply::Error(NOSCRIPT.into()));
        assert_eq!(
            run(
                &mut n,
                t,
                &mut s,
                &["EVAL", ACQUIRE, "1", "k", "tok", "1000"]
            ),
            Reply::Int(1)
        );
        assert!(n.script_cached(&acq));
        assert_eq!(
            run(
                &mut n,
                t,
                &mut s,
                &["EVALSHA", &acq, "2", "j", "k", "x", "1000"]
            ),
            Reply::Int(0)
        );
        assert_eq!(n.get(t, 0, b"j"), None, "all or nothing");
        assert_eq!(
            run(&mut n, t, &mut s, &["SCRIPT", "LOAD", EXTEND]),
            bulk(&script_sha(EXTEND))
        );
        let ext = script_sha(EXTEND);
        assert_eq!(
            run(
                &mut n,
                t,
                &mut s,
                &["EVALSHA", &ext, "1", "k", "other", "5000"]
            ),
            Reply::Int(0)
        );
        assert_eq!(
            run(
                &mut n,
                t,
                &mut s,
                &["EVALSHA", &ext, "1", "k", "tok", "5000"]
            ),
            Reply::Int(1)
        );
        assert_eq!(n.ttl(t, 0, b"k"), Some(Some(Duration::from_secs(5))));
        assert_eq!(
            run(&mut n, t, &mut s, &["EVAL", RELEASE, "2", "k", "j", "tok"]),
            Reply::Int(1)
        );
        assert_eq!(n.dump(t), vec![]);
        n.flush_scripts();
        assert!(!n.script_cached(&acq));
        assert!(err_starts(
            &run(&mut n, t, &mut s, &["EVAL", "return 1", "0"]),
            "ERR the model cannot run"
        ));
        assert!(err_starts(
            &run(&mut n, t, &mut s, &["EVAL", ACQUIRE, "3", "k"]),
            "ERR Number of keys"
        ));
    }

    #[test]
    fn fenced_scripts() {
        let t = Instant::now();
        let mut n = Node::new(t, 0);
        let mut s = n.connect().unwrap();
        let int = |v: i64| Reply::Int(v);
        let acquire = |n: &mut Node, s: &mut Session, tok: &str| {
            run(
                n,
                t,
                s,
                &[
                    "EVAL",
                    FENCED_ACQUIRE,
                    "4",
                    "a",
                    "b",
                    "{a}:fence",
                    "{b}:fence",
                    tok,
                    "100",
                ],
            )
        };
        assert_eq!(
            acquire(&mut n, &mut s, "x"),
            Reply::Array(vec![int(1), int(0)])
        );
        assert_eq!(acquire(&mut n, &mut s, "y"), Reply::Array(vec![int(0)]));
        let fence = |n: &mut Node, s: &mut Session, tok: &str, v: &str| {
            run(
                n,
                t,
                s,
                &[
                    "EVAL",
                    FENCE,
                    "4",
                    "a",
                    "b",
                    "{a}:fence",
                    "{b}:fence",
                    tok,
                    v,
                ],
            )
        };
        assert_eq!(fence(&mut n, &mut s, "y", "9"), int(0), "not the holder");
        assert_eq!(n.get(t, 0, b"{a}:fence"), None);
        assert_eq!(fence(&mut n, &mut s, "x", "7"), int(1));
        assert_eq!(fence(&mut n, &mut s, "x", "5"), int(1), "never lowers");
        assert_eq!(n.get(t, 0, b"{b}:fence"), Some(Bytes::from_static(b"7")));
        assert_eq!(
            n.ttl(t, 0, b"{b}:fence"),
            Some(None),
            "counters never expire"
        );
        n.set(t, 0, b"{b}:fence", b"11", None);
        assert_eq!(
            run(&mut n, t, &mut s, &["EVAL", RELEASE, "2", "a", "b", "x"]),
            int(2)
        );
        assert_eq!(
            acquire(&mut n, &mut s, "z"),
            Reply::Array(vec![int(1), int(11)])
        );
        n.learn_script("return 1", ScriptKind::Reply(1));
        assert_eq!(
            run(&mut n, t, &mut s, &["EVAL", "return 1", "0", "tok"]),
            int(1)
        );
    }

    #[test]
    fn handshake_commands() {
        let t = Instant::now();
        let mut n = Node::new(t, 9);
        n.set_password(Some("app"), "pw");
        let mut s = n.connect().unwrap();
        assert!(err_starts(&run(&mut n, t, &mut s, &["GET", "k"]), "NOAUTH"));
        assert!(err_starts(
            &run(&mut n, t, &mut s, &["AUTH", "app", "nope"]),
            "WRONGPASS"
        ));
        assert!(err_starts(
            &run(&mut n, t, &mut s, &["HELLO", "3"]),
            "NOAUTH"
        ));
        let r = run(
            &mut n,
            t,
            &mut s,
            &["HELLO", "3", "AUTH", "app", "pw", "SETNAME", "me"],
        );
        assert!(matches!(r, Reply::Map(ref m) if m.len() == 7), "{r:?}");
        assert_eq!(s.protocol(), Protocol::Resp3);
        assert_eq!(s.name(), Some(&b"me"[..]));
        assert_eq!(run(&mut n, t, &mut s, &["GET", "k"]), Reply::Nil);
        assert_eq!(
            run(&mut n, t, &mut s, &["CLIENT", "SETNAME", "x"]),
            Reply::Status("OK".into())
        );
        let info = run(
            &mut n,
            t + Duration::from_secs(7),
            &mut s,
            &["INFO", "server"],
        );
        let Reply::Bulk(text) = info else {
            panic!("{info:?}")
        };
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.starts_with("# Server\r\n"), "{text}");
        assert!(
            text.contains(&format!("run_id:{}\r\n", n.run_id())),
            "{text}"
        );
        assert!(text.contains("uptime_in_seconds:7\r\n"), "{text}");
        let before = n.run_id();
        n.restart(t, true);
        assert_ne!(n.run_id(), before);
        assert!(n.feed(t, &mut s, &cmd(&["PING"])).is_empty());
        assert_eq!(s.state(), SessionState::Closed);
    }

    #[test]
    fn framing_faults_and_stalls() {
        let t = Instant::now();
        let mut n = Node::new(t, 0);
        let mut s = n.connect().unwrap();
        let mut all = cmd(&["SET", "a", "1"]);
        all.extend(cmd(&["GET", "a"]));
        all.extend_from_slice(b"PING\r\n");
        // Byte at a time: same replies.
        let mut out = Vec::new();
        for b in &all {
            out.extend_from_slice(&n.feed(t, &mut s, &[*b]));
        }
        assert_eq!(out, b"+OK\r\n$1\r\n1\r\n+PONG\r\n");
        n.inject(
            Fault::new(
                Match::Command("get".into()),
                FaultAction::Reply(Value::error("BUSY x")),
            )
            .times(1),
        );
        assert!(err_starts(&run(&mut n, t, &mut s, &["GET", "a"]), "BUSY"));
        assert_eq!(run(&mut n, t, &mut s, &["GET", "a"]), bulk("1"));
        n.set_stalled(true);
        assert!(n.feed(t, &mut s, &cmd(&["GET", "a"])).is_empty());
        n.set_stalled(false);
        assert_eq!(&n.feed(t, &mut s, b"")[..], b"$1\r\n1\r\n");
        n.inject(Fault::new(Match::Any, FaultAction::ExecuteThenHang));
        assert!(n.feed(t, &mut s, &cmd(&["DEL", "a"])).is_empty());
        assert_eq!(s.state(), SessionState::Hung);
        assert_eq!(n.get(t, 0, b"a"), None);
        n.clear_faults();
        let mut s = n.connect().unwrap();
        let out = n.feed(t, &mut s, b"*1\r\n$4\r\nPING\r\n*x\r\n");
        assert!(out.starts_with(b"+PONG\r\n-ERR Protocol error"), "{out:?}");
        assert_eq!(s.state(), SessionState::Closed);
    }
}
