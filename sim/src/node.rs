//! A model Redis node: the commands' semantics ([`Server`]) behind a byte stream per
//! connection, with the node's lifecycle (crash, restart, stall) and injected faults.

use crate::cluster::ClusterView;
use crate::commands::Server;
use crate::fault::{Fault, FaultAction, Faults};
use crate::identity::Identity;
use crate::keyspace::KeyDump;
use crate::request::parse_command;
use crate::script::ScriptKind;
use crate::session::{Session, SessionState};
use crate::value::Value;
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

/// A model Redis node. See the [crate docs](crate#the-model).
///
/// ```
/// use redlock_sim::{Node, Value};
/// use std::time::{Duration, Instant};
///
/// let t0 = Instant::now(); // any instant: the model only compares instants it is given
/// let mut node = Node::new(t0, 1);
/// let mut session = node.connect().unwrap();
/// let reply = node.feed(t0, &mut session, b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$3\r\n100\r\n");
/// assert_eq!(&reply[..], b"+OK\r\n");
/// assert_eq!(node.get(t0, 0, b"k"), Some(bytes::Bytes::from_static(b"v")));
/// assert_eq!(node.get(t0 + Duration::from_millis(101), 0, b"k"), None);
/// assert_eq!(Value::Int(3).to_bytes(redlock_core::Protocol::Resp2), &b":3\r\n"[..]);
/// ```
#[derive(Debug, Clone)]
pub struct Node {
    server: Server,
    up: bool,
    stalled: bool,
    faults: Faults,
    next_client: u64,
    processed: u64,
    log: Option<Vec<Vec<Bytes>>>,
}

impl Node {
    /// A fresh, running node started at `now`, with no keys, an empty script cache, no password,
    /// and the default lock scripts known, claiming to be Redis 7.2 (no native commands; see
    /// [`Node::set_identity`]). `seed` names it (its `run_id` derives from the seed and the
    /// number of restarts).
    pub fn new(now: Instant, seed: u64) -> Node {
        Node {
            server: Server::new(now, seed),
            up: true,
            stalled: false,
            faults: Faults::default(),
            next_client: 1,
            processed: 0,
            log: None,
        }
    }

    /// Teaches the node to run `source` (e.g. a user-supplied script) with `kind`'s semantics.
    /// It is not loaded into the cache: `EVALSHA` still says NOSCRIPT until `EVAL` or
    /// `SCRIPT LOAD`.
    pub fn learn_script(&mut self, source: &str, kind: ScriptKind) {
        self.server.scripts.learn(source, kind);
    }

    /// Requires `AUTH [user] password` (or `HELLO … AUTH user password`) before other commands.
    /// `user` `None` is the `default` user.
    pub fn set_password(&mut self, user: Option<&str>, password: &str) {
        self.server.password = Some((user.map(str::to_string), password.to_string()));
    }

    /// Makes the node claim to be `identity` (Redis or Valkey, which version): what `INFO
    /// server` and `HELLO` report from now on, and which native commands it runs. A connection
    /// that already read `INFO` keeps what it read, as after a real upgrade it would only learn
    /// on reconnecting; change it before connecting.
    pub fn set_identity(&mut self, identity: Identity) {
        self.server.identity = identity;
    }

    /// The server the node claims to be.
    pub fn identity(&self) -> Identity {
        self.server.identity
    }

    /// How many `DELEX` and `DELIFEQ` commands the node ran (refused ones not counted).
    pub fn native_deletes(&self) -> u64 {
        self.server.natives.deletes
    }

    /// How many `SET … IFEQ|IFNE` commands the node ran (refused ones not counted).
    pub fn native_sets(&self) -> u64 {
        self.server.natives.sets
    }

    /// The node's current `run_id` (40 hex characters; changes on every restart).
    pub fn run_id(&self) -> String {
        self.server.run_id()
    }

    /// Time since the node (re)started, as `INFO` reports it (in seconds).
    pub fn uptime(&self, now: Instant) -> Duration {
        self.server.uptime(now)
    }

    /// Whether the node is running (not crashed).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether `session` is still a live connection to this node (open or hung, not closed, and
    /// made since the last crash or restart).
    pub fn is_alive(&self, session: &Session) -> bool {
        self.up
            && session.generation == self.server.generation
            && session.state != SessionState::Closed
    }

