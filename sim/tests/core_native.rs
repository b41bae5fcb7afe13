//! The core's native commands against model nodes claiming each server: a one-key release goes
//! out as `DELEX … IFEQ` (Redis 8.4, Valkey 9.2) or `DELIFEQ` (Valkey 9.0) and an extend as
//! `SET … IFEQ … PX` (Redis 8.4, Valkey 8.1), each doing what the script would; a release
//! refused as unknown falls back to the script. Each check also runs against a model with the
//! native command deliberately broken, and must see the difference.

use bytes::Bytes;
use redlock_core::{Lock, OpError, Options};
use redlock_sim::{wall_clock, Defect, Done, Identity, Rig};
use std::time::Duration;

const KEY: &[u8] = b"r";
const OTHER: &[u8] = b"someone-else";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Three nodes claiming `server`, connected, and a lock on `r` for 10 s.
fn locked(server: Identity) -> (Rig, Lock) {
    let mut o = Options::default();
    o.retry_count = Some(0);
    let mut rig = Rig::new(3, o, 1);
    for n in &mut rig.nodes {
        n.set_identity(server);
    }
    rig.connect_all();
    let wall = wall_clock(rig.now);
    let op = rig
        .engine
        .acquire(rig.now, ["r"], ms(10_000), Rig::token(1), wall)
        .unwrap();
    match rig.run_until_complete(op, 10) {
        Ok(Done::Acquired(lock)) => (rig, lock),
        other => panic!("{server}: expected Acquired, got {other:?}"),
    }
}

fn holding(rig: &Rig, value: &[u8]) -> usize {
    rig.nodes
        .iter()
        .filter(|n| n.get(rig.now, 0, KEY).as_deref() == Some(value))
        .count()
}

/// The names of the commands sent to node `i` after the first `skip`, with `IFEQ` appended to a
/// `SET` that carries it.
fn names(rig: &Rig, i: usize, skip: usize) -> Vec<String> {
    rig.commands_to(i)
        .iter()
        .skip(skip)
        .map(|c| {
            let name = String::from_utf8_lossy(&c[0]).to_ascii_uppercase();
            let ifeq = c.iter().any(|a| a.eq_ignore_ascii_case(b"IFEQ"));
            if name == "SET" && ifeq {
                "SET IFEQ".into()
            } else {
                name
            }
        })
        .collect()
}

fn release(rig: &mut Rig, lock: &Lock) -> Result<Done, OpError> {
    let op = rig.engine.release(rig.now, lock);
    rig.run_until_complete(op, 10)
}

fn extend(rig: &mut Rig, lock: &Lock, ttl: Duration) -> Result<Done, OpError> {
    let op = rig.engine.extend(rig.now, lock, ttl).unwrap();
    rig.run_until_complete(op, 10)
}

#[test]
fn each_server_gets_its_own_native_commands_and_they_do_what_the_scripts_do() {
    for (server, release_cmd, extend_cmd) in [
        (Identity::REDIS_7_2, "EVALSHA", "EVALSHA"),
        (Identity::REDIS_8_4, "DELEX", "SET IFEQ"),
        (Identity::VALKEY_8_1, "EVALSHA", "SET IFEQ"),
        (Identity::VALKEY_9_0, "DELIFEQ", "SET IFEQ"),
        (Identity::VALKEY_9_2, "DELEX", "SET IFEQ"),
    ] {
        let (mut rig, lock) = locked(server);
        let before = rig.commands_to(0).len();
        let done = extend(&mut rig, &lock, ms(20_000));
        let Ok(Done::Extended(lock)) = done else {
            panic!("{server}: {done:?}");
        };
        let token = lock.token().as_str().as_bytes().to_vec();
        assert_eq!(holding(&rig, &token), 3, "{server}");
        for n in &rig.nodes {
            // The rig's clock stands still: the ttl is exactly the extend's.
            assert_eq!(n.ttl(rig.now, 0, KEY), Some(Some(ms(20_000))), "{server}");
        }
        let sent = names(&rig, 0, before);
        assert!(
            sent.first().is_some_and(|c| c.as_str() == extend_cmd)
                || (extend_cmd == "EVALSHA" && sent.contains(&"EVAL".to_string())),
            "{server}: extend went out as {sent:?}"
        );
        let before = rig.commands_to(0).len();
        let done = release(&mut rig, &lock);
        assert!(
            matches!(&done, Ok(Done::Released(r)) if r.confirmed >= 2),
            "{server}: {done:?}"
        );
        assert_eq!(rig.holders(KEY), 0, "{server}");
        let sent = names(&rig, 0, before);
        assert!(
            sent.first().is_some_and(|c| c.as_str() == release_cmd)
                || (release_cmd == "EVALSHA" && sent.contains(&"EVAL".to_string())),
            "{server}: release went out as {sent:?}"
        );
        let natives = (rig.nodes[0].native_deletes(), rig.nodes[0].native_sets());
        let expected = (
            u64::from(release_cmd != "EVALSHA"),
            u64::from(extend_cmd != "EVALSHA"),
        );
        assert_eq!(natives, expected, "{server}");
        if release_cmd == "DELEX" {
            // The token rides in IFEQ: the release deletes only this lock's key. (A native
            // release is followed by the PUBLISH that announces it.)
            let last = rig
                .commands_to(0)
                .into_iter()
                .rev()
                .find(|c| c.first().is_some_and(|a| &a[..] == b"DELEX"))
                .expect("a DELEX was sent");
            let want: Vec<Bytes> = ["DELEX", "r", "IFEQ"]
                .iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .chain([Bytes::from(token)])
                .collect();
            assert_eq!(last, want, "{server}");
        }
    }
}

