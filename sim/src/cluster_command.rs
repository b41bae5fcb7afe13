//! The `CLUSTER` command of a cluster member: `SLOTS` and `SHARDS` (this node's view, in Redis
//! 7's shapes), `KEYSLOT`, `GETKEYSINSLOT`, `COUNTKEYSINSLOT`, `MYID` and `INFO`.

use crate::cluster::{node_id, split_endpoint, ClusterView, SLOTS};
use crate::commands::Server;
use crate::request::int_arg;
use crate::value::Value;
use bytes::Bytes;
use redlock_core::key_slot;
use std::time::Instant;

/// The error a standalone node gives cluster-only commands (Redis's exact text).
pub(crate) const NOT_CLUSTER: &str = "ERR This instance has cluster support disabled";

impl Server {
    /// `CLUSTER <subcommand> …` on database `db` at `now`.
    pub(crate) fn cluster(&self, now: Instant, db: u32, argv: &[Bytes]) -> Value {
        let Some(view) = &self.cluster else {
            return Value::error(NOT_CLUSTER);
        };
        let slot_arg = |b: &Bytes| {
            int_arg(b)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|s| *s < SLOTS)
                .ok_or_else(|| Value::error("ERR Invalid or out of range slot"))
        };
        match (argv[0].to_ascii_uppercase().as_slice(), &argv[1..]) {
            (b"SLOTS", []) => cluster_slots(view),
            (b"SHARDS", []) => cluster_shards(view),
            (b"KEYSLOT", [key]) => Value::Int(i64::from(key_slot(key))),
            (b"MYID", []) => Value::bulk(node_id(view.myself())),
            (b"COUNTKEYSINSLOT", [slot]) => match slot_arg(slot) {
                Ok(slot) => Value::Int(self.keys.keys_in_slot(now, db, slot).len() as i64),
                Err(e) => e,
            },
            (b"GETKEYSINSLOT", [slot, count]) => {
                let slot = match slot_arg(slot) {
                    Ok(slot) => slot,
                    Err(e) => return e,
                };
                let Some(count) = int_arg(count).and_then(|n| usize::try_from(n).ok()) else {
                    return Value::error("ERR Invalid number of keys");
                };
                let mut keys = self.keys.keys_in_slot(now, db, slot);
                keys.truncate(count);
                Value::Array(keys.into_iter().map(Value::Bulk).collect())
            }
            (b"INFO", []) => {
                let ranges = view.ranges();
                let assigned: u32 = ranges.iter().map(|(s, e, _)| u32::from(*e - *s) + 1).sum();
                let mut owners: Vec<&str> = ranges.iter().map(|r| r.2).collect();
                owners.sort_unstable();
                owners.dedup();
                let state = if assigned == u32::from(SLOTS) {
                    "ok"
                } else {
                    "fail"
                };
                Value::Verbatim(Bytes::from(format!(
                    "cluster_enabled:1\r\ncluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\n",
                    view.endpoints().count(),
                    owners.len()
                )))
            }
            (sub, _) => Value::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
                String::from_utf8_lossy(sub)
            )),
        }
    }
}

/// `CLUSTER SLOTS` as Redis 7 answers it: per contiguous range, `[start, end, [host, port, id,
/// {}]]` (the empty map is the metadata, an empty array in RESP2; the model has no replicas).
fn cluster_slots(view: &ClusterView) -> Value {
    Value::Array(
        view.ranges()
            .into_iter()
            .map(|(start, end, owner)| {
                let (host, port) = split_endpoint(owner);
                Value::Array(vec![
                    Value::Int(i64::from(start)),
                    Value::Int(i64::from(end)),
                    Value::Array(vec![
                        Value::bulk(host),
                        Value::Int(i64::from(port)),
                        Value::bulk(node_id(owner)),
                        Value::Map(Vec::new()),
                    ]),
                ])
            })
            .collect(),
    )
}

/// `CLUSTER SHARDS` as Redis 7 answers it: one map per primary this view names, `slots` (a
/// flat list of start, end pairs) and `nodes` (the primary alone: the model has no replicas).
fn cluster_shards(view: &ClusterView) -> Value {
    let ranges = view.ranges();
    Value::Array(
        view.endpoints()
            .map(|endpoint| {
                let slots = ranges
                    .iter()
                    .filter(|r| r.2 == endpoint)
                    .flat_map(|(s, e, _)| [Value::Int(i64::from(*s)), Value::Int(i64::from(*e))])
                    .collect();
                let (host, port) = split_endpoint(endpoint);
                let node = Value::Map(vec![
                    (Value::bulk("id"), Value::bulk(node_id(endpoint))),
                    (Value::bulk("port"), Value::Int(i64::from(port))),
                    (Value::bulk("ip"), Value::bulk(host)),
                    (Value::bulk("endpoint"), Value::bulk(host)),
                    (Value::bulk("role"), Value::bulk("master")),
                    (Value::bulk("replication-offset"), Value::Int(0)),
                    (Value::bulk("health"), Value::bulk("online")),
                ]);
                Value::Map(vec![
                    (Value::bulk("slots"), Value::Array(slots)),
                    (Value::bulk("nodes"), Value::Array(vec![node])),
                ])
            })
            .collect(),
    )
}
