//! What the crate's unit tests share: a waker that counts its wake-ups, and a one-node engine
//! whose node is ready.

use redlock_core::{Config, Engine, Event, NodeConfig, NodeId, Options};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Wake;
use std::time::Instant;

/// Counts its wake-ups.
#[derive(Default)]
pub(crate) struct Counting(AtomicUsize);

impl Counting {
    /// How many times it was woken.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An engine of one node at 127.0.0.1:6379, connected and ready. Scripts and plain `SET NX`
/// only, no `INFO server`, so a test can write its replies byte for byte.
pub(crate) fn ready_engine(now: Instant) -> Engine {
    let mut options = Options::default();
    options.native_commands = false;
    let config = Config::new(vec![NodeConfig::new("127.0.0.1", 6379)], options);
    let mut engine = Engine::new(config, now, 42).unwrap();
    engine.handle_connected(now, NodeId::new(0));
    assert_eq!(
        engine.poll_event(),
        Some(Event::Ready {
            link: NodeId::new(0).into()
        })
    );
    engine
}
