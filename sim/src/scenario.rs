//! Scenarios: everything one run depends on, and the profiles that derive one from a seed
//! (what faults they include, and which assumptions of the algorithm they keep).

use crate::clock::{ms, nanos};
use crate::fault::Fault;
use crate::identity::Identity;
use crate::rng::Rng;
use crate::script::ScriptKind;
use redlock_core::{Options, Protocol};
use std::time::Duration;

/// Seeds the choice of the fencing profile's half with empty restarts.
const EMPTY_RESTARTS: u64 = 0xE3E7_1055_E3E7_1055;

/// Seeds the choice of which server each node claims to be.
const SERVERS: u64 = 0x5E4F_E45E_5E4F_E45E;

/// Everything one run depends on. The profile constructors ([`Scenario::safety`],
/// [`Scenario::fencing`], [`Scenario::liveness`]) derive one from a seed; fields are public so
/// tests can break things on purpose.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Seeds the run (network, faults, client choices, lock tokens, engine jitter).
    pub seed: u64,
    /// Number of model nodes.
    pub nodes: usize,
    /// The server each node claims to be, by node index ([`Identity`]: Redis or Valkey, which
    /// version, so which native commands the engines use on it); nodes past its end are
    /// [`Identity::REDIS_7_2`], with no native commands.
    pub servers: Vec<Identity>,
    /// Number of clients.
    pub clients: usize,
    /// For each client, the Redlock nodes (indices: model nodes, or with
    /// [`Scenario::clusters`] clusters) its engine is configured with, in order; `None`: every
    /// client is configured with every Redlock node.
    pub views: Option<Vec<Vec<usize>>>,
    /// The model nodes grouped into Redis Clusters, each group one Redlock node: its members
    /// are the shards (each primary of a share of the slots, split as `redis-cli --cluster
    /// create` splits them), and every client configures it with
    /// [`NodeConfig::as_cluster`](redlock_core::NodeConfig::as_cluster) seeded at one member
    /// (drawn per client). Empty: every model node is a standalone Redlock node. Every model
    /// node belongs to one group when not empty.
    pub clusters: Vec<Vec<usize>>,
    /// Mean time between slot migrations in each cluster of two or more members; `None`: none.
    /// A migration takes the slot of a resource's key from its owner to another member:
    /// `MIGRATING` / `IMPORTING`, then one key moved per step (the source answers `ASK` for a
    /// key gone, `TRYAGAIN` for a script whose keys are split), then both take the new owner
    /// while the other members learn it later (answering `MOVED` to the old owner until then).
    pub migrate_every: Option<Duration>,
    /// Time between a migration's steps, and how late the other members learn its end.
    pub migrate_step: (Duration, Duration),
    /// Let a slot migrate off a primary that restarted empty less than twice `restart_grace`
    /// ago (off in every profile). Restart-aware voting makes clients wait out the server that
    /// restarted, but not the server its slots moved to, which grants at once the locks the
    /// restart lost: the delayed-restart assumption, in a cluster, covers resharding too.
    pub reshard_emptied: bool,
    /// Fault rules injected into model nodes before the run: `(node, rule)`.
    pub faults: Vec<(usize, Fault)>,
    /// Number of resources (`r0`, `r1`, …) the clients contend for.
    pub resources: usize,
    /// Probability that an acquire asks for two resources at once.
    pub multi: f64,
    /// The engines' options (every client the same).
    pub options: Options,
    /// Scripts the nodes learn before the run (for custom [`Options::scripts`]).
    pub learn: Vec<(String, ScriptKind)>,
    /// Lock ttls are drawn from this range (whole milliseconds).
    pub ttl: (Duration, Duration),
    /// How long clients start new operations; the run then drains.
    pub duration: Duration,
    /// One-way latency of a chunk, drawn from this range.
    pub latency: (Duration, Duration),
    /// Probability that a chunk is delayed by up to [`Scenario::spike_max`] more.
    pub spike: f64,
    /// The largest latency spike.
    pub spike_max: Duration,
    /// Probability that a chunk is lost (black-holing that direction of its connection).
    pub loss: f64,
    /// Probability that a chunk is split into pieces.
    pub split: f64,
    /// Probability that request bytes in flight on a connection the client gave up on still
    /// reach the node.
    pub flush_on_close: f64,
    /// Client clocks' rate error is drawn from this range (ppm).
    pub client_ppm: (i64, i64),
    /// Node clocks' rate error is drawn from this range (ppm).
    pub node_ppm: (i64, i64),
    /// The largest difference between two clients' wall clocks: each runs ahead of real time by
    /// an offset drawn from `0..=wall_offset`, at real time's rate (NTP keeps wall clocks in
    /// step, apart from the rate drift of the clocks the engines run on). Fencing tokens keep
    /// increasing across empty restarts while this stays below `restart_grace`.
    pub wall_offset: Duration,
    /// Clients pass their wall clock to `Engine::acquire` (the floor of fencing tokens); `false`
    /// passes the Unix epoch instead, i.e. no floor.
    pub floor: bool,
    /// Mean time between crashes of each node; `None`: no crashes.
    pub crash_every: Option<Duration>,
    /// How long a crashed node stays down.
    pub down: (Duration, Duration),
    /// Probability that a restart keeps the node's keys (persistence).
    pub keep_data: f64,
    /// At most this many nodes unavailable at once (down, stalled, or restarted less than
    /// [`Scenario::rejoin`] ago); crashes and stalls that would exceed it are skipped.
    pub max_down: usize,
    /// How long after a restart a node still counts as unavailable for [`Scenario::max_down`].
    pub rejoin: Duration,
    /// Mean time between stalls of each node; `None`: no stalls.
    pub stall_every: Option<Duration>,
    /// How long a stall lasts.
    pub stall: (Duration, Duration),
    /// Mean time between pauses of each client; `None`: no random pauses.
    pub pause_every: Option<Duration>,
    /// How long a pause lasts (random pauses and pauses after a validity check alike).
    pub pause: (Duration, Duration),
    /// Probability that a client pauses between checking its lock is valid and writing to the
    /// fenced store.
    pub pause_after_check: f64,
    /// Idle time between a client's locks.
    pub think: (Duration, Duration),
    /// Reconnect backoff: first delay and cap.
    pub reconnect: (Duration, Duration),
    /// Probability that an acquire gets cancelled while in flight.
    pub cancel: f64,
    /// Extend with a freshly drawn ttl (possibly shorter than the validity left) instead of the
    /// lock's own ttl. While such an extend is in flight, or after it failed, the client still
    /// goes by the old lock.
    pub extend_any_ttl: bool,
    /// With `Some(bound)`, check liveness: no acquire fails, none takes longer than `bound`.
    pub liveness: Option<Duration>,
    /// Keep a human-readable log of the run in [`Report::log`](crate::Report::log).
    pub log: bool,
}