/// The lock's keys have expired and been taken by someone else everywhere; the late release
/// must leave them. Returns how many nodes still hold the other client's key.
fn late_release_leaves(server: Identity) -> usize {
    let (mut rig, lock) = locked(server);
    let now = rig.now;
    for n in &mut rig.nodes {
        n.set(now, 0, KEY, OTHER, Some(ms(10_000)));
    }
    let done = release(&mut rig, &lock);
    assert!(
        matches!(&done, Ok(Done::Released(r)) if r.confirmed == 0) || server.defect.is_some(),
        "{server}: {done:?}"
    );
    assert_eq!(
        rig.nodes[0].native_deletes(),
        1,
        "{server}: release went native"
    );
    holding(&rig, OTHER)
}

#[test]
fn a_native_release_leaves_another_holders_key() {
    for server in [
        Identity::REDIS_8_4,
        Identity::VALKEY_9_0,
        Identity::VALKEY_9_2,
    ] {
        assert_eq!(late_release_leaves(server), 3, "{server}");
        // Teeth: a DELEX / DELIFEQ that ignores its value deletes them, and this sees it.
        let broken = server.with_defect(Defect::DeleteIgnoresValue);
        assert_eq!(late_release_leaves(broken), 0, "{broken}");
    }
}

/// Node 0's key was taken by someone else (5 s left), node 1's expired; the extend to 20 s must
/// fail there and leave both as they were. Returns whether it did.
fn late_extend_leaves_them(server: Identity) -> bool {
    let (mut rig, lock) = locked(server);
    let now = rig.now;
    rig.nodes[0].set(now, 0, KEY, OTHER, Some(ms(5_000)));
    rig.nodes[1].del(now, 0, KEY);
    let done = extend(&mut rig, &lock, ms(20_000));
    assert_eq!(
        rig.nodes[0].native_sets(),
        1,
        "{server}: extend went native"
    );
    let failed = done.is_err();
    let other_kept = rig.nodes[0].get(rig.now, 0, KEY).as_deref() == Some(OTHER)
        && rig.nodes[0].ttl(rig.now, 0, KEY) == Some(Some(ms(5_000)));
    let missing_kept = rig.nodes[1].get(rig.now, 0, KEY).is_none();
    failed && other_kept && missing_kept
}

#[test]
fn a_native_extend_does_not_take_another_holders_key() {
    for server in [
        Identity::REDIS_8_4,
        Identity::VALKEY_8_1,
        Identity::VALKEY_9_0,
    ] {
        assert!(late_extend_leaves_them(server), "{server}");
        // Teeth: a SET IFEQ that ignores its value takes both keys, and this sees it.
        let broken = server.with_defect(Defect::SetIgnoresValue);
        assert!(!late_extend_leaves_them(broken), "{broken}");
    }
}

#[test]
fn a_release_refused_as_unknown_falls_back_to_the_script() {
    // INFO names Redis 8.4 or Valkey 9.2, but DELEX was renamed away.
    for server in [Identity::REDIS_8_4, Identity::VALKEY_9_2] {
        let (mut rig, lock) = locked(server.renamed());
        let before = rig.commands_to(0).len();
        let done = release(&mut rig, &lock);
        assert!(
            matches!(&done, Ok(Done::Released(r)) if r.confirmed >= 2),
            "{server}: {done:?}"
        );
        assert_eq!(rig.holders(KEY), 0, "{server}");
        let sent = names(&rig, 0, before);
        assert_eq!(sent.first().map(String::as_str), Some("DELEX"), "{sent:?}");
        assert!(
            sent.iter().any(|c| c == "EVALSHA" || c == "EVAL"),
            "{server}: no script after the refusal: {sent:?}"
        );
        assert_eq!(rig.nodes[0].native_deletes(), 0, "{server}");
    }
}
