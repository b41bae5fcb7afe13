//! One node's connection: handshake, the FIFO of requests awaiting replies, the transparent
//! EVALSHA → EVAL fallback on NOSCRIPT, request deadlines, and the input cap.
//!
//! Redis answers in request order, so the reply at the head of the stream belongs to the request
//! at the head of the FIFO. Anything that breaks that correspondence (a timeout, bytes that do not
//! parse, a reply with nothing pending) poisons the connection: every pending request fails, and
//! nothing is matched again until the adapter reconnects.

use crate::error::ConnError;
use crate::request::{Answer, Asked, Call, Request};
use crate::resp::{encode_command, Decoder, Protocol, Reply, StreamError};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Why a connection must be shut: the request it broke on (when a reply could not answer it)
/// and the reason.
#[derive(Debug)]
pub(crate) struct Broken {
    /// The request whose reply made no sense; `None` for a stream error or an unasked reply.
    pub(crate) asked: Option<Asked>,
    /// Why.
    pub(crate) reason: ConnError,
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
    pending: VecDeque<Request>,
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
    /// `info`). Returns what was asked on the old stream (it can never be answered now).
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        handshake: &[Vec<Bytes>],
        info: bool,
    ) -> Vec<Asked> {
        let lost = self.shut();
        self.up = true;
        let info_cmd = [Bytes::from_static(b"INFO"), Bytes::from_static(b"server")];
        let cmds = handshake.iter().map(|c| (Asked::Handshake, &c[..]));
        for (asked, cmd) in cmds.chain(info.then_some((Asked::Info, &info_cmd[..]))) {
            encode_command(&mut self.out, cmd);
            self.pending
                .push_back(Request::plain(asked, now + self.timeout));
        }
        lost
    }

    /// The stream is gone: drop buffers, return what every pending request asked.
    pub(crate) fn shut(&mut self) -> Vec<Asked> {
        self.up = false;
        self.out.clear();
        self.decoder = Decoder::new(self.protocol, self.cap);
        self.inbox.clear();
        self.stream_error = None;
        self.pending
            .drain(..)
            .filter(|r| !r.superseded)
            .map(|r| r.asked)
            .collect()
    }

    /// Queues a lock request: `call` goes out in its form, and its reply is read as `asked` says.
    pub(crate) fn send(&mut self, now: Instant, asked: Asked, call: Call) {
        call.encode(&mut self.out);
        self.pending
            .push_back(Request::call(asked, now + self.timeout, call));
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

    /// The next answered request, read as it asked, from the inbox; `None` when it is empty.
    /// An `Err` means the connection must be shut by the caller.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Result<Answer, Broken>> {
        loop {
            let Some(reply) = self.inbox.pop_front() else {
                return self.stream_error.take().map(|e| {
                    Err(Broken {
                        asked: None,
                        reason: ConnError::Stream(e),
                    })
                });
            };
            if matches!(reply, Reply::Push(_)) {
                continue; // out-of-band (RESP3): never an answer
            }
            let Some(req) = self.pending.pop_front() else {
                return Some(Err(Broken {
                    asked: None,
                    reason: ConnError::UnexpectedReply(format!(
                        "{reply:?} with no request pending"
                    )),
                }));
            };
            if req.superseded {
                continue;
            }
            if let Reply::Error(e) = &reply {
                if e.starts_with("NOSCRIPT") && req.may_get_noscript() {
                    self.resend_after_noscript(now, &req);
                    continue;
                }
            }
            return Some(req.asked.read(&reply).map_err(|reason| Broken {
                asked: Some(req.asked),
                reason,
            }));
        }
    }

    /// The node lost its script cache (restart, SCRIPT FLUSH): send `req` again with the
    /// script's source; the caller never sees NOSCRIPT.
    fn resend_after_noscript(&mut self, now: Instant, req: &Request) {
        let deadline = now + self.timeout;
        let Some(again) = req.as_eval(deadline) else {
            return;
        };
        // The scripts pipelined behind this one have already run, before the re-send: a
        // cleanup release before the acquire it undoes, or a stale release after the next
        // attempt's acquire (same token), deleting a key that attempt counts. Run them again
        // after it, in order, and count only those replies: the node sees this connection's
        // scripts in the order they were issued. A plain SET NX re-run would refuse its own
        // first run's key; it goes again as the acquire script, which accepts a key holding the
        // same token (and its reply is read as that script's).
        let behind = self.pending.len();
        again.call.iter().for_each(|c| c.encode(&mut self.out));
        self.pending.push_back(again);
        for i in 0..behind {
            if self.pending[i].superseded {
                continue;
            }
            let Some(copy) = self.pending[i].as_eval(deadline) else {
                continue;
            };
            self.pending[i].superseded = true;
            copy.call.iter().for_each(|c| c.encode(&mut self.out));
            self.pending.push_back(copy);
        }
    }
}