    /// The node process dies: every connection is closed, nothing runs until
    /// [`restart`](Node::restart). Keys are kept in memory so that a restart may choose to keep
    /// them (persistence) or not.
    pub fn crash(&mut self) {
        self.up = false;
        self.server.generation += 1;
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
        self.server.started = now;
        self.server.scripts.flush();
        if !keep_data {
            self.server.keys.clear();
        }
    }

    /// `SCRIPT FLUSH`: forget every loaded script.
    pub fn flush_scripts(&mut self) {
        self.server.scripts.flush();
    }

    /// Whether the script with this SHA-1 is loaded.
    pub fn script_cached(&self, sha: &str) -> bool {
        self.server.scripts.is_loaded(sha)
    }

    /// Loads `source` into the script cache, as `SCRIPT LOAD` does; returns its SHA-1.
    pub fn load_script(&mut self, source: &str) -> String {
        self.server.scripts.load(source)
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
        Some(Session::new(
            id,
            self.server.generation,
            self.server.password.is_none(),
        ))
    }

    // ----- direct state access (for tests; no protocol) ------------------------------------

    /// The value of `key` in database `db` at `now`, if it exists.
    pub fn get(&self, now: Instant, db: u32, key: &[u8]) -> Option<Bytes> {
        self.server.keys.get(now, db, key)
    }

    /// The time `key` has left at `now`: `None` if it does not exist, `Some(None)` if it has no
    /// expiry.
    pub fn ttl(&self, now: Instant, db: u32, key: &[u8]) -> Option<Option<Duration>> {
        self.server.keys.ttl(now, db, key)
    }

    /// Sets `key` in database `db`, expiring `ttl` after `now` if given.
    pub fn set(&mut self, now: Instant, db: u32, key: &[u8], value: &[u8], ttl: Option<Duration>) {
        self.server.keys.insert(
            db,
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(value),
            ttl.map(|t| now + t),
        );
    }

    /// Deletes `key` from database `db`; returns whether it existed at `now`.
    pub fn del(&mut self, now: Instant, db: u32, key: &[u8]) -> bool {
        self.server.keys.del(now, db, key)
    }

    /// Every live key at `now`, ordered by database and key.
    pub fn dump(&self, now: Instant) -> Vec<KeyDump> {
        self.server.keys.dump(now)
    }

    // ----- cluster membership -----------------------------------------------------------

    /// Makes the node a cluster member with `view` as its own view of the cluster, or (`None`)
    /// standalone again, which it is when made. A member answers `CLUSTER …` and `ASKING`,
    /// reports `cluster` as its mode (`HELLO`, `INFO`), allows only database 0, and routes
    /// every keyed command (`GET`, `SET`, `DEL`, `EXISTS`, `PEXPIRE`, `EXPIRE`, `PTTL`,
    /// `TTL`, `DELEX`, `DELIFEQ`, and `EVAL` / `EVALSHA` by their declared keys): keys in
    /// different slots get [`CROSSSLOT`](crate::CROSSSLOT); a slot another node owns gets
    /// `MOVED slot owner`; a slot it owns and migrates gets `ASK slot target` when none of the
    /// keys is here any more and [`TRYAGAIN`](crate::TRYAGAIN) when some are; a slot it
    /// imports is served only for the command right after `ASKING`. The view survives
    /// crashes and restarts (as `nodes.conf` does).
    pub fn set_cluster(&mut self, view: Option<ClusterView>) {
        self.server.cluster = view;
    }

    /// The node's view of its cluster, `None` when standalone.
    pub fn cluster(&self) -> Option<&ClusterView> {
        self.server.cluster.as_ref()
    }

    /// The node's view of its cluster, to change (what `CLUSTER SETSLOT` and the cluster bus
    /// would change): `None` when standalone.
    pub fn cluster_mut(&mut self) -> Option<&mut ClusterView> {
        self.server.cluster.as_mut()
    }

    /// The live keys of database 0 at `now` in hash slot `slot`, in key order (what
    /// `CLUSTER GETKEYSINSLOT` lists).
    pub fn slot_keys(&self, now: Instant, slot: u16) -> Vec<Bytes> {
        self.server.keys.keys_in_slot(now, 0, slot)
    }

