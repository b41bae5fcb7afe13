//! A request as a connection keeps it until its reply arrives: what it asked, and therefore what
//! each possible reply means; its deadline; and, for lock scripts, how to send it again.
//!
//! Everything that decides how a reply is read is fixed here when the request is made (and
//! changed here when a NOSCRIPT makes the connection send it again), so nothing about a reply has
//! to be guessed when it arrives.

use crate::error::{ConnError, Outcome};
use crate::handshake::{Natives, Server, ServerInfo};
use crate::ids::OpId;
use crate::resp::{encode_command, Reply};
use crate::script::Compiled;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Instant;

/// What a request asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    /// A handshake command (AUTH, HELLO, SELECT, CLIENT SETNAME): an error reply
    /// breaks the connection; a success needs no action.
    Handshake,
    /// `INFO server`: which server this is (so which native commands it has) and, when
    /// `voting` (restart-aware voting is on), its `run_id` and uptime. With `voting` an error
    /// reply breaks the connection; without, it leaves the server unknown (an ACL user may lack
    /// `INFO`): scripts then.
    Info {
        /// Restart-aware voting needs the reply.
        voting: bool,
    },
    /// An operation's vote in one round (an attempt has one round, or two with fencing).
    Vote {
        /// The operation.
        op: OpId,
        /// Its round; a reply to an older round is read, then ignored.
        round: u32,
        /// What the reply says about the vote.
        reading: Reading,
    },
    /// A best-effort release nobody waits for: its result does not matter, but a reply of the
    /// wrong shape still means the stream cannot be trusted.
    Cleanup,
    /// `SUBSCRIBE` or `UNSUBSCRIBE` of one release channel (RESP3): answered by its
    /// confirmation push, or an error (an ACL without the channel; a proxy or model that does
    /// not know the command), after which the connection subscribes no more.
    Subscribe,
    /// `PUBLISH` of a release after a native release (which cannot publish): any count, or an
    /// error (an ACL without the channel), is fine.
    Announce,
    /// `CLUSTER SLOTS` on a cluster's seed connection: its reply goes to the engine, which
    /// reads it with the host it asked. Part of the handshake when `handshake` (an error then
    /// refuses the node: not a cluster, or an ACL without `CLUSTER`); a later refresh's error
    /// keeps the map the engine has.
    Slots {
        /// Sent with the handshake.
        handshake: bool,
    },
    /// `ASKING` before a request redirected by `ASK`: `+OK`, or an error (the request after
    /// it will say what is wrong).
    Asking,
}

/// How a vote's reply is read: one per kind of command a vote can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// `SET key token NX PX ttl`: `+OK` grants, nil refuses.
    SetNx,
    /// The acquire, extend and fence scripts: 1 (or true) grants, 0 (or false, which RESP2
    /// carries as nil) refuses.
    Grant,
    /// `WAIT n timeout` after a grant: at least this many replicas acknowledged the writes
    /// before it grants; fewer is an error outcome (a failover now could lose the key).
    Replicas(u32),
    /// The fenced acquire script: `{1, counter}` grants (with the node's fence counter), `{0}`
    /// refuses.
    FencedGrant,
    /// The release script: how many keys it deleted.
    Deleted,
    /// `SET key token IFEQ token PX ttl`, the native extend of one key: `+OK` grants, nil
    /// refuses (the key is gone or holds another token).
    SetIfEq,
    /// `DELEX key IFEQ token` or `DELIFEQ key token`, the native release of one key: 1 or 0.
    DeletedOne,
}

/// What a reply meant, for the engine to act on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// Nothing to do (a handshake success, a cleanup's result).
    Nothing,
    /// `INFO server` answered.
    Info {
        /// The voting fields, when the reply had them.
        restart: Option<ServerInfo>,
        /// What the server can do natively (none when it did not say what it is).
        natives: Natives,
    },
    /// A release was announced on `channel` (a RESP3 `message` push; no request answered).
    Released {
        /// The channel.
        channel: Bytes,
    },
    /// The node refused `SUBSCRIBE`: the connection subscribes no more.
    NoSubscribe,
    /// `CLUSTER SLOTS` answered (an array the engine reads as a slot map, or a refresh's error,
    /// which keeps the map).
    Slots(Reply),
    /// A cluster node answered a lock request with `MOVED` or `ASK` (the text is `error`): the
    /// engine sends `call` where it says, to be read as `asked`.
    Redirect {
        /// What the request asked.
        asked: Asked,
        /// Its command.
        call: Call,
        /// The redirect, as the node wrote it.
        error: String,
    },
    /// A node's vote.
    Vote {
        /// The operation.
        op: OpId,
        /// The round the vote belongs to.
        round: u32,
        /// What the node did.
        outcome: Outcome,
        /// The node's fence counter, reported with a fenced grant.
        counter: Option<u64>,
    },
}

