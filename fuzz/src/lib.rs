//! Shared harness for the fuzz targets: a clock the fuzzer can move both ways, a model of what
//! was written to each node (so a step can answer the request at the head of a node's pipeline
//! plausibly), and the invariants every target checks after every step.
//!
//! Invariants checked on every drain:
//! - `poll_transmit` only ever hands out whole RESP arrays of bulk strings, for known nodes;
//! - every `Event::Completed` names an operation that was started and not completed before;
//! - an acquired / extended lock is valid at the latest instant the engine was given;
//! - `poll_timeout` answers.

use bytes::Bytes;
use redlock_core::{Config, Engine, Event, Lock, NodeConfig, NodeId, OpId, Options, Released};

/// What a successful operation produced.
enum Done {
    Lock(Lock),
    Released(Released),
}
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

/// Whether to print every event (`REDLOCK_FUZZ_TRACE=1`), for reading a reproducer.
pub fn trace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("REDLOCK_FUZZ_TRACE").is_some_and(|v| v == "1"))
}

/// How many fixed nodes there are; targets use the first `n` ([`node`]).
pub const NODES: usize = 5;

/// The `i`-th of the five fixed nodes (ports 7001…7005), two of them with credentials and one
/// with a database: the handshake paths are fuzzed too.
pub fn node(i: usize) -> NodeConfig {
    let node = NodeConfig::new("127.0.0.1", 7001 + i as u16);
    match i {
        2 => node.with_auth(Some("app"), "pw").with_db(2),
        4 => node.with_auth(None, "pw"),
        _ => node,
    }
}

/// A fuzzer-driven clock. It starts an hour past `base` so it can go backwards without leaving
/// the range every platform's `Instant` can represent.
pub struct Clock {
    base: Instant,
    offset: Duration,
    latest: Duration,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock at an arbitrary instant.
    pub fn new() -> Clock {
        let start = Duration::from_secs(3600);
        Clock {
            base: Instant::now(),
            offset: start,
            latest: start,
        }
    }

    /// The current (possibly rewound) instant.
    pub fn now(&self) -> Instant {
        self.base + self.offset
    }

    /// The wall clock at [`Clock::now`], for `Engine::acquire`: a fixed date plus the virtual
    /// offset, so a run is the same whenever it happens (and rewinds with `now`).
    pub fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.offset
    }

    /// The latest instant the engine is known to have taken in (see [`Clock::observe`]): its
    /// idea of now is at least this, since time going backwards is ignored.
    pub fn latest(&self) -> Instant {
        self.base + self.latest
    }

    /// Records that the engine took `t` in (a call that returned `Ok`, or `handle_timeout`).
    /// Calls refused as misuse may not have looked at the clock, so they do not count.
    pub fn observe(&mut self, t: Instant) {
        self.latest = self.latest.max(t.saturating_duration_since(self.base));
    }

    /// Moves forward.
    pub fn forward(&mut self, by: Duration) {
        self.offset += by;
    }

    /// Moves backward (never before `base`).
    pub fn backward(&mut self, by: Duration) {
        self.offset = self.offset.saturating_sub(by);
    }

    /// Jumps to `t` (forward or backward).
    pub fn set(&mut self, t: Instant) {
        self.offset = t.saturating_duration_since(self.base);
    }

    /// Seconds since `base`, for messages.
    pub fn secs(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.base).as_secs_f64()
    }
}

/// What the harness knows about one started operation.
#[derive(Debug)]
pub struct Started {
    /// The resources asked for (acquire) or of the lock (extend / release).
    pub resources: Vec<String>,
    /// Whether this op must produce a lock when it succeeds.
    pub kind: OpKind,
}

/// The operation kinds, for checking the result's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `acquire`.
    Acquire,
    /// `extend`.
    Extend,
    /// `release`.
    Release,
}

