//! `redlock status`: for each resource, what every node holds, and whether they agree.

use crate::NodeArgs;
use clap::Args;
use redlock_cli::duration::{parse as parse_duration, show};
use redlock_cli::exit;
use redlock_core::{fence_key, NodeConfig};
use redlock_harness::{describe, Conn, Reply};
use std::time::Duration;

/// Arguments of `redlock status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    nodes: NodeArgs,
    /// How long to wait for each node.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "D")]
    timeout: Duration,
    /// The resources to inspect.
    #[arg(value_name = "RESOURCE", required = true)]
    resources: Vec<String>,
}

/// One node's answer: per key, what it holds and its fence counter; or why it could not be asked.
type Answer = Result<Vec<(Held, Option<u64>)>, String>;

/// What one node holds for one resource.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    Free,
    /// The key exists: its value (the holder's token) and remaining ttl (`None`: no expiry).
    Held {
        token: String,
        ttl: Option<Duration>,
    },
}

/// Runs `redlock status`; returns the exit status (0, or [`exit::UNREACHABLE`] when a node could
/// not be asked, or [`exit::FAILURE`] for a bad URL).
pub fn main(args: StatusArgs, verbose: u8) -> u8 {
    let urls = args.nodes.urls();
    let mut nodes = Vec::new();
    for url in &urls {
        match redlock_tokio::parse_node_url(url) {
            Ok(n) => nodes.push(n),
            Err(e) => {
                eprintln!("redlock: bad configuration: {e}");
                return exit::FAILURE;
            }
        }
    }
    if nodes.is_empty() {
        eprintln!("redlock: bad configuration: no Redis nodes configured");
        return exit::FAILURE;
    }
    let keys: Vec<String> = args
        .resources
        .iter()
        .map(|r| format!("{}{r}", args.nodes.key_prefix))
        .collect();
    // Every node in parallel, so one stopped node costs one timeout, not one per node.
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| s.spawn(|| query(node, &keys, args.timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("query panicked".into())))
            .collect()
    });
    let quorum = nodes.len() / 2 + 1;
    let width = nodes.iter().map(|n| n.to_string().len()).max().unwrap_or(0);
    let mut any_unreachable = false;
    for (k, resource) in args.resources.iter().enumerate() {
        let per_node: Vec<Result<&(Held, Option<u64>), &String>> =
            answers.iter().map(|a| a.as_ref().map(|v| &v[k])).collect();
        println!("{resource}: {}", verdict(&per_node, quorum));
        for (node, answer) in nodes.iter().zip(&per_node) {
            let line = match answer {
                Err(e) => {
                    any_unreachable = true;
                    format!("unreachable: {e}")
                }
                Ok((Held::Free, fence)) => format!("free{}", show_fence(*fence)),
                Ok((Held::Held { token, ttl }, fence)) => {
                    let ttl = ttl.map_or("no expiry".to_string(), |t| format!("ttl {}", show(t)));
                    let token = if verbose > 0 {
                        token.clone()
                    } else {
                        short(token)
                    };
                    format!("held  {ttl:<12} holder {token}{}", show_fence(*fence))
                }
            };
            println!("  {:<width$}  {line}", node.to_string());
        }
    }
    if any_unreachable {
        exit::UNREACHABLE
    } else {
        0
    }
}

fn show_fence(fence: Option<u64>) -> String {
    fence.map(|f| format!("  fence {f}")).unwrap_or_default()
}

fn short(token: &str) -> String {
    if token.chars().count() > 12 {
        format!("{}…", token.chars().take(12).collect::<String>())
    } else {
        token.to_string()
    }
}

