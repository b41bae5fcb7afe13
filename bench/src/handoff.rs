//! The thread hand-offs alone (`--mode handoff`): `--concurrency` threads each hand a request
//! to one serving thread and park until it is answered, twice per operation (an acquire's
//! stage and a release's), with no library, no socket and no Redis. The serving thread takes
//! every request queued at once and answers it at once.
//!
//! It is the least CPU a blocking client with a thread per caller spends per operation on
//! this machine: waking a parked thread and switching into it, four times an operation. Taken
//! beside the blocking adapter's C=32 case, it bounds what that adapter can reach against a
//! client whose callers are tasks.

use crate::cpu;
use crate::row::Measured;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The `client` of the JSON line.
pub const CLIENT: &str = "thread hand-offs alone";

/// A request: the flag its answer sets, and the thread to unpark.
struct Request {
    answered: Arc<AtomicBool>,
    thread: Thread,
}

/// The serving thread's inbox.
#[derive(Default)]
struct Inbox {
    queue: Mutex<Vec<Request>>,
    ready: Condvar,
}

/// Runs `threads` callers for `duration`; returns their operations' figures (latency from the
/// first hand-off to the second answer; CPU of the whole process).
pub fn run(threads: usize, duration: Duration) -> Measured {
    counted(threads, duration).0
}

/// [`run`], and how many requests the serving thread answered.
fn counted(threads: usize, duration: Duration) -> (Measured, u64) {
    let inbox = Arc::new(Inbox::default());
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (inbox, stop) = (inbox.clone(), stop.clone());
        std::thread::spawn(move || serve(&inbox, &stop))
    };
    let cpu0 = cpu::process_time();
    let end = Instant::now() + duration;
    let callers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                let mut lat_ns = Vec::new();
                while Instant::now() < end {
                    let start = Instant::now();
                    hand_off(&inbox);
                    hand_off(&inbox);
                    lat_ns.push(start.elapsed().as_nanos() as u64);
                }
                lat_ns
            })
        })
        .collect();
    let lat_ns: Vec<u64> = callers
        .into_iter()
        .flat_map(|c| c.join().unwrap_or_default())
        .collect();
    let cpu = match (cpu0, cpu::process_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    stop.store(true, Ordering::Release);
    inbox.ready.notify_one();
    let answered = server.join().unwrap_or_default();
    let completed = lat_ns.len() as u64;
    (
        Measured::from_latencies(lat_ns, completed, 0, duration, cpu),
        answered,
    )
}

/// One stage: queue a request, wake the serving thread, park until answered.
fn hand_off(inbox: &Inbox) {
    let answered = Arc::new(AtomicBool::new(false));
    let request = Request {
        answered: answered.clone(),
        thread: std::thread::current(),
    };
    inbox
        .queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(request);
    inbox.ready.notify_one();
    // `park` may return without an unpark: wait for the flag.
    while !answered.load(Ordering::Acquire) {
        std::thread::park();
    }
}

/// Answers every queued request, a batch at a time, until `stop`; returns how many.
fn serve(inbox: &Inbox, stop: &AtomicBool) -> u64 {
    let mut answered = 0;
    loop {
        let batch = {
            let mut queue = inbox.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if !queue.is_empty() {
                    break std::mem::take(&mut *queue);
                }
                if stop.load(Ordering::Acquire) {
                    return answered;
                }
                // Bounded, so a stop that races the check is seen within it.
                queue = inbox
                    .ready
                    .wait_timeout(queue, Duration::from_millis(10))
                    .map_or_else(|e| e.into_inner().0, |(q, _)| q);
            }
        };
        for request in batch {
            answered += 1;
            request.answered.store(true, Ordering::Release);
            request.thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_is_two_answered_hand_offs_and_the_run_ends() {
        let (m, answered) = super::counted(4, std::time::Duration::from_millis(200));
        assert!(m.ops > 0, "operations completed");
        assert_eq!(
            answered,
            2 * m.ops,
            "two hand-offs per operation, none left over"
        );
        assert_eq!(m.errors, 0);
        assert!(m.p50_us > 0.0 && m.p50_us <= m.p99_us);
    }
}