/// The harness's view of the engine: started ops, completions, locks handed out, and the
/// commands written to each node that have not been answered yet.
pub struct Harness {
    /// The engine under test.
    pub engine: Engine,
    /// The fuzzer's clock.
    pub clock: Clock,
    /// Started ops that have not completed.
    pub open: BTreeMap<OpId, Started>,
    /// Every op that completed.
    pub done: BTreeMap<OpId, OpKind>,
    /// Locks the engine handed out (most recent last).
    pub locks: Vec<Lock>,
    /// Per node: commands written and not answered yet, oldest first.
    pub wire: Vec<VecDeque<Vec<Bytes>>>,
    /// Per node: whether the harness considers the socket open.
    pub up: Vec<bool>,
    /// How many `Event::Reconnect` were seen.
    pub reconnects: usize,
}

impl Harness {
    /// An engine over the first `nodes` of [`NODES`] fixed nodes (clamped to 1..=5) with `options`.
    /// `None` when the options are rejected (that must be an `Err`, checked here).
    pub fn new(nodes: usize, options: Options, seed: u64) -> Option<Harness> {
        let nodes = nodes.clamp(1, NODES);
        let valid = options.validate().is_ok();
        let config = Config::new((0..nodes).map(node).collect(), options);
        let clock = Clock::new();
        let engine = match Engine::new(config, clock.now(), seed) {
            Ok(e) => e,
            Err(_) => {
                assert!(!valid, "Engine::new refused options that validate()");
                return None;
            }
        };
        assert!(
            valid,
            "Engine::new accepted options that validate() refuses"
        );
        assert_eq!(engine.node_count(), nodes);
        assert_eq!(engine.quorum(), nodes / 2 + 1);
        Some(Harness {
            engine,
            clock,
            open: BTreeMap::new(),
            done: BTreeMap::new(),
            locks: Vec::new(),
            wire: vec![VecDeque::new(); nodes],
            up: vec![false; nodes],
            reconnects: 0,
        })
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.wire.len()
    }

    /// Records a started op.
    pub fn started(&mut self, id: OpId, kind: OpKind, resources: Vec<String>) {
        assert!(
            !self.open.contains_key(&id) && !self.done.contains_key(&id),
            "{id} handed out twice"
        );
        self.open.insert(id, Started { resources, kind });
    }

    /// `handle_connected` on a valid node.
    pub fn connect(&mut self, node: usize) {
        let now = self.clock.now();
        self.engine.handle_connected(now, NodeId::new(node));
        self.clock.observe(now);
        self.wire[node].clear();
        self.up[node] = true;
        assert!(self.engine.is_connected(NodeId::new(node)));
        self.drain();
    }

    /// `handle_disconnected` on a valid node.
    pub fn disconnect(&mut self, node: usize) {
        let now = self.clock.now();
        self.engine.handle_disconnected(now, NodeId::new(node));
        self.clock.observe(now);
        self.wire[node].clear();
        self.up[node] = false;
        assert!(!self.engine.is_connected(NodeId::new(node)));
        self.drain();
    }

    /// `handle_input` on a valid node (the bytes are fed even when the harness thinks the
    /// socket is closed: the engine must ignore them).
    pub fn input(&mut self, node: usize, bytes: &[u8]) {
        let now = self.clock.now();
        self.engine.handle_input(now, NodeId::new(node), bytes);
        self.clock.observe(now);
        self.drain();
    }

    /// `handle_timeout` at the clock's current instant.
    pub fn timeout(&mut self) {
        let now = self.clock.now();
        self.engine.handle_timeout(now);
        self.clock.observe(now);
        self.drain();
    }

