//! # redlock-harness
//!
//! What `redlock demo`, the benchmark and the live test suites share:
//!
//! - [`Cluster`]: independent `redis-server` processes on free loopback ports, each in its own
//!   temporary directory, paused, resumed, killed and restarted by process id (never by name),
//!   and killed when dropped.
//! - [`RedisCluster`]: a real Redis Cluster (primaries and replicas, `--cluster-enabled yes`)
//!   formed over the RESP client, with slot routing, live slot migration and failover helpers.
//! - [`Conn`] and [`request`]: a small blocking RESP2 client for inspection and readiness
//!   checks (the lock itself always goes through `redlock-core`).
//! - [`signal`]: `kill(2)` by pid, the one way processes are signalled here.

mod cluster;
mod redis_cluster;
mod resp;
mod signal;

pub use cluster::server_bin;
pub use cluster::{
    Cluster, Serve, ServerTls, StartError, CMD_TIMEOUT, INSTALL_HINT, READY_TIMEOUT, REDIS_SERVER,
    SERVER_BIN_ENV,
};
pub use redis_cluster::{RedisCluster, FORM_TIMEOUT, NODE_TIMEOUT, SLOTS};
pub use resp::{describe, is_timeout, request, Conn, Reply};
pub use signal::{pid_exists, signal, signal_named};
