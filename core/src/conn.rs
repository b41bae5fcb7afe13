//! One node's connection: handshake, the FIFO of requests awaiting replies, the transparent
//! EVALSHA → EVAL fallback on NOSCRIPT, request deadlines, and the input cap.
//!
//! Redis answers in request order, so the reply at the head of the stream belongs to the request
//! at the head of the FIFO. Anything that breaks that correspondence (a timeout, bytes that do not
//! parse, a reply with nothing pending) poisons the connection: every pending request fails, and
//! nothing is matched again until the adapter reconnects.

use crate::engine::OpId;
use crate::error::ConnError;
use crate::resp::{encode_command, Decoder, Protocol, Reply, StreamError};
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

/// The parts of a lock request needed to send it again: a script call (re-sent as `EVAL`), or
/// a plain command standing in for one (`SET … NX PX`), which must keep its place among the
/// scripts when they are re-sent.
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
    /// Decoded replies not yet matched to their requests.
    inbox: VecDeque<Reply>,
    /// Bad bytes seen after the replies in the inbox.
    stream_error: Option<StreamError>,
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
            inbox: VecDeque::new(),
            stream_error: None,
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
        self.inbox.clear();
        self.stream_error = None;
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
        self.expect_reply(now, tag, script, keys, argv, false);
    }

    /// Queues a plain command that takes the place of `script` (see [`ScriptCall`]); if it must
    /// be run again after a NOSCRIPT ahead of it, `script` is sent instead.
    pub(crate) fn send_plain(
        &mut self,
        now: Instant,
        tag: Tag,
        args: Arc<[Bytes]>,
        script: &Compiled,
        keys: &Arc<[Bytes]>,
        argv: &Arc<[Bytes]>,
    ) {
        encode_command(&mut self.out, &args);
        // Never eligible for the NOSCRIPT fallback: a plain command is never answered NOSCRIPT.
        self.expect_reply(now, tag, script, keys, argv, true);
    }

    /// Records the request just encoded, so its reply is matched to `tag` (and `script` can be
    /// sent again after a NOSCRIPT ahead of it).
    fn expect_reply(
        &mut self,
        now: Instant,
        tag: Tag,
        script: &Compiled,
        keys: &Arc<[Bytes]>,
        argv: &Arc<[Bytes]>,
        sent_as_eval: bool,
    ) {
        self.pending.push_back(Pending {
            tag,
            deadline: now + self.timeout,
            script: Some(ScriptCall {
                source: script.source.clone(),
                keys: keys.clone(),
                argv: argv.clone(),
                sent_as_eval,
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

    /// Feeds socket bytes. Complete replies wait in the inbox until [`Conn::next`] matches them
    /// one at a time, so the engine reacts to each before the next is matched: what it sends
    /// then does not depend on how the node's bytes were split into reads.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if !self.up {
            // Bytes from a socket we already gave up on.
            return;
        }
        let inbox = &mut self.inbox;
        if let Err(e) = self.decoder.feed(bytes, |reply| inbox.push_back(reply)) {
            // Replies decoded before the bad bytes are still good; the error comes after them.
            self.stream_error = Some(e);
        }
    }

    /// The next answered request `(tag, reply)` from the inbox, `None` when it is empty.
    /// An `Err` means the connection must be shut by the caller.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Result<(Tag, Reply), ConnError>> {
        loop {
            let Some(reply) = self.inbox.pop_front() else {
                return self.stream_error.take().map(|e| Err(ConnError::Stream(e)));
            };
            if matches!(reply, Reply::Push(_)) {
                continue; // out-of-band (RESP3): never an answer
            }
            let Some(req) = self.pending.pop_front() else {
                return Some(Err(ConnError::UnexpectedReply(format!(
                    "{reply:?} with no request pending"
                ))));
            };
            if req.script.as_ref().is_some_and(|c| c.superseded) {
                continue;
            }
            if let Reply::Error(e) = &reply {
                if matches!(req.tag, Tag::Handshake | Tag::Info) {
                    return Some(Err(ConnError::Handshake(e.clone())));
                }
                if e.starts_with("NOSCRIPT") && req.script.as_ref().is_some_and(|c| !c.sent_as_eval)
                {
                    self.resend_after_noscript(now, req);
                    continue;
                }
            }
            return Some(Ok((req.tag, reply)));
        }
    }

    /// The node lost its script cache (restart, SCRIPT FLUSH): send `req` again with the
    /// script's source; the caller never sees NOSCRIPT.
    fn resend_after_noscript(&mut self, now: Instant, mut req: Pending) {
        let Conn {
            pending,
            out,
            timeout,
            ..
        } = self;
        let Some(call) = req.script.as_mut() else {
            return;
        };
        encode_script(out, b"EVAL", &call.source, &call.keys, &call.argv);
        call.sent_as_eval = true;
        req.deadline = now + *timeout;
        // The scripts pipelined behind this one have already run, before the re-send: a
        // cleanup release before the acquire it undoes, or a stale release after the next
        // attempt's acquire (same token), deleting a key that attempt counts. Run them again
        // after it, in order, and count only those replies: the node sees this connection's
        // scripts in the order they were issued.
        let behind = pending.len();
        pending.push_back(req);
        for i in 0..behind {
            let tag = pending[i].tag;
            let Some(call) = pending[i].script.as_mut().filter(|c| !c.superseded) else {
                continue;
            };
            call.superseded = true;
            // A plain SET NX re-run would refuse its own first run's key; its stand-in script
            // (`source`, the acquire script) accepts a key holding the same token.
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
