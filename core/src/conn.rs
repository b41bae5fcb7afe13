//! One node's connection: handshake, the FIFO of requests awaiting replies, the transparent
//! EVALSHA → EVAL fallback on NOSCRIPT, the node's native commands standing in for scripts on
//! one key (and the fallback to the scripts when the node refuses them as unknown), request
//! deadlines, and the input cap.
//!
//! `INFO server` follows the handshake (unless native commands are off and restart-aware
//! voting is too): it says which server this is, so which
//! native commands it has. Without restart-aware voting the connection does not wait for it
//! (requests sent before its reply is read use the scripts), and an error reply (an ACL user
//! without `INFO`) only leaves the server unknown.
//!
//! Lock requests go out only once the handshake has succeeded: until then they are held, so a
//! refused `AUTH` or `SELECT` never lets one run as the wrong user or in the wrong database.
//!
//! Redis answers in request order, so the reply at the head of the stream belongs to the request
//! at the head of the FIFO. Anything that breaks that correspondence (a timeout, bytes that do not
//! parse, a reply with nothing pending) poisons the connection: every pending request fails, and
//! nothing is matched again until the adapter reconnects.

use crate::error::ConnError;
use crate::handshake::Natives;
use crate::request::{Answer, Asked, Call, Form, Request};
use crate::resp::{encode_command, Decoder, Protocol, Reply, StreamError};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// The most requests held for a link's first connect.
const MAX_OPENING_HELD: usize = 4096;

/// A request a shut connection can no longer answer.
#[derive(Debug)]
pub(crate) struct Lost {
    /// What it asked.
    pub(crate) asked: Asked,
    /// Its command, for lock requests.
    pub(crate) call: Option<Call>,
    /// Whether it had been written (it may then have run on the node).
    pub(crate) sent: bool,
}

/// Why a connection must be shut: the request it broke on (when a reply could not answer it)
/// and the reason.
#[derive(Debug)]
pub(crate) struct Broken {
    /// The request whose reply made no sense; `None` for a stream error or an unasked reply.
    pub(crate) asked: Option<Asked>,
    /// Why.
    pub(crate) reason: ConnError,
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No socket.
    Down,
    /// The handshake is in flight; this many of its replies are still to come.
    Handshaking { left: usize },
    /// The handshake succeeded: lock requests go out as they come.
    Ready,
}

#[derive(Debug)]
pub(crate) struct Conn {
    state: State,
    /// Lock requests made while the handshake was in flight, sent once it succeeds.
    held: Vec<(Asked, Call)>,
    /// Set when the handshake has just succeeded, until the engine takes it.
    became_ready: bool,
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
    /// What the node's `INFO server` said it can do natively on this socket.
    natives: Natives,
    /// Whether this socket may subscribe to release channels: RESP3 (pushes share the lock
    /// connection), until the node refuses a `SUBSCRIBE`.
    subscribes: bool,
    /// The release channels subscribed (or asked for) on this socket.
    channels: BTreeSet<Bytes>,
    /// A RESP2 subscriber connection: it only subscribes, and its confirmations and messages
    /// come as ordinary arrays (RESP2 has no pushes).
    subscriber: bool,
    /// A cluster shard's connection: `MOVED` and `ASK` answers go back to the engine with the
    /// request's command, to be sent where they say.
    redirects: bool,
    /// Opened at the engine's request and not connected yet: lock requests are held (as
    /// during the handshake) rather than refused, until the first connect succeeds or fails.
    opening: bool,
}

impl Conn {
    pub(crate) fn new(protocol: Protocol, cap: usize, timeout: Duration) -> Conn {
        Conn {
            state: State::Down,
            held: Vec::new(),
            became_ready: false,
            out: BytesMut::new(),
            decoder: Decoder::new(protocol, cap),
            inbox: VecDeque::new(),
            stream_error: None,
            pending: VecDeque::new(),
            protocol,
            cap,
            timeout,
            natives: Natives::default(),
            subscribes: false,
            channels: BTreeSet::new(),
            subscriber: false,
            redirects: false,
            opening: false,
        }
    }

    /// A cluster shard's connection, just asked for: requests wait for its first connect, and
    /// redirects go back to the engine.
    pub(crate) fn shard(protocol: Protocol, cap: usize, timeout: Duration) -> Conn {
        Conn {
            redirects: true,
            opening: true,
            ..Conn::new(protocol, cap, timeout)
        }
    }