impl Asked {
    /// Reads `reply` as the answer to this request. `Err` means the reply cannot answer it and
    /// the connection must be broken.
    pub(crate) fn read(self, reply: &Reply) -> Result<Answer, ConnError> {
        let wrong = |what: &str| ConnError::UnexpectedReply(format!("{reply:?} to {what}"));
        match self {
            Asked::Handshake => match reply {
                Reply::Error(e) => Err(ConnError::Handshake(e.clone())),
                _ => Ok(Answer::Nothing),
            },
            Asked::Info { voting } => match reply {
                Reply::Error(e) if voting => Err(ConnError::Handshake(e.clone())),
                // NOPERM (an ACL user without INFO) or a renamed command: an unknown server.
                Reply::Error(_) => Ok(Answer::Info {
                    restart: None,
                    natives: Natives::default(),
                }),
                Reply::Bulk(text) | Reply::Status(text) => {
                    // Decoded once for both readers.
                    let text = String::from_utf8_lossy(text);
                    let restart = ServerInfo::parse(&text);
                    if voting && restart.is_none() {
                        return Err(ConnError::UnexpectedReply(
                            "INFO server without run_id and uptime_in_seconds".into(),
                        ));
                    }
                    let natives = Server::parse(&text).map(Server::natives);
                    Ok(Answer::Info {
                        restart,
                        natives: natives.unwrap_or_default(),
                    })
                }
                _ => Err(wrong("INFO server")),
            },
            Asked::Cleanup => match reply {
                // An error (OOM, BUSY, …) only means this best-effort delete did not happen.
                Reply::Error(_) => Ok(Answer::Nothing),
                _ => match Reading::Deleted.outcome(reply) {
                    Some(_) => Ok(Answer::Nothing),
                    None => Err(wrong(Reading::Deleted.what())),
                },
            },
            // Its confirmation is a RESP3 push, which the connection matches itself (pushes
            // never reach here); only a refusal arrives as an ordinary reply.
            Asked::Subscribe => match reply {
                Reply::Error(_) => Ok(Answer::NoSubscribe),
                _ => Err(wrong("SUBSCRIBE")),
            },
            Asked::Announce => match reply {
                Reply::Error(_) | Reply::Int(_) => Ok(Answer::Nothing),
                _ => Err(wrong("PUBLISH")),
            },
            Asked::Slots { handshake } => match reply {
                Reply::Error(e) if handshake => {
                    Err(ConnError::Handshake(format!("CLUSTER SLOTS: {e}")))
                }
                // A refresh's error goes to the engine too: it ends the refresh in flight
                // (the map stays as it was), so the next one can be asked.
                Reply::Error(_) | Reply::Array(_) => Ok(Answer::Slots(reply.clone())),
                _ => Err(wrong("CLUSTER SLOTS")),
            },
            Asked::Asking => match reply {
                Reply::Error(_) | Reply::Status(_) => Ok(Answer::Nothing),
                _ => Err(wrong("ASKING")),
            },
            Asked::Vote { op, round, reading } => {
                let (outcome, counter) = match reply {
                    Reply::Error(e) => (Outcome::ErrorReply(e.clone()), None),
                    _ => reading
                        .outcome(reply)
                        .ok_or_else(|| wrong(reading.what()))?,
                };
                Ok(Answer::Vote {
                    op,
                    round,
                    outcome,
                    counter,
                })
            }
        }
    }