impl Scenario {
    /// A calm scenario: `nodes` nodes, `clients` clients, default options, small latencies and
    /// no faults. The base the profiles start from.
    pub fn calm(seed: u64, nodes: usize, clients: usize) -> Scenario {
        let mut options = Options::default();
        options.retry_delay = ms(10);
        options.retry_jitter = ms(5);
        options.node_timeout = ms(50);
        options.retry_count = Some(3);
        Scenario {
            seed,
            nodes,
            servers: Vec::new(),
            clients,
            views: None,
            clusters: Vec::new(),
            migrate_every: None,
            migrate_step: (ms(1), ms(50)),
            reshard_emptied: false,
            faults: Vec::new(),
            resources: 1,
            multi: 0.0,
            options,
            learn: Vec::new(),
            ttl: (ms(100), ms(200)),
            duration: Duration::from_secs(3),
            latency: (Duration::from_micros(100), ms(3)),
            spike: 0.0,
            spike_max: Duration::ZERO,
            loss: 0.0,
            split: 0.2,
            flush_on_close: 0.5,
            client_ppm: (0, 0),
            node_ppm: (0, 0),
            wall_offset: Duration::ZERO,
            floor: true,
            crash_every: None,
            down: (ms(10), ms(200)),
            keep_data: 1.0,
            max_down: nodes,
            rejoin: Duration::ZERO,
            stall_every: None,
            stall: (ms(1), ms(100)),
            pause_every: None,
            pause: (ms(1), ms(100)),
            pause_after_check: 0.0,
            think: (ms(1), ms(20)),
            reconnect: (ms(2), ms(200)),
            cancel: 0.0,
            extend_any_ttl: false,
            liveness: None,
            log: false,
        }
    }