    /// The first connect failed: the requests held for it are lost (never sent), and from now
    /// on requests are refused while the link is down, as on any connection.
    pub(crate) fn give_up_opening(&mut self) -> Vec<Lost> {
        if !std::mem::take(&mut self.opening) {
            return Vec::new();
        }
        self.held
            .drain(..)
            .map(|(asked, call)| Lost {
                asked,
                call: Some(call),
                sent: false,
            })
            .collect()
    }

    /// Whether a request sent now would go out (or be held for the handshake or the first
    /// connect) rather than be dropped. A link whose first connect never comes (an adapter
    /// that does not open it) holds at most [`MAX_OPENING_HELD`] requests; past that it counts
    /// as down.
    pub(crate) fn accepts(&self) -> bool {
        self.is_up() || (self.opening && self.held.len() < MAX_OPENING_HELD)
    }
    /// A RESP2 connection that only subscribes to release channels.
    pub(crate) fn subscriber(cap: usize, timeout: Duration) -> Conn {
        Conn {
            subscriber: true,
            ..Conn::new(Protocol::Resp2, cap, timeout)
        }
    }

    /// Whether requests can be queued: a socket is open (requests made while the handshake is
    /// still in flight are held until it succeeds).
    pub(crate) fn is_up(&self) -> bool {
        self.state != State::Down
    }

    /// Whether the handshake has succeeded on this socket.
    pub(crate) fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Whether the handshake succeeded since the last call (once per socket).
    pub(crate) fn take_became_ready(&mut self) -> bool {
        std::mem::take(&mut self.became_ready)
    }