    /// How this request reads its reply once it has been sent again as `EVAL` of its script: a
    /// `SET NX` re-run goes out as the acquire script, a native command as the script it stands
    /// in for, whose replies differ.
    fn as_script(self) -> Asked {
        match self {
            Asked::Vote { op, round, reading } => Asked::Vote {
                op,
                round,
                reading: match reading {
                    Reading::SetNx | Reading::SetIfEq => Reading::Grant,
                    Reading::DeletedOne => Reading::Deleted,
                    other => other,
                },
            },
            other => other,
        }
    }

    /// This request reading a vote's reply as `reading` (a cleanup reads any delete count).
    fn reading(self, reading: Reading) -> Asked {
        match self {
            Asked::Vote { op, round, .. } => Asked::Vote { op, round, reading },
            other => other,
        }
    }
}

impl Reading {
    /// The outcome (and fence counter) `reply` carries, or `None` when it has the wrong shape.
    /// Error replies are handled by the caller.
    fn outcome(self, reply: &Reply) -> Option<(Outcome, Option<u64>)> {
        let outcome = match (self, reply) {
            (Reading::SetNx, Reply::Status(ok)) if &ok[..] == b"OK" => Outcome::Granted,
            (Reading::SetNx, Reply::Nil) => Outcome::Refused,
            (Reading::Grant, Reply::Int(1) | Reply::Bool(true)) => Outcome::Granted,
            // Lua `false` arrives as a nil bulk string in RESP2.
            (Reading::Grant, Reply::Int(0) | Reply::Bool(false) | Reply::Nil) => Outcome::Refused,
            (Reading::FencedGrant, Reply::Array(items)) => match items.as_slice() {
                [Reply::Int(0)] => Outcome::Refused,
                [Reply::Int(1), Reply::Int(c)] => {
                    return u64::try_from(*c).ok().map(|c| (Outcome::Granted, Some(c)))
                }
                _ => return None,
            },
            (Reading::Deleted, Reply::Int(n)) => Outcome::Released(u32::try_from(*n).ok()?),
            (Reading::SetIfEq, Reply::Status(ok)) if &ok[..] == b"OK" => Outcome::Granted,
            (Reading::SetIfEq, Reply::Nil) => Outcome::Refused,
            (Reading::DeletedOne, Reply::Int(n @ (0 | 1))) => Outcome::Released(*n as u32),
            (Reading::Replicas(wanted), Reply::Int(acked)) if *acked >= 0 => {
                if *acked >= i64::from(wanted) {
                    Outcome::Granted
                } else {
                    Outcome::ErrorReply(format!(
                        "WAIT: {acked} of {wanted} replicas acknowledged the lock"
                    ))
                }
            }
            _ => return None,
        };
        Some((outcome, None))
    }

    /// The request, as error messages name it.
    fn what(self) -> &'static str {
        match self {
            Reading::SetNx => "SET NX",
            Reading::Grant => "a lock script",
            Reading::FencedGrant => "the fenced acquire script",
            Reading::Deleted => "the release script",
            Reading::SetIfEq => "SET IFEQ",
            Reading::DeletedOne => "DELEX / DELIFEQ",
            Reading::Replicas(_) => "WAIT",
        }
    }
}

/// How a lock request went out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `EVALSHA sha numkeys keys… argv…`: answered `NOSCRIPT` when the node lost its script cache.
    EvalSha,
    /// `EVAL source numkeys keys… argv…`: never answered `NOSCRIPT`.
    Eval,
    /// `SET key token NX PX ttl`, standing in for the acquire script on one key; never answered
    /// `NOSCRIPT`, and sent again as `EVAL` of that script.
    SetNx,
    /// `SET key token IFEQ token PX ttl`, standing in for the extend script on one key.
    SetIfEq,
    /// `DELEX key IFEQ token`, standing in for the release script on one key.
    DelEx,
    /// `DELIFEQ key token`, standing in for the release script on one key.
    DelIfEq,
    /// `WAIT replicas timeout` (the two `argv`), after a grant on the same connection.
    Wait,
}

impl Form {
    fn is_native(self) -> bool {
        matches!(self, Form::SetIfEq | Form::DelEx | Form::DelIfEq)
    }
}

/// Which native command may stand in for a call's script on one key, where the node has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Native {
    /// None: the script runs.
    Never,
    /// `DELEX … IFEQ` or `DELIFEQ` for the release script.
    Release,
    /// `SET … IFEQ … PX` for the extend script. Only for an extend whose ttl is at least every
    /// ttl set on the key before: `SET PX` sets the ttl exactly, the script never lowers it.
    Extend,
}