    /// Drains every output and checks the invariants.
    pub fn drain(&mut self) {
        let nodes = self.nodes();
        let mut rounds = 0usize;
        while let Some((node, bytes)) = self.engine.poll_transmit() {
            rounds += 1;
            assert!(rounds <= nodes, "poll_transmit kept returning data");
            assert!(node.index() < nodes, "transmit to unknown {node}");
            assert!(!bytes.is_empty(), "empty transmit");
            assert!(
                self.engine.is_connected(node),
                "bytes queued for disconnected {node}"
            );
            for cmd in decode_commands(&bytes) {
                self.wire[node.index()].push_back(cmd);
            }
        }
        while let Some(event) = self.engine.poll_event() {
            if trace() {
                eprintln!("event: {event:?}");
            }
            // Each operation completes with the event of its kind.
            let (op, kind, result) = match event {
                Event::Acquired { op, result } => (op, OpKind::Acquire, result.map(Done::Lock)),
                Event::Extended { op, result } => (op, OpKind::Extend, result.map(Done::Lock)),
                Event::Released { op, result } => (op, OpKind::Release, result.map(Done::Released)),
                other => {
                    self.other_event(other, nodes);
                    continue;
                }
            };
            let Some(started) = self.open.remove(&op) else {
                panic!(
                    "{op} completed but is not open (completed before: {})",
                    self.done.contains_key(&op)
                );
            };
            assert_eq!(
                started.kind, kind,
                "{op} completed as another kind of operation"
            );
            self.done.insert(op, started.kind);
            match result {
                Ok(Done::Lock(lock)) => {
                    assert!(
                        lock.is_valid(self.clock.latest()),
                        "{op}: lock handed out already expired: valid until {} s, \
                         engine time {} s (harness clock {} s), ttl {:?}",
                        self.clock.secs(lock.valid_until()),
                        self.clock.secs(self.clock.latest()),
                        self.clock.secs(self.clock.now()),
                        lock.ttl()
                    );
                    assert_eq!(lock.resources(), &started.resources[..]);
                    assert!(lock.attempts() >= 1);
                    self.locks.push(lock);
                }
                Ok(Done::Released(r)) => {
                    assert_eq!(r.attempt.nodes.len(), nodes);
                    assert!(r.confirmed <= nodes);
                }
                Err(e) => {
                    for a in &e.attempts {
                        assert_eq!(a.nodes.len(), nodes, "{op}: attempt report size");
                    }
                    let _ = e.to_string();
                }
            }
        }
        assert_eq!(
            self.engine.in_flight(),
            self.open.len(),
            "in_flight disagrees"
        );
        let _ = self.engine.poll_timeout();
    }

    /// An event that completes no operation.
    fn other_event(&mut self, event: Event, nodes: usize) {
        // A link beyond the nodes' own (a RESP2 node's subscriber) stays unopened here, like
        // one whose connects keep failing: nothing may be written to it.
        if let Event::Open { link, node, to } = event {
            assert!(link.index() >= nodes && node.index() < nodes && to.is_none());
            return;
        }
        if let Event::Reconnect { link: node, reason } = event {
            assert!(node.index() < nodes);
            assert!(
                !self.engine.is_connected(node),
                "Reconnect for {node}, still connected"
            );
            let _ = reason.to_string();
            self.wire[node.index()].clear();
            self.up[node.index()] = false;
            self.reconnects += 1;
        }
    }

    /// A plausible reply to the oldest unanswered command on `node` (`grant` picks yes/no for
    /// lock scripts), or `None` when nothing is outstanding.
    pub fn answer(&mut self, node: usize, grant: bool) -> Option<Vec<u8>> {
        let cmd = self.wire[node].pop_front()?;
        Some(plausible_reply(&cmd, grant))
    }

    /// Answers every outstanding handshake command on every node.
    pub fn answer_handshakes(&mut self) {
        for node in 0..self.nodes() {
            let mut replies = Vec::new();
            while self.wire[node]
                .front()
                .is_some_and(|c| !matches!(&c[0][..], b"EVALSHA" | b"EVAL"))
            {
                let cmd = self.wire[node].pop_front().expect("front");
                replies.extend(plausible_reply(&cmd, true));
            }
            if !replies.is_empty() {
                self.input(node, &replies);
            }
        }
    }

    /// Disconnects nothing; advances time to `poll_timeout()` until nothing waits on time, for
    /// at most `max_steps` steps, then checks every started op completed.
    pub fn settle(&mut self, max_steps: usize) {
        for _ in 0..max_steps {
            let Some(t) = self.engine.poll_timeout() else {
                break;
            };
            // poll_timeout may be in the past (time went backwards): never move the clock back
            // here, or handle_timeout would see an earlier instant than the engine's now.
            if t > self.clock.now() {
                self.clock.set(t);
            }
            self.timeout();
        }
        assert!(
            self.open.is_empty(),
            "ops still open after {max_steps} timeout steps: {:?} (poll_timeout {:?}, now {:?})",
            self.open.keys().collect::<Vec<_>>(),
            self.engine
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.clock.now())),
            self.clock.now()
        );
        assert_eq!(self.engine.in_flight(), 0);
    }
}

