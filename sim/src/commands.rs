//! What each command does: the state a node's commands read and change ([`Server`]), and one
//! method per command family. Faults, stalls and the byte stream are the node's business
//! ([`crate::node`]); this is the semantics alone.

use crate::cluster::ClusterView;
use crate::cluster_command::NOT_CLUSTER;
use crate::compare::{Condition, NativeCounts, NO_DIGESTS};
use crate::identity::Identity;
use crate::keyspace::Keyspace;
use crate::request::int_arg;
use crate::routing::{command_keys, route};
use crate::script_cache::ScriptCache;
use crate::session::Session;
use crate::value::Value;
use bytes::Bytes;
use redlock_core::{script_sha, Protocol};
use std::time::{Duration, Instant};

/// The error `EVALSHA` replies for a SHA that is not in the script cache (Redis's exact text).
pub const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// How many databases a node has (`SELECT 0` to `SELECT 15`), as a default Redis.
const DATABASES: u32 = 16;

/// A node's state as commands see it.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    /// Names the node: its `run_id` derives from the seed and the number of restarts.
    pub(crate) seed: u64,
    /// Crashes and restarts so far; sessions from an older generation are dead.
    pub(crate) generation: u64,
    /// When the node (re)started, on the caller's clock.
    pub(crate) started: Instant,
    /// The keys.
    pub(crate) keys: Keyspace,
    /// Loaded and known scripts.
    pub(crate) scripts: ScriptCache,
    /// `(user, password)` that `AUTH` must present, if any (`None` user: `default`).
    pub(crate) password: Option<(Option<String>, String)>,
    /// The server it claims to be: what `INFO` and `HELLO` report, which native commands run.
    pub(crate) identity: Identity,
    /// Native commands run so far.
    pub(crate) natives: NativeCounts,
    /// This node's view of its cluster; `None` for a standalone node.
    pub(crate) cluster: Option<ClusterView>,
}

impl Server {
    /// A fresh server started at `now`: no keys, an empty script cache, no password, claiming to
    /// be [`Identity::REDIS_7_2`].
    pub(crate) fn new(now: Instant, seed: u64) -> Server {
        Server {
            seed,
            generation: 0,
            started: now,
            keys: Keyspace::default(),
            scripts: ScriptCache::new(),
            password: None,
            identity: Identity::default(),
            natives: NativeCounts::default(),
            cluster: None,
        }
    }

    /// The current `run_id` (40 hex characters; changes on every restart).
    pub(crate) fn run_id(&self) -> String {
        script_sha(&format!(
            "model-node seed={} gen={}",
            self.seed, self.generation
        ))
    }