/// Whether `error` refuses a command the server does not know (an older server, a renamed
/// command, an option it does not parse): the script it stood in for goes instead.
pub(crate) fn is_unknown_command(error: &str) -> bool {
    error.starts_with("ERR unknown command")
        || error.starts_with("ERR unknown subcommand")
        || error.starts_with("ERR syntax error")
}

/// How a call's `KEYS` and `ARGV` line up with the lock's keys: what a cluster node splits by
/// hash slot, one call per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `KEYS` are the lock keys; `ARGV` is the same for every key.
    Keys,
    /// `KEYS` are the lock keys, then their fence-counter keys in the same order.
    KeysAndFences,
    /// `KEYS` are the lock keys; `ARGV` is the token, then one release channel per key.
    KeysAndChannels,
}

/// A lock request's command: a script (or the `SET NX` standing in for one) with its keys and
/// arguments, kept so it can be sent again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    /// The script, or for [`Form::SetNx`] the acquire script it stands in for.
    pub(crate) script: Compiled,
    /// `KEYS`.
    pub(crate) keys: Arc<[Bytes]>,
    /// `ARGV`: the token, then the ttl in milliseconds or the fencing token, when present.
    pub(crate) argv: Arc<[Bytes]>,
    /// How it goes out.
    pub(crate) form: Form,
    /// Whether running it may leave keys holding the token (an acquire): if its connection
    /// breaks before the reply, the node is sent a release once it is back.
    pub(crate) takes_keys: bool,
    /// The native command that may go instead of the script, on a node that has it.
    pub(crate) native: Native,
    /// How `keys` and `argv` line up with the lock's keys.
    pub(crate) layout: Layout,
    /// Sent after `ASKING` (redirected by `ASK`, for this one request).
    pub(crate) asking: bool,
    /// How many redirects brought it here.
    pub(crate) hops: u8,
}

impl Call {
    /// Appends the command to `out`.
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        match self.form {
            Form::EvalSha => encode_script(out, b"EVALSHA", &self.script.sha, self),
            Form::Eval => encode_script(out, b"EVAL", &self.script.source, self),
            Form::SetNx => {
                let (key, token, ttl_ms) = (&self.keys[0], &self.argv[0], &self.argv[1]);
                encode_command(out, &[&b"SET"[..], key, token, b"NX", b"PX", ttl_ms]);
            }
            Form::SetIfEq => {
                let (key, token, ttl_ms) = (&self.keys[0], &self.argv[0], &self.argv[1]);
                let args: [&[u8]; 7] = [b"SET", key, token, b"IFEQ", token, b"PX", ttl_ms];
                encode_command(out, &args);
            }
            Form::DelEx => {
                let (key, token) = (&self.keys[0], &self.argv[0]);
                encode_command(out, &[&b"DELEX"[..], key, b"IFEQ", token]);
            }
            Form::DelIfEq => {
                let (key, token) = (&self.keys[0], &self.argv[0]);
                encode_command(out, &[&b"DELIFEQ"[..], key, token]);
            }
            Form::Wait => {
                let (replicas, timeout_ms) = (&self.argv[0], &self.argv[1]);
                encode_command(out, &[&b"WAIT"[..], replicas, timeout_ms]);
            }
        }
    }

    /// Whether `error` refuses this call's native command as unknown (so its script goes
    /// instead).
    pub(crate) fn falls_back(&self, error: &str) -> bool {
        self.form.is_native() && is_unknown_command(error)
    }

    /// The lock keys this call is about (without fence-counter keys).
    pub(crate) fn lock_keys(&self) -> &[Bytes] {
        match self.layout {
            Layout::KeysAndFences => &self.keys[..self.keys.len() / 2],
            Layout::Keys | Layout::KeysAndChannels => &self.keys,
        }
    }

    /// The same call for the lock keys at `picked` (indices into [`Call::lock_keys`]) only:
    /// their fence keys and channels with them, the other arguments as they are.
    pub(crate) fn part(&self, picked: &[usize]) -> Call {
        let n = self.lock_keys().len();
        let keys: Arc<[Bytes]> = match self.layout {
            Layout::KeysAndFences => picked
                .iter()
                .map(|i| self.keys[*i].clone())
                .chain(picked.iter().map(|i| self.keys[n + i].clone()))
                .collect(),
            Layout::Keys | Layout::KeysAndChannels => {
                picked.iter().map(|i| self.keys[*i].clone()).collect()
            }
        };
        let argv: Arc<[Bytes]> = match self.layout {
            Layout::KeysAndChannels if self.argv.len() == 1 + n => {
                std::iter::once(self.argv[0].clone())
                    .chain(picked.iter().map(|i| self.argv[1 + i].clone()))
                    .collect()
            }
            _ => self.argv.clone(),
        };
        Call {
            keys,
            argv,
            ..self.clone()
        }
    }

    /// This call as it goes to a node that has `natives`, with how its reply is read then: the
    /// node's own command where one stands in for the script on one key, else unchanged.
    pub(crate) fn for_node(mut self, asked: Asked, natives: Natives) -> (Asked, Call) {
        if self.form != Form::EvalSha || self.keys.len() != 1 {
            return (asked, self);
        }
        let (form, reading) = match self.native {
            Native::Release if natives.delex => (Form::DelEx, Reading::DeletedOne),
            Native::Release if natives.delifeq => (Form::DelIfEq, Reading::DeletedOne),
            Native::Extend if natives.set_ifeq => (Form::SetIfEq, Reading::SetIfEq),
            _ => return (asked, self),
        };
        self.form = form;
        (asked.reading(reading), self)
    }
}

