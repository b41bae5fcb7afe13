//! A request as a connection keeps it until its reply arrives: what it asked, and therefore what
//! each possible reply means; its deadline; and, for lock scripts, how to send it again.
//!
//! Everything that decides how a reply is read is fixed here when the request is made (and
//! changed here when a NOSCRIPT makes the connection send it again), so nothing about a reply has
//! to be guessed when it arrives.

use crate::error::{ConnError, Outcome};
use crate::handshake::ServerInfo;
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
    /// `INFO server`, read for restart-aware voting; an error reply breaks the connection.
    Info,
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
}

/// How a vote's reply is read: one per kind of command a vote can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// `SET key token NX PX ttl`: `+OK` grants, nil refuses.
    SetNx,
    /// The acquire, extend and fence scripts: 1 (or true) grants, 0 (or false, which RESP2
    /// carries as nil) refuses.
    Grant,
    /// The fenced acquire script: `{1, counter}` grants (with the node's fence counter), `{0}`
    /// refuses.
    FencedGrant,
    /// The release script: how many keys it deleted.
    Deleted,
}

/// What a reply meant, for the engine to act on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// Nothing to do (a handshake success, a cleanup's result).
    Nothing,
    /// `INFO server` answered.
    Info(ServerInfo),
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
            Asked::Info => match reply {
                Reply::Error(e) => Err(ConnError::Handshake(e.clone())),
                Reply::Bulk(text) | Reply::Status(text) => {
                    ServerInfo::parse(text).map(Answer::Info).ok_or_else(|| {
                        ConnError::UnexpectedReply(
                            "INFO server without run_id and uptime_in_seconds".into(),
                        )
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
    /// `SET NX` re-run goes out as the acquire script, whose replies differ.
    fn as_script(self) -> Asked {
        match self {
            Asked::Vote {
                op,
                round,
                reading: Reading::SetNx,
            } => Asked::Vote {
                op,
                round,
                reading: Reading::Grant,
            },
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
}

/// A lock request's command: a script (or the `SET NX` standing in for one) with its keys and
/// arguments, kept so it can be sent again.
#[derive(Debug, Clone)]
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
        }
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

    /// This request as `EVAL` of its script, due at `deadline`, reading its reply as the script's.
    /// `None` for a request with no script.
    pub(crate) fn as_eval(&self, deadline: Instant) -> Option<Request> {
        let call = self.call.as_ref()?;
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
    }

    #[test]
    fn handshake_errors_break_the_connection_cleanup_errors_do_not() {
        assert!(Asked::Handshake
            .read(&Reply::Error("WRONGPASS".into()))
            .is_err());
        assert!(Asked::Info.read(&Reply::Error("NOPERM".into())).is_err());
        assert_eq!(
            Asked::Cleanup.read(&Reply::Error("OOM".into())),
            Ok(Answer::Nothing)
        );
        assert!(Asked::Cleanup.read(&Reply::Bool(true)).is_err());
    }
}
