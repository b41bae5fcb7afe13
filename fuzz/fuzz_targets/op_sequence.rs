//! Arbitrary sequences of operations, replies, connects / disconnects and clock moves.
//!
//! Checks: no panic; caller misuse (no resources, an empty name, a ttl with no validity left,
//! a short token, an unknown node or op) is an `Err`, never a panic; time going backwards is
//! ignored; every op completes at most once and only if it was started; outputs stay consistent
//! (see the harness); and once every node is disconnected and time runs on, everything
//! completes within a bounded number of `handle_timeout` steps.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use redlock_core::{Error, NodeId, OpId, Options, Protocol, MAX_DURATION};
use redlock_fuzz::{token, Harness, OpKind};
use std::time::Duration;

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: u8,
    resp3: bool,
    retry_count: Option<u8>,
    retry_delay: Dur,
    retry_jitter: Dur,
    node_timeout: Dur,
    drift: Drift,
    max_reply_bytes: u16,
    key_prefix: bool,
    seed: u64,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Drift {
    /// 0 to 0.999: valid.
    Permille(u16),
    /// Anything, NaN included: mostly refused by `Engine::new`.
    Raw(f64),
}

#[derive(Arbitrary, Debug)]
enum Dur {
    Millis(u16),
    Raw(u64, u32),
}