fn encode_script(out: &mut BytesMut, cmd: &[u8], script: &[u8], call: &Call) {
    let numkeys = call.keys.len().to_string();
    let mut args: Vec<&[u8]> = Vec::with_capacity(3 + call.keys.len() + call.argv.len());
    args.push(cmd);
    args.push(script);
    args.push(numkeys.as_bytes());
    args.extend(call.keys.iter().map(|k| &k[..]));
    args.extend(call.argv.iter().map(|a| &a[..]));
    encode_command(out, &args);
}

/// One request awaiting its reply.
#[derive(Debug)]
pub(crate) struct Request {
    /// What it asked.
    pub(crate) asked: Asked,
    /// Past this, the connection is declared broken.
    pub(crate) deadline: Instant,
    /// The command, for lock requests (handshake commands are never sent again).
    pub(crate) call: Option<Call>,
    /// Run again after a NOSCRIPT ahead of it: this reply is skipped, the copy's counts.
    pub(crate) superseded: bool,
}

impl Request {
    /// A request for a command that is never sent again.
    pub(crate) fn plain(asked: Asked, deadline: Instant) -> Request {
        Request {
            asked,
            deadline,
            call: None,
            superseded: false,
        }
    }

    /// A lock request for `call`.
    pub(crate) fn call(asked: Asked, deadline: Instant, call: Call) -> Request {
        Request {
            asked,
            deadline,
            call: Some(call),
            superseded: false,
        }
    }

    /// Whether a `NOSCRIPT` error answers this request (so it can be sent again as `EVAL`).
    pub(crate) fn may_get_noscript(&self) -> bool {
        self.call.as_ref().is_some_and(|c| c.form == Form::EvalSha)
    }

    /// Whether `error` refuses this request's native command as unknown (so its script goes
    /// instead).
    pub(crate) fn falls_back(&self, error: &str) -> bool {
        self.call.as_ref().is_some_and(|c| c.falls_back(error))
    }

