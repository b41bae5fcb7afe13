//! `redlock status`: for each resource, what every node holds, and whether they agree.

use crate::inspect;
use crate::nodes::NodeArgs;
use clap::Args;
use redlock_cli::duration::{parse as parse_duration, show};
use redlock_cli::exit;
use redlock_core::{fence_key, Redirect, RedirectKind};
use redlock_harness::Reply;
use redlock_tokio::{Address, Node};
use serde_json::{json, Value};
use std::time::Duration;

/// Arguments of `redlock status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    nodes: NodeArgs,
    /// How long to wait for each node. A bare number is seconds.
    #[arg(long, env = "REDLOCK_TIMEOUT", value_parser = parse_duration, default_value = "1s", value_name = "D")]
    timeout: Duration,
    /// Print one JSON object (resources, per-node state, full holder tokens) instead of text.
    #[arg(long, env = "REDLOCK_JSON")]
    json: bool,
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

/// Runs `redlock status`; returns the exit status: 0 when every resource is free (no holder
/// has a quorum), [`exit::CONFLICT`] when one is held by a quorum, [`exit::UNREACHABLE`] when a
/// node could not be asked and the answers leave a resource undecided, [`exit::FAILURE`] for a
/// bad URL.
pub fn main(args: StatusArgs, verbose: u8) -> u8 {
    let nodes = match args.nodes.nodes() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("redlock: bad configuration: {e}");
            return exit::FAILURE;
        }
    };
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
    let (mut any_held, mut any_undecided) = (false, false);
    let mut resources_json = Vec::new();
    for (k, resource) in args.resources.iter().enumerate() {
        let per_node: Vec<Result<&(Held, Option<u64>), &String>> =
            answers.iter().map(|a| a.as_ref().map(|v| &v[k])).collect();
        let state = decide(&per_node, quorum);
        any_held |= state == State::Held;
        any_undecided |= state == State::Undecided;
        if args.json {
            resources_json.push(resource_json(resource, &keys[k], state, &nodes, &per_node));
            continue;
        }
        println!("{resource}: {}", verdict(&per_node, quorum));
        for (node, answer) in nodes.iter().zip(&per_node) {
            let line = match answer {
                Err(e) => format!("unreachable: {e}"),
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
    if args.json {
        let out = json!({ "quorum": quorum, "nodes": nodes.len(), "resources": resources_json });
        println!("{out}");
    }
    if any_held {
        exit::CONFLICT
    } else if any_undecided {
        exit::UNREACHABLE
    } else {
        0
    }
}

/// What the answers say about one resource, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// One holder has a quorum.
    Held,
    /// No holder has a quorum, and the nodes that did not answer could not give one one.
    Free,
    /// No holder has a quorum among the answers, but the unanswered nodes could.
    Undecided,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Held => "held",
            State::Free => "free",
            State::Undecided => "undecided",
        }
    }
}

fn decide(per_node: &[Result<&(Held, Option<u64>), &String>], quorum: usize) -> State {
    let unreachable = per_node.iter().filter(|a| a.is_err()).count();
    let best = holders(per_node).first().map_or(0, |(_, c)| *c);
    if best >= quorum {
        State::Held
    } else if best + unreachable >= quorum {
        State::Undecided
    } else {
        State::Free
    }
}

/// Every holder's token and on how many nodes, most common first.
fn holders<'a>(per_node: &[Result<&'a (Held, Option<u64>), &String>]) -> Vec<(&'a str, usize)> {
    let mut holders: Vec<(&str, usize)> = Vec::new();
    for (h, _) in per_node.iter().filter_map(|a| a.as_ref().ok()) {
        if let Held::Held { token, .. } = h {
            match holders.iter_mut().find(|(t, _)| *t == token.as_str()) {
                Some((_, c)) => *c += 1,
                None => holders.push((token.as_str(), 1)),
            }
        }
    }
    holders.sort_by_key(|h| std::cmp::Reverse(h.1));
    holders
}

/// One resource as JSON.
fn resource_json(
    resource: &str,
    key: &str,
    state: State,
    nodes: &[Node],
    per_node: &[Result<&(Held, Option<u64>), &String>],
) -> Value {
    let holder = match state {
        State::Held => holders(per_node).first().map(|(t, _)| t.to_string()),
        _ => None,
    };
    let nodes: Vec<Value> = nodes
        .iter()
        .zip(per_node)
        .map(|(node, answer)| match answer {
            Err(e) => json!({ "node": node.to_string(), "state": "unreachable", "error": e }),
            Ok((Held::Free, fence)) => {
                json!({ "node": node.to_string(), "state": "free", "fence": fence })
            }
            Ok((Held::Held { token, ttl }, fence)) => json!({
                "node": node.to_string(),
                "state": "held",
                "holder": token,
                "ttl_ms": ttl.map(|t| t.as_millis() as u64),
                "fence": fence,
            }),
        })
        .collect();
    json!({
        "resource": resource,
        "key": key,
        "state": state.name(),
        "holder": holder,
        "nodes": nodes,
    })
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
    let holders = holders(per_node);
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

/// The most `MOVED` redirects followed for one key of a cluster node.
const MAX_HOPS: usize = 5;

/// Asks one node about every key: `GET`, `PTTL` and the fence counter. A cluster node is asked
/// key by key (a key and its fence counter share a slot), at its seed first, then where a
/// `MOVED` says.
fn query(node: &Node, keys: &[String], timeout: Duration) -> Answer {
    if !node.cluster {
        return query_at(node, keys, timeout);
    }
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let mut at = node.clone();
        let mut hops = 0;
        let answer = loop {
            match query_at(&at, std::slice::from_ref(key), timeout) {
                Err(e) if hops < MAX_HOPS => {
                    let asked = match &at.address {
                        Address::Tcp { host, .. } => host.as_str(),
                        _ => "",
                    };
                    match Redirect::parse(&e, asked) {
                        Some(r)
                            if r.kind == RedirectKind::Moved && !r.endpoint.host().is_empty() =>
                        {
                            at.address = Address::Tcp {
                                host: r.endpoint.host().to_string(),
                                port: r.endpoint.port(),
                            };
                            hops += 1;
                        }
                        _ => break Err(e),
                    }
                }
                other => break other,
            }
        };
        out.extend(answer?);
    }
    Ok(out)
}

/// Asks the server at `node`'s address about every key in one pipeline.
fn query_at(node: &Node, keys: &[String], timeout: Duration) -> Answer {
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for key in keys {
        cmds.push(vec![b"GET".to_vec(), key.as_bytes().to_vec()]);
        cmds.push(vec![b"PTTL".to_vec(), key.as_bytes().to_vec()]);
        cmds.push(vec![b"GET".to_vec(), fence_key(key.as_bytes()).to_vec()]);
    }
    let replies = inspect::pipeline(node, &cmds, timeout)?;
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
        // No tag but a `}`: a two-byte tag of the key's own slot goes in front.
        assert!(fence_key(b"a{}b").ends_with(b"}a{}b:fence"));
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