    /// Removes `key` from database 0 and returns it with its value and absolute expiry, if it
    /// is live at `now`: the source's half of `MIGRATE` (see [`put_keys`](Node::put_keys)).
    pub fn take_key(&mut self, now: Instant, key: &[u8]) -> Option<KeyDump> {
        self.server.keys.take(now, 0, key)
    }

    /// Removes every live key of hash slot `slot` (database 0) at `now` and returns them:
    /// [`take_key`](Node::take_key) for the whole slot at once.
    pub fn take_slot_keys(&mut self, now: Instant, slot: u16) -> Vec<KeyDump> {
        self.slot_keys(now, slot)
            .iter()
            .filter_map(|k| self.server.keys.take(now, 0, k))
            .collect()
    }

    /// Stores `keys` (in their databases, with their absolute expiry times, replacing what is
    /// there): the target's half of `MIGRATE` (`RESTORE … REPLACE`). Keys from another node's
    /// [`take_key`](Node::take_key) keep their remaining ttl, since both nodes expire on the
    /// instants they are given.
    pub fn put_keys(&mut self, keys: impl IntoIterator<Item = KeyDump>) {
        for k in keys {
            self.server.keys.insert(k.db, k.key, k.value, k.expires);
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
        if !self.up || session.generation != self.server.generation {
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
                    let reply = self.server.execute(now, session, &args);
                    reply.encode(session.protocol, &mut out);
                }
                Some(FaultAction::Reply(v)) => v.encode(session.protocol, &mut out),
                Some(FaultAction::Raw(b)) => out.extend_from_slice(&b),
                Some(FaultAction::Hang) => session.state = SessionState::Hung,
                Some(FaultAction::ExecuteThenHang) => {
                    self.server.execute(now, session, &args);
                    session.state = SessionState::Hung;
                }
                Some(FaultAction::Close) => session.state = SessionState::Closed,
                Some(FaultAction::ExecuteThenClose) => {
                    self.server.execute(now, session, &args);
                    session.state = SessionState::Closed;
                }
                Some(FaultAction::Before(v)) => {
                    v.encode(session.protocol, &mut out);
                    let reply = self.server.execute(now, session, &args);
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

    /// The fault rule's action for `args`, if one applies (see [`Faults::take_for`]).
    fn fault_for(&mut self, args: &[Bytes]) -> Option<FaultAction> {
        let name = args.first().map(|a| a.to_ascii_uppercase())?;
        let script = match name.as_slice() {
            b"EVALSHA" | b"EVAL" => args
                .get(1)
                .and_then(|s| self.server.scripts.kind_named_by(name == b"EVALSHA", s)),
            _ => None,
        };
        self.faults.take_for(&name, script)
    }

    // ----- command semantics ---------------------------------------------------------------

    /// Runs one command on `session` at `now` and returns its reply, ignoring faults and stalls.
    ///
    /// Modelled: `AUTH`, `HELLO`, `SELECT`, `CLIENT SETNAME|GETNAME|ID`, `PING`, `ECHO`, `GET`,
    /// `SET` (`NX`, `XX`, `PX`, `EX`, `KEEPTTL`, `GET`), `DEL`, `EXISTS`, `PEXPIRE`, `EXPIRE`,
    /// `PTTL`, `TTL`, `INFO`, `EVAL`, `EVALSHA`, `SCRIPT LOAD|EXISTS|FLUSH`, `FLUSHDB`,
    /// `FLUSHALL`, `DBSIZE`, and where the node's [`Identity`] has them `DELEX`, `DELIFEQ` and
    /// `SET`'s `IFEQ` / `IFNE`. Anything else is an unknown-command error. A cluster member
    /// (see [`set_cluster`](Node::set_cluster)) also runs `ASKING` and `CLUSTER SLOTS|SHARDS|
    /// KEYSLOT|GETKEYSINSLOT|COUNTKEYSINSLOT|MYID|INFO`, and answers a redirect instead of
    /// running a keyed command whose slot is not served here.
    pub fn execute(&mut self, now: Instant, session: &mut Session, args: &[Bytes]) -> Value {
        self.server.execute(now, session, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::NOSCRIPT;
    use crate::fault::Match;
    use redlock_core::resp::{encode_command, Decoder, Reply};
    use redlock_core::{script_sha, Protocol, ACQUIRE, EXTEND, FENCE, FENCED_ACQUIRE, RELEASE};

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