    /// The algorithm's assumptions hold: every clock within the drift `drift_factor` accounts
    /// for (client against node), and a node that restarts empty only does so with
    /// `restart_grace` set above the longest ttl (otherwise restarts keep their keys). Anything
    /// else goes: latency, jitter and spikes, loss, reordering across connections, crashes,
    /// stalls, pauses of any length (a paused client is a holder until `valid_until`, not
    /// after), cancels, fencing on or off, RESP2 or RESP3.
    pub fn safety(seed: u64) -> Scenario {
        let mut r = Rng::new(seed ^ 0x5AFE_5AFE_5AFE_5AFE);
        let nodes = r.pick(&[1, 2, 3, 3, 3, 4, 5, 5]);
        let mut s = Scenario::calm(seed, nodes, r.range(2, 4) as usize);
        s.servers = server_mix(seed, nodes);
        s.resources = r.range(1, 3) as usize;
        s.multi = 0.25;
        let lo = r.range(30, 200);
        s.ttl = (ms(lo), ms(lo + r.range(0, 300)));
        let o = &mut s.options;
        o.drift_factor = r.pick(&[0.01, 0.02, 0.05, 0.1]);
        o.node_timeout = ms(r.range(5, 100));
        o.retry_delay = ms(r.range(1, 30));
        o.retry_jitter = Duration::from_nanos(r.range(0, nanos(o.retry_delay)));
        o.retry_count = r.pick(&[Some(0), Some(1), Some(3), Some(10), None]);
        o.fencing = r.chance(0.5);
        o.protocol = if r.chance(0.3) {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        if r.chance(0.3) {
            o.key_prefix = "lk:".into();
        }
        let grace = r.chance(0.5).then(|| s.ttl.1.mul_f64(1.5) + ms(10));
        s.options.restart_grace = grace;
        // Relative rate of any node against any client within 1 / (1 - drift_factor).
        let bound = drift_bound_ppm(s.options.drift_factor);
        s.client_ppm = (-bound, bound);
        s.node_ppm = (-bound, bound);
        let hi = r.range(0, nanos(s.options.node_timeout) / 2 / 1000) * 1000;
        s.latency = (
            Duration::from_micros(r.range(20, 500)),
            Duration::from_nanos(hi),
        );
        s.latency.1 = s.latency.1.max(s.latency.0);
        s.spike = r.pick(&[0.0, 0.002, 0.01]);
        s.spike_max = s.ttl.1.max(s.options.node_timeout * 3);
        s.loss = r.pick(&[0.0, 0.0, 0.001, 0.005]);
        s.split = 0.3;
        // Request bytes already sent on a connection the engine gave up on may still arrive
        // (FIN after data) and run after newer requests on a new connection. (Before the core
        // gave each attempt its own token, a failed attempt's delayed cleanup release deleted
        // the retry's key this way: `sim_findings`, bug 1.)
        s.flush_on_close = 0.5;
        if r.chance(0.6) {
            s.crash_every = Some(ms(r.range(500, 4000)));
            s.down = (ms(5), ms(r.range(10, 600)));
            // Fence counters are keys too: an empty restart loses them, and only the clock
            // floor keeps tokens increasing, under assumptions of its own (wall clocks in step,
            // rates far tighter than these): `Scenario::fencing_empty_restarts` covers that.
            // Empty restarts here only without fencing.
            s.keep_data = if grace.is_some() && !s.options.fencing {
                0.3
            } else {
                1.0
            };
        }
        if r.chance(0.3) {
            s.stall_every = Some(ms(r.range(500, 3000)));
            s.stall = (ms(1), ms(r.range(5, 300)));
        }
        if r.chance(0.6) {
            s.pause_every = Some(ms(r.range(200, 2000)));
        }
        s.pause = (ms(1), s.ttl.1 * 2);
        s.pause_after_check = if s.options.fencing { 0.1 } else { 0.0 };
        s.think = (ms(1), ms(r.range(1, 40)));
        s.cancel = 0.05;
        s.duration = ms(r.range(1500, 4000));
        s
    }

    /// Fencing under every fault: like [`Scenario::safety`] with fencing always on, many pauses
    /// between a validity check and the write, and request bytes of abandoned connections still
    /// arriving late. Half the seeds keep their fence counters through restarts (persistence)
    /// and drop the clock assumptions: rates drifting up to ±20% whatever `drift_factor` says,
    /// any `restart_grace` (or none). The other half are [`Scenario::fencing_empty_restarts`].
    pub fn fencing(seed: u64) -> Scenario {
        let mut s = Scenario::fencing_durable(seed);
        if Rng::new(seed ^ EMPTY_RESTARTS).chance(0.5) {
            s.lose_data(seed);
        }
        s
    }

    /// The fencing profile with restarts that lose data (a node comes back empty, with a new
    /// `run_id`), so fence counters are lost and only the clock floor keeps tokens increasing.
    /// The floor's two clock assumptions hold: `restart_grace` is set, the clients' wall clocks
    /// differ by less than half of it ([`Scenario::wall_offset`]), and clock rates are within
    /// ±1000 ppm (the floor is the acquire's wall-clock reading advanced on the engine's clock:
    /// over an acquire of up to 14 s that is off by at most 14 ms, which the other half of the
    /// grace covers). Nodes crash every few hundred milliseconds to seconds; most restarts are
    /// empty.
    pub fn fencing_empty_restarts(seed: u64) -> Scenario {
        let mut s = Scenario::fencing_durable(seed);
        s.lose_data(seed);
        s
    }

    fn fencing_durable(seed: u64) -> Scenario {
        let mut s = Scenario::safety(seed);
        let mut r = Rng::new(seed ^ 0xFE4C_E000_FE4C_E000);
        s.options.fencing = true;
        if r.chance(0.5) {
            let wild = r.pick(&[20_000, 50_000, 200_000]);
            s.client_ppm = (-wild, wild);
            s.node_ppm = (-wild, wild);
        }
        s.options.restart_grace = r.pick(&[None, Some(ms(50)), s.options.restart_grace]);
        s.keep_data = 1.0;
        if s.crash_every.is_none() && r.chance(0.5) {
            s.crash_every = Some(ms(r.range(500, 4000)));
            s.down = (ms(5), ms(r.range(10, 600)));
        }
        s.flush_on_close = 0.5;
        s.extend_any_ttl = r.chance(0.5);
        s.pause = (ms(1), s.ttl.1 * 3);
        s.pause_after_check = 0.3;
        s
    }

    /// Turns a fencing scenario into one whose restarts lose data, within the floor's clock
    /// assumptions (see [`Scenario::fencing_empty_restarts`]).
    fn lose_data(&mut self, seed: u64) {
        let mut r = Rng::new(seed ^ EMPTY_RESTARTS ^ 0x0FF5_E700_0FF5_E700);
        let grace = r.pick(&[ms(100), ms(250), self.ttl.1 * 2 + ms(50)]);
        self.options.restart_grace = Some(grace);
        self.keep_data = r.pick(&[0.0, 0.0, 0.3, 0.7]);
        self.client_ppm = (-1000, 1000);
        self.node_ppm = (-1000, 1000);
        self.wall_offset = Duration::from_nanos(r.range(0, nanos(grace) / 2));
        self.crash_every = Some(ms(r.range(300, 2000)));
        self.down = (ms(5), ms(r.range(10, 400)));
    }

    /// One client (no contention), a quorum of nodes always up: nodes crash (and stall) only
    /// while fewer than a minority are unavailable, counting a restarted node as unavailable
    /// until it may vote again; no loss, latency well under the request timeout, unlimited
    /// retries. Every acquire must succeed, within the bound set in [`Scenario::liveness`].
    pub fn liveness(seed: u64) -> Scenario {
        let mut r = Rng::new(seed ^ 0x11FE_11FE_11FE_11FE);
        let nodes = r.pick(&[1, 2, 3, 3, 4, 5, 5]);
        let mut s = Scenario::calm(seed, nodes, 1);
        s.servers = server_mix(seed, nodes);
        s.resources = r.range(1, 3) as usize;
        s.multi = 0.3;
        let lo = r.range(30, 200);
        s.ttl = (ms(lo), ms(lo + r.range(0, 300)));
        let o = &mut s.options;
        o.drift_factor = r.pick(&[0.01, 0.05]);
        o.node_timeout = ms(r.range(20, 100));
        o.retry_delay = ms(r.range(1, 30));
        o.retry_jitter = Duration::from_nanos(r.range(0, nanos(o.retry_delay)));
        o.retry_count = None;
        o.fencing = r.chance(0.5);
        let grace = r.chance(0.5).then(|| s.ttl.1.mul_f64(1.5) + ms(10));
        s.options.restart_grace = grace;
        let bound = drift_bound_ppm(s.options.drift_factor);
        s.client_ppm = (-bound, bound);
        s.node_ppm = (-bound, bound);
        // Fast enough that two round trips (a fenced acquire) fit well inside the validity.
        s.latency = (
            Duration::from_micros(r.range(20, 500)),
            (s.options.node_timeout / 5).min(s.ttl.0 / 10),
        );
        s.max_down = nodes - (nodes / 2 + 1);
        // A restarted node votes again once its grace has passed on the client's clock, and the
        // client has reconnected (backoff capped at `reconnect.1`).
        s.rejoin = grace.map_or(Duration::ZERO, |g| g.mul_f64(1.1) + Duration::from_secs(1))
            + s.reconnect.1 * 2;
        if r.chance(0.8) {
            s.crash_every = Some(ms(r.range(300, 2000)));
            s.down = (ms(5), ms(r.range(10, 600)));
            s.keep_data = 0.5;
        }
        if r.chance(0.3) {
            s.stall_every = Some(ms(r.range(300, 2000)));
            s.stall = (ms(1), ms(r.range(5, 300)));
        }
        if r.chance(0.5) {
            s.pause_every = Some(ms(r.range(200, 2000)));
        }
        s.pause = (ms(1), s.ttl.1);
        s.think = (ms(1), ms(r.range(1, 40)));
        s.duration = ms(r.range(1500, 4000));
        // Worst case: our own key left on a node whose release was lost (one ttl), a node
        // rejoining, a pause, a stall, and reconnect backoff.
        s.liveness = Some(
            s.ttl.1 * 2 + s.rejoin + s.down.1 + s.pause.1 + s.stall.1 + Duration::from_secs(1),
        );
        s
    }
}

impl Scenario {
    /// The safety profile (assumptions kept, every fault) with the Redlock nodes made of Redis
    /// Clusters: half the seeds one cluster of 2 to 5 shards as the only Redlock node, the
    /// others three clusters of 1 to 3 shards; slots of the resources' keys migrating every few
    /// hundred milliseconds, 2 to 6 resources and most acquires on two of them (keys in
    /// different slots, often on different shards), shards crashing, stalling and restarting
    /// as in [`Scenario::safety`]. The assumption kept for empty restarts extends to slots: none
    /// leaves a primary that restarted empty within twice `restart_grace`
    /// ([`Scenario::reshard_emptied`] off).
    pub fn cluster(seed: u64) -> Scenario {
        let mut r = Rng::new(seed ^ 0xC105_7E25_C105_7E25);
        let shards: Vec<usize> = if r.chance(0.5) {
            vec![r.range(2, 5) as usize]
        } else {
            (0..3).map(|_| r.range(1, 3) as usize).collect()
        };
        let mut s = Scenario::safety(seed);
        let nodes: usize = shards.iter().sum();
        let mut next = 0;
        s.clusters = shards
            .iter()
            .map(|n| {
                next += n;
                (next - n..next).collect()
            })
            .collect();
        s.nodes = nodes;
        s.max_down = nodes;
        s.servers = server_mix(seed, nodes);
        s.resources = r.range(2, 6) as usize;
        s.multi = 0.6;
        s.migrate_every = Some(ms(r.range(50, 600)));
        s.migrate_step = (ms(1), ms(r.range(2, 60)));
        s
    }
}

/// Which server each of `nodes` nodes claims to be, drawn from [`Identity::MIX`] (old Redis,
/// Redis 8.4, Valkey 8.1, 9.0, 9.2), one in ten with `DELEX`/`DELIFEQ` renamed away (so the
/// engine's native release is refused as unknown and falls back to the script). From a stream
/// of its own, so the rest of a seed's draws stay as they were.
pub(crate) fn server_mix(seed: u64, nodes: usize) -> Vec<Identity> {
    let mut r = Rng::new(seed ^ SERVERS);
    (0..nodes)
        .map(|_| {
            let server = r.pick(&Identity::MIX);
            if r.chance(0.1) {
                server.renamed()
            } else {
                server
            }
        })
        .collect()
}

/// The largest clock rate error (ppm) such that any two clocks within it differ in rate by at
/// most `1 / (1 - drift_factor)`, with a 5% margin.
pub(crate) fn drift_bound_ppm(drift_factor: f64) -> i64 {
    (drift_factor / (2.0 - drift_factor) * 0.95 * 1e6) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_bound_keeps_relative_rate_within_drift_factor() {
        for df in [0.01, 0.05, 0.1, 0.3] {
            let b = drift_bound_ppm(df) as f64 / 1e6;
            assert!((1.0 + b) / (1.0 - b) <= 1.0 / (1.0 - df));
        }
    }
}