    /// Time since the node (re)started.
    pub(crate) fn uptime(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Runs one command on `session` at `now` and returns its reply, ignoring faults and stalls.
    ///
    /// Modelled: `AUTH`, `HELLO`, `SELECT`, `CLIENT SETNAME|GETNAME|ID`, `PING`, `ECHO`, `GET`,
    /// `SET` (`NX`, `XX`, `PX`, `EX`, `KEEPTTL`, `GET`), `DEL`, `EXISTS`, `PEXPIRE`, `EXPIRE`,
    /// `PTTL`, `TTL`, `INFO`, `EVAL`, `EVALSHA`, `SCRIPT LOAD|EXISTS|FLUSH`, `FLUSHDB`,
    /// `FLUSHALL`, `DBSIZE`, and where the node's [`Identity`] has them `DELEX`, `DELIFEQ` and
    /// `SET`'s `IFEQ` / `IFNE`. Anything else is an unknown-command error. A cluster member
    /// also runs `ASKING` and `CLUSTER` and routes keyed commands ([`crate::routing`]).
    pub(crate) fn execute(&mut self, now: Instant, session: &mut Session, args: &[Bytes]) -> Value {
        let Some(name) = args.first() else {
            return Value::error("ERR empty command");
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let argv = &args[1..];
        // As Redis: `ASKING` holds for the one command after it, whatever that command does.
        let asking = std::mem::take(&mut session.asking);
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
        if let Some(view) = &self.cluster {
            let keys = command_keys(&name, argv, self.identity);
            if let Some(redirect) = route(view, keys, asking, |k| {
                self.keys.entry(now, db, k).is_some()
            }) {
                return redirect;
            }
        }
        match name.as_str() {
            "AUTH" if arity(1, Some(2)) => self.auth(session, argv),
            "HELLO" => self.hello(session, argv),
            "SELECT"
                if arity(1, Some(1)) && self.cluster.is_some() && int_arg(&argv[0]) != Some(0) =>
            {
                Value::error("ERR SELECT is not allowed in cluster mode")
            }
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
            "GET" if arity(1, Some(1)) => match self.keys.entry(now, db, &argv[0]) {
                Some(e) => Value::Bulk(e.value.clone()),
                None => Value::Nil,
            },
            "SET" if arity(2, None) => self.cmd_set(now, db, argv),
            "DELEX" if self.identity.has_delex() && arity(1, None) => self.delex(now, db, argv),
            "DELIFEQ" if self.identity.has_delifeq() && arity(2, Some(2)) => {
                self.delifeq(now, db, &argv[0], &argv[1])
            }
            "DELEX" if self.identity.has_delex() => wrong(),
            "DELIFEQ" if self.identity.has_delifeq() => wrong(),
            "DEL" if arity(1, None) => {
                let n = argv.iter().filter(|k| self.keys.del(now, db, k)).count();
                Value::Int(n as i64)
            }
            "EXISTS" if arity(1, None) => {
                let n = argv
                    .iter()
                    .filter(|k| self.keys.entry(now, db, k).is_some())
                    .count();
                Value::Int(n as i64)
            }
            "PEXPIRE" | "EXPIRE" if arity(2, Some(2)) => {
                let unit = if name == "PEXPIRE" { 1 } else { 1000 };
                match int_arg(&argv[1]).and_then(|n| n.checked_mul(unit)) {
                    None => Value::error("ERR value is not an integer or out of range"),
                    Some(ms) => Value::Int(i64::from(self.keys.pexpire(now, db, &argv[0], ms))),
                }
            }
            "PTTL" | "TTL" if arity(1, Some(1)) => match self.keys.ttl(now, db, &argv[0]) {
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
            "DBSIZE" if arity(0, Some(0)) => Value::Int(self.keys.len(now, db) as i64),
            "FLUSHDB" => {
                self.keys.flush_db(db);
                Value::ok()
            }
            "FLUSHALL" => {
                self.keys.clear();
                Value::ok()
            }
            "INFO" => self.info(now, argv),
            "EVAL" | "EVALSHA" if arity(2, None) => self.eval(now, db, &name, argv),
            "SCRIPT" if arity(1, None) => self.script(argv),
            "ASKING" if arity(0, Some(0)) => match self.cluster {
                Some(_) => {
                    session.asking = true;
                    Value::ok()
                }
                None => Value::error(NOT_CLUSTER),
            },
            "CLUSTER" if arity(1, None) => self.cluster(now, db, argv),
            "AUTH" | "SELECT" | "CLIENT" | "PING" | "ECHO" | "GET" | "SET" | "DEL" | "EXISTS"
            | "PEXPIRE" | "EXPIRE" | "PTTL" | "TTL" | "DBSIZE" | "EVAL" | "EVALSHA" | "SCRIPT"
            | "ASKING" | "CLUSTER" => wrong(),
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
            (
                Value::bulk("server"),
                Value::bulk(self.identity.hello_server()),
            ),
            (
                Value::bulk("version"),
                Value::bulk(self.identity.version_string()),
            ),
            (Value::bulk("proto"), Value::Int(proto)),
            (
                Value::bulk("id"),
                Value::Int(i64::try_from(session.id).unwrap_or(i64::MAX)),
            ),
            (
                Value::bulk("mode"),
                Value::bulk(if self.cluster.is_some() {
                    "cluster"
                } else {
                    "standalone"
                }),
            ),
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
                "# Server\r\n{}redis_mode:{}\r\nos:Model 1.0 x86_64\r\narch_bits:64\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:6379\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\n",
                self.identity.info_lines(),
                if self.cluster.is_some() {
                    "cluster"
                } else {
                    "standalone"
                },
                self.seed + 1,
                self.run_id(),
                up / 86_400
            ));
        }
        if section == "cluster" {
            text.push_str(&format!(
                "# Cluster\r\ncluster_enabled:{}\r\n",
                u8::from(self.cluster.is_some())
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
            for (db, (keys, expires)) in self.keys.counts(now) {
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
        let mut condition: Option<Condition> = None;
        let mut opts = argv[2..].iter();
        while let Some(opt) = opts.next() {
            let free = !nx && !xx && condition.is_none();
            match opt.to_ascii_uppercase().as_slice() {
                b"NX" if !xx && condition.is_none() => nx = true,
                b"XX" if !nx && condition.is_none() => xx = true,
                b"IFEQ" if free && self.identity.has_set_ifeq() => match opts.next() {
                    Some(v) => condition = Some(Condition::Equal(v.clone())),
                    None => return Value::error("ERR syntax error"),
                },
                b"IFNE" if free && self.identity.has_set_ifne() => match opts.next() {
                    Some(v) => condition = Some(Condition::NotEqual(v.clone())),
                    None => return Value::error("ERR syntax error"),
                },
                b"IFDEQ" | b"IFDNE" if free && self.identity.has_set_ifne() => {
                    return Value::error(NO_DIGESTS)
                }
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
        let old = self.keys.entry(now, db, key).cloned();
        let reply_old = || {
            old.as_ref()
                .map_or(Value::Nil, |e| Value::Bulk(e.value.clone()))
        };
        let refused = match &condition {
            Some(c) => !self.set_condition_holds(c, old.as_ref().map(|e| &e.value)),
            None => (nx && old.is_some()) || (xx && old.is_none()),
        };
        if refused {
            return if get { reply_old() } else { Value::Nil };
        }
        let expires = match (expiry, keepttl) {
            (Some(d), _) => Some(now + d),
            (None, true) => old.as_ref().and_then(|e| e.expires),
            (None, false) => None,
        };
        self.keys.insert(db, key.clone(), value.clone(), expires);
        if get {
            reply_old()
        } else {
            Value::ok()
        }
    }

    fn script(&mut self, argv: &[Bytes]) -> Value {
        match (argv[0].to_ascii_uppercase().as_slice(), &argv[1..]) {
            (b"LOAD", [source]) => Value::bulk(self.scripts.load(&String::from_utf8_lossy(source))),
            (b"EXISTS", shas) if !shas.is_empty() => Value::Array(
                shas.iter()
                    .map(|s| {
                        Value::Int(i64::from(
                            self.scripts.is_loaded(&String::from_utf8_lossy(s)),
                        ))
                    })
                    .collect(),
            ),
            (b"FLUSH", [] | [_]) => {
                self.scripts.flush();
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
            self.scripts.load(&String::from_utf8_lossy(&argv[0]))
        } else {
            let sha = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
            if !self.scripts.is_loaded(&sha) {
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
        let Some(kind) = self.scripts.kind_of_sha(&sha) else {
            return Value::error(format!(
                "ERR the model cannot run script {sha}: teach it with Node::learn_script"
            ));
        };
        kind.run(&mut self.keys, now, db, &sha, keys, args)
    }
}
