//! One node's connection: handshake, the FIFO of requests awaiting replies, the transparent
//! EVALSHA → EVAL fallback on NOSCRIPT, request deadlines, and the input cap.
//!
//! Redis answers in request order, so the reply at the head of the stream belongs to the request
//! at the head of the FIFO. Anything that breaks that correspondence (a timeout, bytes that do not
//! parse, a reply with nothing pending) poisons the connection: every pending request fails, and
//! nothing is matched again until the adapter reconnects.

use crate::engine::OpId;
use crate::error::ConnError;
use crate::resp::{encode_command, Decoder, Protocol, Reply};
use crate::script::Compiled;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who is waiting for a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// A handshake command; an error reply breaks the connection.
    Handshake,
    /// `INFO server`, read for restart-aware voting; an error reply breaks the connection.
    Info,
    /// An operation's vote in one round (an attempt has one round, or two with fencing).
    Vote { op: OpId, round: u32 },
    /// A best-effort release nobody waits for.
    Cleanup,
}

/// The parts of a script call needed to re-send it as `EVAL`.
#[derive(Debug)]
struct ScriptCall {
    source: Bytes,
    keys: Arc<[Bytes]>,
    argv: Arc<[Bytes]>,
    sent_as_eval: bool,
    /// Run again after a NOSCRIPT ahead of it (see [`Conn::input`]): this reply is ignored,
    /// the copy's reply counts.
    superseded: bool,
}

#[derive(Debug)]
struct Pending {
    tag: Tag,
    deadline: Instant,
    script: Option<ScriptCall>,
}

#[derive(Debug)]
pub(crate) struct Conn {
    up: bool,
    out: BytesMut,
    decoder: Decoder,
    pending: VecDeque<Pending>,
    protocol: Protocol,
    cap: usize,
    timeout: Duration,
}

impl Conn {
    pub(crate) fn new(protocol: Protocol, cap: usize, timeout: Duration) -> Conn {
        Conn {
            up: false,
            out: BytesMut::new(),
            decoder: Decoder::new(protocol, cap),
            pending: VecDeque::new(),
            protocol,
            cap,
            timeout,
        }
    }

    /// Whether requests can be queued (the handshake may still be in flight: requests are
    /// pipelined behind it, and Redis runs them in order).
    pub(crate) fn is_up(&self) -> bool {
        self.up
    }