/// One line: held by whom on how many nodes, and whether the nodes agree.
fn verdict(per_node: &[Result<&(Held, Option<u64>), &String>], quorum: usize) -> String {
    let n = per_node.len();
    let answered: Vec<&Held> = per_node
        .iter()
        .filter_map(|a| a.as_ref().ok().map(|(h, _)| h))
        .collect();
    let unreachable = n - answered.len();
    let free = answered.iter().filter(|h| ***h == Held::Free).count();
    // The most common holder.
    let mut holders: Vec<(&str, usize)> = Vec::new();
    for h in &answered {
        if let Held::Held { token, .. } = h {
            match holders.iter_mut().find(|(t, _)| *t == token.as_str()) {
                Some((_, c)) => *c += 1,
                None => holders.push((token.as_str(), 1)),
            }
        }
    }
    holders.sort_by_key(|h| std::cmp::Reverse(h.1));
    let agree = unreachable == 0 && (free == n || holders.first().is_some_and(|(_, c)| *c == n));
    let state = match holders.first() {
        Some((token, c)) if *c >= quorum => {
            format!("held by {} on {c} of {n} nodes (a quorum)", short(token))
        }
        Some((token, c)) => format!(
            "not held: {} has only {c} of {n} nodes (quorum is {quorum})",
            short(token)
        ),
        None if free == n => format!("free on all {n} nodes"),
        None => format!("free on {free} of {n} nodes"),
    };
    let agreement = if agree {
        "nodes agree".to_string()
    } else if unreachable > 0 {
        format!("{unreachable} node(s) unreachable")
    } else {
        "nodes disagree".to_string()
    };
    format!("{state}; {agreement}")
}

/// Asks one node about every key: `GET`, `PTTL` and the fence counter.
fn query(node: &NodeConfig, keys: &[String], timeout: Duration) -> Answer {
    let mut conn = Conn::open(node, timeout).map_err(|e| describe(&e))?;
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for key in keys {
        cmds.push(vec![b"GET".to_vec(), key.as_bytes().to_vec()]);
        cmds.push(vec![b"PTTL".to_vec(), key.as_bytes().to_vec()]);
        cmds.push(vec![b"GET".to_vec(), fence_key(key.as_bytes()).to_vec()]);
    }
    let replies = conn.pipeline(&cmds).map_err(|e| describe(&e))?;
    let mut out = Vec::new();
    for chunk in replies.chunks(3) {
        let [value, pttl, fence] = chunk else {
            return Err("short reply".into());
        };
        let held = match (value, pttl) {
            (Reply::Nil, _) => Held::Free,
            (Reply::Bulk(v), Reply::Int(ms)) => Held::Held {
                token: String::from_utf8_lossy(v).into_owned(),
                ttl: u64::try_from(*ms).ok().map(Duration::from_millis),
            },
            (Reply::Error(e), _) | (_, Reply::Error(e)) => return Err(e.clone()),
            (other, _) => return Err(format!("unexpected reply {other:?}")),
        };
        let fence = match fence {
            Reply::Bulk(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
            _ => None,
        };
        out.push((held, fence));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_keys() {
        // status reads the counters the engine writes: one derivation, redlock_core's.
        assert_eq!(&fence_key(b"orders:42")[..], b"{orders:42}:fence");
        assert_eq!(&fence_key(b"{user1}:x")[..], b"{user1}:x:fence");
        assert_eq!(&fence_key(b"a{}b")[..], b"{a{}b}:fence");
    }

    #[test]
    fn verdicts() {
        let held = |t: &str| {
            (
                Held::Held {
                    token: t.into(),
                    ttl: Some(Duration::from_secs(5)),
                },
                None,
            )
        };
        let free = (Held::Free, None);
        let err = "timed out".to_string();
        let (a, b) = (held("aaaa"), held("bbbb"));
        let v = verdict(&[Ok(&a), Ok(&a), Ok(&a)], 2);
        assert!(
            v.contains("held by aaaa on 3 of 3") && v.ends_with("nodes agree"),
            "{v}"
        );
        let v = verdict(&[Ok(&a), Ok(&a), Ok(&free)], 2);
        assert!(
            v.contains("(a quorum)") && v.ends_with("nodes disagree"),
            "{v}"
        );
        let v = verdict(&[Ok(&a), Ok(&b), Ok(&free)], 2);
        assert!(v.starts_with("not held") && v.ends_with("disagree"), "{v}");
        let v = verdict(&[Ok(&free), Ok(&free), Ok(&free)], 2);
        assert_eq!(v, "free on all 3 nodes; nodes agree");
        let v = verdict(&[Ok(&free), Ok(&free), Err(&err)], 2);
        assert_eq!(v, "free on 2 of 3 nodes; 1 node(s) unreachable");
    }
}