/// Splits transmitted bytes into commands; panics unless they are whole RESP arrays of bulk
/// strings (what the engine promises to write). A strict hand-written reader: redis-protocol's
/// parser is checked against the encoder in `resp_roundtrip`, and is too slow to run on every
/// handshake here.
pub fn decode_commands(bytes: &Bytes) -> Vec<Vec<Bytes>> {
    fn header(bytes: &Bytes, pos: &mut usize, kind: u8) -> usize {
        assert_eq!(
            bytes.get(*pos),
            Some(&kind),
            "expected {:?} at {pos}",
            kind as char
        );
        let start = *pos + 1;
        let end = start
            + bytes[start..]
                .iter()
                .position(|&b| b == b'\r')
                .expect("header without CR");
        assert_eq!(bytes.get(end + 1), Some(&b'\n'), "header without CRLF");
        let digits = &bytes[start..end];
        assert!(
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
            "bad length {digits:?}"
        );
        assert!(
            digits == b"0" || digits[0] != b'0',
            "length with leading zero"
        );
        *pos = end + 2;
        std::str::from_utf8(digits)
            .expect("digits")
            .parse()
            .expect("length fits")
    }
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let n = header(bytes, &mut pos, b'*');
        assert!(n > 0, "empty command");
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let len = header(bytes, &mut pos, b'$');
            let end = pos + len;
            assert!(end + 2 <= bytes.len(), "bulk string runs past the buffer");
            assert_eq!(
                &bytes[end..end + 2],
                b"\r\n",
                "bulk string not CRLF-terminated"
            );
            args.push(bytes.slice(pos..end));
            pos = end + 2;
        }
        out.push(args);
    }
    out
}

fn sha_of(source: &[u8]) -> String {
    thread_local! {
        static CACHE: std::cell::RefCell<Vec<(Bytes, String)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((_, sha)) = c.iter().find(|(s, _)| &s[..] == source) {
            return sha.clone();
        }
        let sha = redlock_core::script_sha(&String::from_utf8_lossy(source));
        c.push((Bytes::copy_from_slice(source), sha.clone()));
        sha
    })
}

/// What a well-behaved Redis would answer to `cmd`.
pub fn plausible_reply(cmd: &[Bytes], grant: bool) -> Vec<u8> {
    match &cmd[0][..] {
        b"SCRIPT" => {
            let sha = sha_of(&cmd[2]);
            format!("$40\r\n{sha}\r\n").into_bytes()
        }
        b"HELLO" => b"%1\r\n+server\r\n+redis\r\n".to_vec(),
        b"INFO" => {
            let body = "# Server\r\nrun_id:0123456789abcdef0123456789abcdef01234567\r\nuptime_in_seconds:86400\r\n";
            format!("${}\r\n{body}\r\n", body.len()).into_bytes()
        }
        b"EVALSHA" | b"EVAL" => {
            let release = cmd[1] == sha_of(redlock_core::RELEASE.as_bytes()).as_bytes()
                || cmd[1] == redlock_core::RELEASE.as_bytes();
            match (release, grant) {
                (true, true) => b":1\r\n".to_vec(),
                (true, false) => b":0\r\n".to_vec(),
                (false, true) => b":1\r\n".to_vec(),
                (false, false) => b"$-1\r\n".to_vec(),
            }
        }
        _ => b"+OK\r\n".to_vec(),
    }
}

/// A token from `len` bytes of `fill`: must be `Err` below 16 bytes.
pub fn token(len: usize, fill: u8) -> Option<redlock_core::Token> {
    let t = redlock_core::Token::from_random(&vec![fill; len]);
    assert_eq!(
        t.is_ok(),
        len >= redlock_core::MIN_TOKEN_BYTES,
        "token of {len} bytes"
    );
    t.ok()
}