impl Dur {
    fn get(&self) -> Duration {
        match *self {
            Dur::Millis(ms) => Duration::from_millis(u64::from(ms)),
            Dur::Raw(s, n) => {
                // Any length: Options::validate refuses those past MAX_DURATION (regressions
                // node-timeout-overflow, retry-delay-overflow, retry-delay-sum-overflow).
                Duration::new(s, n % 1_000_000_000)
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Ttl {
    Millis(u16),
    Secs(u32),
    Raw(u64, u32),
}

impl Ttl {
    fn get(&self) -> Duration {
        match *self {
            Ttl::Millis(ms) => Duration::from_millis(u64::from(ms)),
            Ttl::Secs(s) => Duration::from_secs(u64::from(s)),
            Ttl::Raw(s, n) => {
                // Any length: acquire and extend refuse ttls past MAX_DURATION (regression
                // ttl-overflow-instant).
                Duration::new(s, n % 1_000_000_000)
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Reply {
    One,
    Zero,
    Nil,
    Ok,
    Err,
    NoScript,
    Sha,
    Int(i64),
    Text(String),
    True,
    False,
    Push,
    Array,
}

impl Reply {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::One => b":1\r\n".to_vec(),
            Reply::Zero => b":0\r\n".to_vec(),
            Reply::Nil => b"$-1\r\n".to_vec(),
            Reply::Ok => b"+OK\r\n".to_vec(),
            Reply::Err => b"-ERR x\r\n".to_vec(),
            Reply::NoScript => b"-NOSCRIPT No matching script.\r\n".to_vec(),
            Reply::Sha => {
                format!("$40\r\n{}\r\n", "0123456789abcdef0123456789abcdef01234567").into_bytes()
            }
            Reply::Int(i) => format!(":{i}\r\n").into_bytes(),
            Reply::Text(s) => format!("${}\r\n{s}\r\n", s.len()).into_bytes(),
            Reply::True => b"#t\r\n".to_vec(),
            Reply::False => b"#f\r\n".to_vec(),
            Reply::Push => b">2\r\n+message\r\n:1\r\n".to_vec(),
            Reply::Array => b"*2\r\n:1\r\n:0\r\n".to_vec(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    Acquire {
        resources: Vec<u8>,
        ttl: Ttl,
        token_len: u8,
    },
    Extend {
        lock: u8,
        ttl: Ttl,
    },
    Release {
        lock: u8,
    },
    Cancel {
        op: u8,
    },
    /// A plausible answer to the oldest request on the node.
    Answer {
        node: u8,
        grant: bool,
    },
    /// Answer everything outstanding on every node.
    AnswerAll {
        grant: bool,
    },
    Reply {
        node: u8,
        reply: Reply,
    },
    Raw {
        node: u8,
        bytes: Vec<u8>,
    },
    Connect {
        node: u8,
    },
    Disconnect {
        node: u8,
    },
    /// Calls with a node id past the configuration: must be `Err`.
    BadNode {
        offset: u8,
    },
    Forward {
        ms: u16,
    },
    Backward {
        ms: u16,
    },
    /// Jump to `poll_timeout()` and handle it.
    Timeout,
    /// `handle_timeout` at the current clock even when nothing is due.
    TimeoutNow,
}

const NAMES: [&str; 8] = ["a", "b", "{a}:x", "orders:42", "", "a", "ünï", "k\r\nv"];

fn main_steps(h: &mut Harness, input: &Input) {
    let nodes = h.nodes();
    let mut ops: Vec<OpId> = Vec::new();
    for step in &input.steps {
        let now = h.clock.now();
        match step {
            Step::Acquire {
                resources,
                ttl,
                token_len,
            } => {
                let names: Vec<String> = resources
                    .iter()
                    .take(6)
                    .map(|&i| NAMES[usize::from(i) % NAMES.len()].to_string())
                    .collect();
                let ttl = ttl.get();
                let Some(token) = token(usize::from(*token_len % 48), *token_len) else {
                    continue;
                };
                let expect_err = names.is_empty()
                    || names.iter().any(String::is_empty)
                    || ttl <= h.engine.options().drift(ttl)
                    || ttl > MAX_DURATION;
                match h.engine.acquire(now, &names, ttl, token, h.clock.wall()) {
                    Ok(op) => {
                        assert!(!expect_err, "acquire accepted {names:?} / {ttl:?}");
                        h.clock.observe(now);
                        h.started(op, OpKind::Acquire, names);
                        ops.push(op);
                    }
                    Err(e) => {
                        assert!(expect_err, "acquire refused {names:?} / {ttl:?}: {e}");
                        let _ = e.to_string();
                    }
                }
            }
            Step::Extend { lock, ttl } => {
                let Some(l) = pick(&h.locks, *lock).cloned() else {
                    continue;
                };
                let ttl = ttl.get();
                let engine_now = h.clock.latest().max(now);
                let expect_err = ttl <= h.engine.options().drift(ttl)
                    || ttl > MAX_DURATION
                    || !l.is_valid(engine_now);
                match h.engine.extend(now, &l, ttl) {
                    Ok(op) => {
                        assert!(!expect_err, "extend accepted an expired lock or bad ttl");
                        h.clock.observe(now);
                        h.started(op, OpKind::Extend, l.resources().to_vec());
                        ops.push(op);
                    }
                    Err(e) => {
                        assert!(expect_err, "extend refused: {e}");
                        if ttl > h.engine.options().drift(ttl) && ttl <= MAX_DURATION {
                            assert_eq!(e, Error::Expired);
                            h.clock.observe(now); // validity was judged at the engine's now
                        }
                    }
                }
            }
            Step::Release { lock } => {
                let Some(l) = pick(&h.locks, *lock).cloned() else {
                    continue;
                };
                let op = h.engine.release(now, &l);
                h.clock.observe(now);
                h.started(op, OpKind::Release, l.resources().to_vec());
                ops.push(op);
            }
            Step::Cancel { op } => {
                let Some(&id) = pick(&ops, *op) else { continue };
                let open = h.open.contains_key(&id);
                match h.engine.cancel(now, id) {
                    Ok(()) => {
                        assert!(open, "cancel of a finished op succeeded");
                        h.clock.observe(now);
                    }
                    Err(e) => {
                        assert!(!open, "cancel of an open op failed: {e}");
                        assert_eq!(e, Error::UnknownOp(id));
                    }
                }
            }
            Step::Answer { node, grant } => {
                let node = usize::from(*node) % nodes;
                if let Some(bytes) = h.answer(node, *grant) {
                    h.input(node, &bytes);
                }
            }
            Step::AnswerAll { grant } => {
                for node in 0..nodes {
                    let mut bytes = Vec::new();
                    while let Some(b) = h.answer(node, *grant) {
                        bytes.extend(b);
                    }
                    if !bytes.is_empty() {
                        h.input(node, &bytes);
                    }
                }
            }
            Step::Reply { node, reply } => {
                let node = usize::from(*node) % nodes;
                // Keep the wire model roughly in step: a reply answers the head request.
                h.wire[node].pop_front();
                h.input(node, &reply.bytes());
            }
            Step::Raw { node, bytes } => {
                let node = usize::from(*node) % nodes;
                h.wire[node].pop_front();
                h.input(node, bytes);
            }
            Step::Connect { node } => h.connect(usize::from(*node) % nodes),
            Step::Disconnect { node } => h.disconnect(usize::from(*node) % nodes),
            Step::BadNode { offset } => {
                // Feeding a node id from outside the configuration is caller misuse (a panic,
                // like an index out of bounds, tested in core/tests); the queries answer safely.
                let bad = NodeId::new(nodes + usize::from(*offset));
                assert!(!h.engine.is_connected(bad));
                assert!(h.engine.node_addr(bad).is_none());
                h.drain();
            }
            Step::Forward { ms } => h.clock.forward(Duration::from_millis(u64::from(*ms))),
            Step::Backward { ms } => h.clock.backward(Duration::from_millis(u64::from(*ms))),
            Step::Timeout => {
                if let Some(t) = h.engine.poll_timeout() {
                    h.clock.set(t.max(h.clock.now()));
                    h.timeout();
                }
            }
            Step::TimeoutNow => h.timeout(),
        }
        h.drain();
    }
}

fn pick<T>(v: &[T], i: u8) -> Option<&T> {
    if v.is_empty() {
        None
    } else {
        v.get(usize::from(i) % v.len())
    }
}

fuzz_target!(|input: Input| {
    let nodes = 1 + usize::from(input.nodes % 5);
    let mut options = Options::default();
    if input.resp3 {
        options.protocol = Protocol::Resp3;
    }
    options.retry_count = input.retry_count.map(|c| u32::from(c % 16));
    options.retry_delay = input.retry_delay.get();
    options.retry_jitter = input.retry_jitter.get();
    options.node_timeout = input.node_timeout.get();
    options.drift_factor = match input.drift {
        Drift::Permille(p) => f64::from(p % 1000) / 1000.0,
        Drift::Raw(f) => f,
    };
    options.max_reply_bytes = usize::from(input.max_reply_bytes);
    if input.key_prefix {
        options.key_prefix = "locks:".into();
    }
    let Some(mut h) = Harness::new(nodes, options, input.seed) else {
        return;
    };
    main_steps(&mut h, &input);

    // Wind down: every socket closes; an op that retries forever is cancelled (that is the
    // caller's only way to stop it); then time runs until nothing waits on it.
    for node in 0..nodes {
        h.disconnect(node);
    }
    if input.retry_count.is_none() {
        let now = h.clock.now();
        let open: Vec<OpId> = h.open.keys().copied().collect();
        for op in open {
            h.engine.cancel(now, op).expect("open op cancels");
            h.drain();
        }
    }
    // All nodes down: every attempt fails at once, so each timeout step ends one attempt of
    // one op (or expires a request).
    let retries = input.retry_count.map_or(0, |c| usize::from(c % 16));
    let bound = (h.open.len() + 1) * (retries + 2) + 16;
    h.settle(bound);
});