    /// This request as `EVAL` of its script, due at `deadline`, reading its reply as the script's.
    /// `None` for a request with no script. A `WAIT` stays a `WAIT` (sent again after the
    /// scripts it follows, it covers their writes).
    pub(crate) fn as_eval(&self, deadline: Instant) -> Option<Request> {
        let call = self.call.as_ref()?;
        if call.form == Form::Wait {
            return Some(Request {
                asked: self.asked,
                deadline,
                call: Some(call.clone()),
                superseded: false,
            });
        }
        Some(Request {
            asked: self.asked.as_script(),
            deadline,
            call: Some(Call {
                form: Form::Eval,
                ..call.clone()
            }),
            superseded: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(reading: Reading) -> Asked {
        Asked::Vote {
            op: OpId::new(1),
            round: 1,
            reading,
        }
    }

    fn outcome(asked: Asked, reply: Reply) -> Result<(Outcome, Option<u64>), ConnError> {
        match asked.read(&reply)? {
            Answer::Vote {
                outcome, counter, ..
            } => Ok((outcome, counter)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_request_accepts_only_its_own_replies() {
        let ok = Reply::Status(Bytes::from_static(b"OK"));
        assert_eq!(
            outcome(vote(Reading::SetNx), ok.clone()),
            Ok((Outcome::Granted, None))
        );
        assert_eq!(
            outcome(vote(Reading::SetNx), Reply::Nil),
            Ok((Outcome::Refused, None))
        );
        // SET NX never answers with an integer; the acquire script never answers +OK.
        assert!(outcome(vote(Reading::SetNx), Reply::Int(1)).is_err());
        assert!(outcome(vote(Reading::Grant), ok).is_err());
        assert_eq!(
            outcome(vote(Reading::Grant), Reply::Bool(false)),
            Ok((Outcome::Refused, None))
        );
        assert!(outcome(vote(Reading::Grant), Reply::Int(2)).is_err());
        assert!(outcome(vote(Reading::Grant), Reply::Int(-1)).is_err());
        // A fenced acquire answers with an array; a bare integer or a negative counter is wrong.
        let fenced = vote(Reading::FencedGrant);
        assert!(outcome(fenced, Reply::Int(1)).is_err());
        assert!(outcome(fenced, Reply::Array(vec![Reply::Int(1), Reply::Int(-3)])).is_err());
        assert_eq!(
            outcome(fenced, Reply::Array(vec![Reply::Int(0)])),
            Ok((Outcome::Refused, None))
        );
        assert_eq!(
            outcome(fenced, Reply::Array(vec![Reply::Int(1), Reply::Int(7)])),
            Ok((Outcome::Granted, Some(7)))
        );
        // An unfenced script never answers with an array.
        assert!(outcome(vote(Reading::Grant), Reply::Array(vec![Reply::Int(1)])).is_err());
        assert!(outcome(vote(Reading::Deleted), Reply::Int(-1)).is_err());
        assert_eq!(
            outcome(vote(Reading::Deleted), Reply::Int(2)),
            Ok((Outcome::Released(2), None))
        );
        assert_eq!(
            outcome(vote(Reading::Grant), Reply::Error("OOM".into())),
            Ok((Outcome::ErrorReply("OOM".into()), None))
        );
    }

    #[test]
    fn a_set_nx_sent_again_reads_the_acquire_scripts_replies() {
        assert_eq!(vote(Reading::SetNx).as_script(), vote(Reading::Grant));
        assert_eq!(vote(Reading::Deleted).as_script(), vote(Reading::Deleted));
        assert_eq!(vote(Reading::SetIfEq).as_script(), vote(Reading::Grant));
        assert_eq!(
            vote(Reading::DeletedOne).as_script(),
            vote(Reading::Deleted)
        );
    }

    fn call(native: Native, keys: &[&'static str]) -> Call {
        let kind = match native {
            Native::Extend => crate::script::ScriptKind::Extend,
            _ => crate::script::ScriptKind::Release,
        };
        Call {
            script: crate::script::ScriptSet::new(&Default::default())
                .get(kind)
                .clone(),
            keys: keys
                .iter()
                .map(|k| Bytes::from_static(k.as_bytes()))
                .collect(),
            argv: Arc::from([Bytes::from_static(b"tok"), Bytes::from_static(b"500")]),
            form: Form::EvalSha,
            takes_keys: false,
            native,
            layout: Layout::Keys,
            asking: false,
            hops: 0,
        }
    }

    fn wire(call: &Call) -> Vec<u8> {
        let mut out = BytesMut::new();
        call.encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn native_forms_go_where_the_node_has_them_and_read_their_own_replies() {
        let all = Natives {
            delex: true,
            delifeq: true,
            set_ifeq: true,
        };
        let valkey9 = Natives {
            delex: false,
            ..all
        };
        let release = vote(Reading::Deleted);
        let (asked, c) = call(Native::Release, &["k"]).for_node(release, all);
        assert_eq!(asked, vote(Reading::DeletedOne));
        assert_eq!(
            wire(&c),
            b"*4\r\n$5\r\nDELEX\r\n$1\r\nk\r\n$4\r\nIFEQ\r\n$3\r\ntok\r\n"
        );
        let (_, c) = call(Native::Release, &["k"]).for_node(release, valkey9);
        assert_eq!(wire(&c), b"*3\r\n$7\r\nDELIFEQ\r\n$1\r\nk\r\n$3\r\ntok\r\n");
        let (asked, c) = call(Native::Extend, &["k"]).for_node(vote(Reading::Grant), all);
        assert_eq!(asked, vote(Reading::SetIfEq));
        assert_eq!(
            wire(&c),
            b"*7\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\ntok\r\n$4\r\nIFEQ\r\n$3\r\ntok\r\n$2\r\nPX\r\n$3\r\n500\r\n"
        );
        // Two keys, no native permission, or a server without the command: the script.
        for (native, keys, natives) in [
            (Native::Release, &["a", "b"][..], all),
            (Native::Never, &["k"][..], all),
            (Native::Release, &["k"][..], Natives::default()),
            (
                Native::Extend,
                &["k"][..],
                Natives {
                    set_ifeq: false,
                    ..all
                },
            ),
        ] {
            let (asked, c) = call(native, keys).for_node(release, natives);
            assert_eq!((asked, c.form), (release, Form::EvalSha));
        }
        // A cleanup stays a cleanup, whatever goes on the wire.
        let (asked, c) = call(Native::Release, &["k"]).for_node(Asked::Cleanup, all);
        assert_eq!((asked, c.form), (Asked::Cleanup, Form::DelEx));
        assert_eq!(asked.read(&Reply::Int(1)), Ok(Answer::Nothing));
        // Replies: SET IFEQ +OK or nil; DELEX 1 or 0, never more.
        let ok = Reply::Status(Bytes::from_static(b"OK"));
        assert_eq!(
            outcome(vote(Reading::SetIfEq), ok),
            Ok((Outcome::Granted, None))
        );
        assert_eq!(
            outcome(vote(Reading::SetIfEq), Reply::Nil),
            Ok((Outcome::Refused, None))
        );
        assert!(outcome(vote(Reading::SetIfEq), Reply::Int(1)).is_err());
        assert_eq!(
            outcome(vote(Reading::DeletedOne), Reply::Int(1)),
            Ok((Outcome::Released(1), None))
        );
        assert!(outcome(vote(Reading::DeletedOne), Reply::Int(2)).is_err());
        assert!(outcome(vote(Reading::DeletedOne), Reply::Nil).is_err());
    }

    #[test]
    fn only_an_unknown_native_command_falls_back() {
        let native = Call {
            form: Form::DelEx,
            ..call(Native::Release, &["k"])
        };
        assert!(native.falls_back("ERR unknown command 'DELEX', with args beginning with: "));
        assert!(native.falls_back("ERR syntax error"));
        assert!(!native.falls_back("NOPERM User app has no permissions to run the 'delex' command"));
        let script = call(Native::Release, &["k"]);
        assert!(!script.falls_back("ERR unknown command 'EVALSHA'"));
    }

    #[test]
    fn handshake_errors_break_the_connection_cleanup_errors_do_not() {
        assert!(Asked::Handshake
            .read(&Reply::Error("WRONGPASS".into()))
            .is_err());
        let voting = Asked::Info { voting: true };
        assert!(voting.read(&Reply::Error("NOPERM".into())).is_err());
        // Without restart-aware voting, a user without INFO permission still connects.
        assert_eq!(
            Asked::Info { voting: false }.read(&Reply::Error("NOPERM no INFO".into())),
            Ok(Answer::Info {
                restart: None,
                natives: Natives::default()
            })
        );
        assert!(voting
            .read(&Reply::Bulk("redis_version:8.4.0".into()))
            .is_err());
        match (Asked::Info { voting: false }).read(&Reply::Bulk("redis_version:8.4.0".into())) {
            Ok(Answer::Info {
                restart: None,
                natives,
            }) => assert!(natives.delex),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Asked::Cleanup.read(&Reply::Error("OOM".into())),
            Ok(Answer::Nothing)
        );
        assert!(Asked::Cleanup.read(&Reply::Bool(true)).is_err());
    }
}