    /// A fresh socket: forget the old stream and queue the handshake, then `INFO server` when
    /// `info` (part of the handshake when `voting`: restart-aware voting needs it before any
    /// vote). Returns what was asked on the old stream (it can never be answered now).
    ///
    /// With `slots` (a cluster's seed connection) `CLUSTER SLOTS` is part of the handshake.
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        handshake: &[Vec<Bytes>],
        info: bool,
        voting: bool,
        slots: bool,
    ) -> Vec<Lost> {
        // Requests made before the first connect were held for it.
        let waiting = if std::mem::take(&mut self.opening) {
            std::mem::take(&mut self.held)
        } else {
            Vec::new()
        };
        let lost = self.shut();
        self.held = waiting;
        self.subscribes = self.protocol == Protocol::Resp3 || self.subscriber;
        let info_cmd = [Bytes::from_static(b"INFO"), Bytes::from_static(b"server")];
        let slots_cmd = [Bytes::from_static(b"CLUSTER"), Bytes::from_static(b"SLOTS")];
        let cmds = handshake.iter().map(|c| (Asked::Handshake, &c[..]));
        let info = (info || voting).then_some((Asked::Info { voting }, &info_cmd[..]));
        let slots = slots.then_some((Asked::Slots { handshake: true }, &slots_cmd[..]));
        let left = handshake.len() + usize::from(voting) + usize::from(slots.is_some());
        for (asked, cmd) in cmds.chain(info).chain(slots) {
            encode_command(&mut self.out, cmd);
            self.pending
                .push_back(Request::plain(asked, now + self.timeout));
        }
        self.state = State::Handshaking { left };
        self.ready_if_done(now);
        lost
    }

    /// Asks for the cluster's slot map again (ready connections only; `false` otherwise).
    pub(crate) fn refresh_slots(&mut self, now: Instant) -> bool {
        if self.state != State::Ready {
            return false;
        }
        encode_command(&mut self.out, &[&b"CLUSTER"[..], b"SLOTS"]);
        self.pending.push_back(Request::plain(
            Asked::Slots { handshake: false },
            now + self.timeout,
        ));
        true
    }

    /// The request just answered by a redirect was followed by its `WAIT` (replica
    /// acknowledgement): that `WAIT` acknowledges nothing the request wrote (it runs elsewhere
    /// now, with a `WAIT` of its own), so its reply is skipped. Returns whether there was one.
    pub(crate) fn skip_wait(&mut self) -> bool {
        match self.pending.front_mut() {
            Some(r) if !r.superseded && r.call.as_ref().is_some_and(|c| c.form == Form::Wait) => {
                r.superseded = true;
                true
            }
            _ => false,
        }
    }

    /// Encodes `req`'s command (after `ASKING` when it was redirected by `ASK`) and queues it.
    fn push(&mut self, req: Request) {
        if let Some(call) = &req.call {
            if call.asking {
                encode_command(&mut self.out, &[&b"ASKING"[..]]);
                self.pending
                    .push_back(Request::plain(Asked::Asking, req.deadline));
            }
            call.encode(&mut self.out);
        }
        self.pending.push_back(req);
    }

    /// Once no handshake reply is outstanding: ready, and the held requests go out.
    fn ready_if_done(&mut self, now: Instant) {
        if self.state == (State::Handshaking { left: 0 }) {
            self.state = State::Ready;
            self.became_ready = true;
            for (asked, call) in std::mem::take(&mut self.held) {
                self.send(now, asked, call);
            }
        }
    }

    /// The stream is gone: drop buffers, return every request that was pending or held (they
    /// can never be answered now); those that were sent may have run on the node.
    pub(crate) fn shut(&mut self) -> Vec<Lost> {
        self.state = State::Down;
        self.became_ready = false;
        self.out.clear();
        self.decoder = Decoder::new(self.protocol, self.cap);
        self.inbox.clear();
        self.stream_error = None;
        self.natives = Natives::default();
        self.subscribes = false;
        self.channels.clear();
        let sent = self
            .pending
            .drain(..)
            .filter(|r| !r.superseded)
            .map(|r| Lost {
                asked: r.asked,
                call: r.call,
                sent: true,
            });
        let held = self.held.drain(..).map(|(asked, call)| Lost {
            asked,
            call: Some(call),
            sent: false,
        });
        sent.chain(held).collect()
    }

    /// Queues a lock request: `call` goes out in its form (held until the handshake has
    /// succeeded), and its reply is read as `asked` says.
    pub(crate) fn send(&mut self, now: Instant, asked: Asked, call: Call) {
        match self.state {
            State::Ready => {
                let (asked, call) = call.for_node(asked, self.natives);
                // A native release cannot publish: announce it here (whether it deleted or not;
                // a spurious announcement costs a waiter one attempt). Cleanups carry no
                // channel (see `Engine::release_call`) and stay silent.
                let announce = match (&asked, call.form, call.argv.get(1)) {
                    (Asked::Vote { .. }, Form::DelEx | Form::DelIfEq, Some(channel)) => {
                        Some(channel.clone())
                    }
                    _ => None,
                };
                self.push(Request::call(asked, now + self.timeout, call));
                if let Some(channel) = announce {
                    encode_command(&mut self.out, &[&b"PUBLISH"[..], &channel, b""]);
                    self.pending
                        .push_back(Request::plain(Asked::Announce, now + self.timeout));
                }
            }
            State::Handshaking { .. } => self.held.push((asked, call)),
            State::Down if self.accepts() => self.held.push((asked, call)),
            // The engine sends only to connections that accept requests.
            State::Down => {}
        }
    }

    /// Brings this socket's release-channel subscriptions to `wanted` (RESP3 or a subscriber
    /// connection, and ready only; otherwise nothing): `SUBSCRIBE` what is missing, `UNSUBSCRIBE` what is no longer wanted.
    pub(crate) fn watch(&mut self, now: Instant, wanted: &BTreeSet<Bytes>) {
        if !self.subscribes || self.state != State::Ready {
            return;
        }
        let add: Vec<Bytes> = wanted.difference(&self.channels).cloned().collect();
        let drop: Vec<Bytes> = self.channels.difference(wanted).cloned().collect();
        for (cmd, channel) in add
            .into_iter()
            .map(|c| (&b"SUBSCRIBE"[..], c))
            .chain(drop.into_iter().map(|c| (&b"UNSUBSCRIBE"[..], c)))
        {
            encode_command(&mut self.out, &[cmd, &channel]);
            self.pending
                .push_back(Request::plain(Asked::Subscribe, now + self.timeout));
            if cmd == b"SUBSCRIBE" {
                self.channels.insert(channel);
            } else {
                self.channels.remove(&channel);
            }
        }
    }

    /// Everything queued for the socket since the last call.
    pub(crate) fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    /// How many requests wait for an answer on this socket: sent (the handshake's included) or
    /// held until it is ready.
    pub(crate) fn unanswered(&self) -> usize {
        self.pending.len() + self.held.len()
    }

    /// The earliest request deadline (the FIFO head's: deadlines only grow).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.deadline)
    }

    /// Whether the head request has waited past its deadline.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Feeds socket bytes. Complete replies wait in the inbox until [`Conn::next`] matches them
    /// one at a time, so the engine reacts to each before the next is matched: what it sends
    /// then does not depend on how the node's bytes were split into reads.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.state == State::Down {
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
            let pushed = match &reply {
                Reply::Push(items) => Some(items),
                // A subscribed RESP2 socket carries the same frames as arrays.
                Reply::Array(items) if self.subscriber => Some(items),
                _ => None,
            };
            if let Some(items) = pushed {
                // Out-of-band (RESP3): a release announcement, or the confirmation that answers
                // a (UN)SUBSCRIBE at the head of the FIFO; anything else is ignored.
                let head_subscribes = self
                    .pending
                    .front()
                    .is_some_and(|r| r.asked == Asked::Subscribe);
                match push_kind(items) {
                    Push::Message(channel) => return Some(Ok(Answer::Released { channel })),
                    Push::Confirm if head_subscribes => {
                        self.pending.pop_front();
                    }
                    _ => {}
                }
                continue;
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
                if self.redirects && (e.starts_with("MOVED ") || e.starts_with("ASK ")) {
                    if let Some(call) = req.call {
                        return Some(Ok(Answer::Redirect {
                            asked: req.asked,
                            call,
                            error: e.clone(),
                        }));
                    }
                }
                if e.starts_with("NOSCRIPT") && req.may_get_noscript() {
                    self.resend_as_script(now, &req);
                    continue;
                }
                if req.falls_back(e) {
                    // The server does not have the command its version promised (renamed,
                    // disabled): scripts from now on, on this socket.
                    self.natives = Natives::default();
                    self.resend_as_script(now, &req);
                    continue;
                }
            }
            let answer = req.asked.read(&reply).map_err(|reason| Broken {
                asked: Some(req.asked),
                reason,
            });
            if let Ok(Answer::Info { natives, .. }) = &answer {
                self.natives = *natives;
            }
            if let Ok(Answer::NoSubscribe) = &answer {
                self.subscribes = false;
            }
            let step = matches!(
                req.asked,
                Asked::Handshake | Asked::Info { voting: true } | Asked::Slots { handshake: true }
            );
            if let (Ok(_), true) = (&answer, step) {
                if let State::Handshaking { left } = &mut self.state {
                    *left = left.saturating_sub(1);
                }
                self.ready_if_done(now);
            }
            return Some(answer);
        }
    }

    /// The node lost its script cache (restart, SCRIPT FLUSH), or refused a native command as
    /// unknown: send `req` again as `EVAL` with the script's source; the caller never sees
    /// NOSCRIPT or the refusal.
    fn resend_as_script(&mut self, now: Instant, req: &Request) {
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
        // same token (and its reply is read as that script's). A native command goes again as
        // the script it stood in for (a native release that already ran then counts 0 deleted:
        // a release is best effort).
        let behind = self.pending.len();
        self.push(again);
        for i in 0..behind {
            if self.pending[i].superseded {
                continue;
            }
            let Some(copy) = self.pending[i].as_eval(deadline) else {
                continue;
            };
            self.pending[i].superseded = true;
            self.push(copy);
        }
    }
}

/// What a RESP3 push is, as far as release announcements go.
enum Push {
    /// `message channel payload`: something was published on `channel`.
    Message(Bytes),
    /// `subscribe` / `unsubscribe` confirmation of one channel.
    Confirm,
    /// Anything else (client-side caching invalidations, pattern messages).
    Other,
}

fn push_kind(items: &[Reply]) -> Push {
    let text = |r: &Reply| match r {
        Reply::Bulk(b) | Reply::Status(b) => Some(b.clone()),
        _ => None,
    };
    let Some(kind) = items.first().and_then(text) else {
        return Push::Other;
    };
    match (&kind.to_ascii_lowercase()[..], items.get(1).and_then(text)) {
        (b"message", Some(channel)) if items.len() == 3 => Push::Message(channel),
        (b"subscribe" | b"unsubscribe", _) => Push::Confirm,
        _ => Push::Other,
    }
}
