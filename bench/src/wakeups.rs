//! How often the servers woke for a client: Redis counts each read from a client socket
//! (`INFO stats`, `total_reads_processed`), and each read is one wake-up of its event loop.
//! A contended hand-over needs at least one per node (the next holder cannot ask before the
//! last one released), so this count says how far a client is from that floor, whatever one
//! wake-up costs on the machine at the time.

use redlock_harness::{Conn, Reply};
use std::net::SocketAddr;
use std::time::Duration;

/// The reads the servers at `addrs` have processed so far, summed; `None` when one cannot be
/// asked. Asking costs each server one read of its own.
pub fn reads(addrs: &[SocketAddr]) -> Option<u64> {
    addrs.iter().map(|addr| node_reads(*addr)).sum()
}

fn node_reads(addr: SocketAddr) -> Option<u64> {
    let mut conn = Conn::open_addr(addr, Duration::from_secs(2)).ok()?;
    match conn.call(&["INFO", "stats"]).ok()? {
        Reply::Bulk(text) => total_reads(&String::from_utf8_lossy(&text)),
        _ => None,
    }
}

/// `total_reads_processed` from an `INFO stats` reply.
fn total_reads(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("total_reads_processed:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Per operation and per node: the reads counted over a case ÷ its operations ÷ the nodes,
/// less the reads the two counts themselves cost (one per node each).
pub fn per_op(before: u64, after: u64, ops: u64, nodes: usize) -> Option<f64> {
    if ops == 0 || nodes == 0 {
        return None;
    }
    let reads = after.checked_sub(before)?.saturating_sub(nodes as u64);
    Some(reads as f64 / ops as f64 / nodes as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counter_from_info_stats() {
        let info = "# Stats\r\ntotal_connections_received:3\r\ntotal_reads_processed:10272\r\n\
                    total_writes_processed:10269\r\n";
        assert_eq!(total_reads(info), Some(10272));
        assert_eq!(
            total_reads("# Stats\r\ntotal_commands_processed:5\r\n"),
            None
        );
        assert_eq!(total_reads("total_reads_processed:many\r\n"), None);
    }

    #[test]
    fn per_operation_and_node_without_the_counting_reads() {
        // 5 nodes, 1,000 operations, one read each per node, and the 5 reads of the first count.
        assert_eq!(per_op(100, 5_105, 1_000, 5), Some(1.0));
        assert_eq!(per_op(100, 50, 1_000, 5), None, "a restarted server");
        assert_eq!(per_op(0, 10, 0, 5), None);
    }
}
