//! Arbitrary bytes from the nodes into a connected engine with one or two acquires in flight.
//!
//! Input layout (hand-rolled so seeds are easy to write):
//! - byte 0: `nodes = 1 + (b & 7) % 5`; bit 3 RESP3, bit 4 answer the handshakes first (so the bytes
//!   land on the lock scripts' votes), bit 5 reconnect a node after `Reconnect`, bit 6 start a
//!   second acquire (same resource when bit 7 is clear), bit 7 release locks as they arrive;
//! - byte 1: `retry_count = b % 4`, ttl from bits 2-3, node_timeout from bits 4-5;
//! - then chunks: a header byte (node = `h % nodes`, clock step = `(h >> 3) * 7` ms), a length
//!   byte (255 = the rest of the input), and that many bytes for `handle_input`.
//!
//! Checks: no panic; the engine's outputs stay consistent (see the harness); once the bytes run
//! out, stepping time to `poll_timeout()` completes every operation within a bounded number of
//! steps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redlock_core::{Options, Protocol};
use redlock_fuzz::{token, Harness, OpKind};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let (&b0, &b1, mut rest) = match data {
        [a, b, rest @ ..] => (a, b, rest),
        _ => return,
    };
    let nodes = 1 + usize::from(b0 & 7) % 5;
    let mut options = Options::default();
    if b0 & 0x08 != 0 {
        options.protocol = Protocol::Resp3;
    }
    let retries = u32::from(b1 % 4);
    options.retry_count = Some(retries);
    options.retry_delay = Duration::from_millis(50);
    options.retry_jitter = Duration::from_millis(20);
    options.node_timeout = Duration::from_millis([50, 200, 500, 2000][usize::from(b1 >> 4 & 3)]);
    let ttl = Duration::from_millis([10, 100, 1000, 30_000][usize::from(b1 >> 2 & 3)]);
    let Some(mut h) = Harness::new(nodes, options, u64::from(b1)) else {
        return;
    };
    for node in 0..nodes {
        h.connect(node);
    }
    if b0 & 0x10 != 0 {
        h.answer_handshakes();
    }
    let now = h.clock.now();
    let op = h
        .engine
        .acquire(
            now,
            ["orders:42"],
            ttl,
            token(20, 1).expect("valid token"),
            h.clock.wall(),
        )
        .expect("valid acquire");
    h.started(op, OpKind::Acquire, vec!["orders:42".into()]);
    h.clock.observe(now);
    if b0 & 0x40 != 0 {
        let resource = if b0 & 0x80 != 0 {
            "orders:43"
        } else {
            "orders:42"
        };
        let op = h
            .engine
            .acquire(
                now,
                [resource, "shared"],
                ttl,
                token(16, 2).expect("valid token"),
                h.clock.wall(),
            )
            .expect("valid acquire");
        h.started(op, OpKind::Acquire, vec![resource.into(), "shared".into()]);
        h.clock.observe(now);
    }
    h.drain();

    let mut released = 0;
    while let [head, len, tail @ ..] = rest {
        let node = usize::from(*head) % nodes;
        let take = if *len == 255 {
            tail.len()
        } else {
            usize::from(*len).min(tail.len())
        };
        let (chunk, tail) = tail.split_at(take);
        rest = tail;
        h.clock
            .forward(Duration::from_millis(u64::from(head >> 3) * 7));
        h.input(node, chunk);
        if h.engine.poll_timeout().is_some_and(|t| t <= h.clock.now()) {
            h.timeout();
        }
        if b0 & 0x20 != 0 {
            for n in 0..nodes {
                if !h.up[n] {
                    h.connect(n);
                }
            }
        }
        if b0 & 0x80 != 0 {
            while released < h.locks.len() {
                let lock = h.locks[released].clone();
                released += 1;
                let now = h.clock.now();
                let op = h.engine.release(now, &lock);
                h.clock.observe(now);
                h.started(op, OpKind::Release, lock.resources().to_vec());
                h.drain();
            }
        }
    }
    // Every attempt ends by its deadline (or its requests' timeouts), each op makes at most
    // retries + 1 attempts, and each node can time out once per connection.
    let bound = 4 * (h.open.len() + 1) * (retries as usize + 2) + 2 * nodes + 16;
    h.settle(bound);
});