    /// A fresh socket: forget the old stream and queue the handshake (then `INFO server` when
    /// `info`). Returns the tags of requests that were pending on the old stream (they can never
    /// be answered now).
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        handshake: &[Vec<Bytes>],
        info: bool,
    ) -> Vec<Tag> {
        let lost = self.shut();
        self.up = true;
        let info_cmd = [Bytes::from_static(b"INFO"), Bytes::from_static(b"server")];
        let cmds = handshake.iter().map(|c| (Tag::Handshake, &c[..]));
        for (tag, cmd) in cmds.chain(info.then_some((Tag::Info, &info_cmd[..]))) {
            encode_command(&mut self.out, cmd);
            self.pending.push_back(Pending {
                tag,
                deadline: now + self.timeout,
                script: None,
            });
        }
        lost
    }

    /// The stream is gone: drop buffers, return the tags of everything pending.
    pub(crate) fn shut(&mut self) -> Vec<Tag> {
        self.up = false;
        self.out.clear();
        self.decoder = Decoder::new(self.protocol, self.cap);
        self.pending
            .drain(..)
            .filter(|p| !p.script.as_ref().is_some_and(|c| c.superseded))
            .map(|p| p.tag)
            .collect()
    }

    /// Queues `EVALSHA sha numkeys keys… argv…`.
    pub(crate) fn send_script(
        &mut self,
        now: Instant,
        tag: Tag,
        script: &Compiled,
        keys: &Arc<[Bytes]>,
        argv: &Arc<[Bytes]>,
    ) {
        encode_script(&mut self.out, b"EVALSHA", &script.sha, keys, argv);
        self.pending.push_back(Pending {
            tag,
            deadline: now + self.timeout,
            script: Some(ScriptCall {
                source: script.source.clone(),
                keys: keys.clone(),
                argv: argv.clone(),
                sent_as_eval: false,
                superseded: false,
            }),
        });
    }

    /// Everything queued for the socket since the last call.
    pub(crate) fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    /// The earliest request deadline (the FIFO head's: deadlines only grow).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.deadline)
    }

    /// Whether the head request has waited past its deadline.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Feeds socket bytes; pushes `(tag, reply)` for each answered request onto `out`.
    ///
    /// On error the connection must be shut by the caller (replies decoded before the error
    /// are still pushed: they were matched correctly).
    pub(crate) fn input(
        &mut self,
        now: Instant,
        bytes: &[u8],
        answered: &mut Vec<(Tag, Reply)>,
    ) -> Result<(), ConnError> {
        if !self.up {
            // Bytes from a socket we already gave up on.
            return Ok(());
        }
        let Conn {
            decoder,
            pending,
            out,
            timeout,
            ..
        } = self;
        let mut failed: Option<ConnError> = None;
        let fed = decoder.feed(bytes, |reply| {
            if failed.is_some() {
                return;
            }
            if matches!(reply, Reply::Push(_)) {
                return; // out-of-band (RESP3): never an answer
            }
            let Some(mut req) = pending.pop_front() else {
                failed = Some(ConnError::UnexpectedReply(format!(
                    "{reply:?} with no request pending"
                )));
                return;
            };
            if req.script.as_ref().is_some_and(|c| c.superseded) {
                return;
            }
            if let Reply::Error(e) = &reply {
                if matches!(req.tag, Tag::Handshake | Tag::Info) {
                    failed = Some(ConnError::Handshake(e.clone()));
                    return;
                }
                if e.starts_with("NOSCRIPT") {
                    if let Some(call) = req.script.as_mut().filter(|c| !c.sent_as_eval) {
                        // The node lost its script cache (restart, SCRIPT FLUSH): send the
                        // source; the caller never sees NOSCRIPT.
                        encode_script(out, b"EVAL", &call.source, &call.keys, &call.argv);
                        call.sent_as_eval = true;
                        req.deadline = now + *timeout;
                        // The scripts pipelined behind this one have already run, before the
                        // re-send: a cleanup release before the acquire it undoes, or a stale
                        // release after the next attempt's acquire (same token), deleting a
                        // key that attempt counts. Run them again after it, in order, and
                        // count only those replies: the node sees this connection's scripts
                        // in the order they were issued.
                        let behind = pending.len();
                        pending.push_back(req);
                        for i in 0..behind {
                            let tag = pending[i].tag;
                            let Some(call) = pending[i].script.as_mut().filter(|c| !c.superseded)
                            else {
                                continue;
                            };
                            call.superseded = true;
                            encode_script(out, b"EVAL", &call.source, &call.keys, &call.argv);
                            let copy = Pending {
                                tag,
                                deadline: now + *timeout,
                                script: Some(ScriptCall {
                                    source: call.source.clone(),
                                    keys: call.keys.clone(),
                                    argv: call.argv.clone(),
                                    sent_as_eval: true,
                                    superseded: false,
                                }),
                            };
                            pending.push_back(copy);
                        }
                        return;
                    }
                }
            }
            answered.push((req.tag, reply));
        });
        if let Err(e) = fed {
            return Err(ConnError::Stream(e));
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn encode_script(out: &mut BytesMut, cmd: &[u8], script: &[u8], keys: &[Bytes], argv: &[Bytes]) {
    let numkeys = keys.len().to_string();
    let mut args: Vec<&[u8]> = Vec::with_capacity(3 + keys.len() + argv.len());
    args.push(cmd);
    args.push(script);
    args.push(numkeys.as_bytes());
    args.extend(keys.iter().map(|k| &k[..]));
    args.extend(argv.iter().map(|a| &a[..]));
    encode_command(out, &args);
}
