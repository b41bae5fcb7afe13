//! `redlock run` against `rediss://` nodes that require client certificates: the CA file and
//! the client certificate and key from flags or from `REDLOCK_TLS_*`; a server the given CA did
//! not sign refused at once, in one line saying why.

use redlock_harness::{Cluster, Serve, ServerTls};
use redlock_tests::certs::Certs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const REDLOCK: &str = env!("CARGO_BIN_EXE_redlock");

fn redlock(args: &[&str]) -> Command {
    let mut c = Command::new(REDLOCK);
    c.args(args).stdin(Stdio::null());
    for var in [
        "REDLOCK_NODES",
        "REDLOCK_TLS_CA",
        "REDLOCK_TLS_CERT",
        "REDLOCK_TLS_KEY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        c.env_remove(var);
    }
    c
}

fn output(mut cmd: Command) -> Output {
    cmd.output().expect("redlock runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A command that fails unless at least two of the three nodes hold `key` while it runs (seen
/// over plaintext), and its marker file.
fn check_held(cluster: &Cluster, key: &str, dir: &Path) -> (PathBuf, String) {
    let marker = dir.join(format!("{key}.ran"));
    let ports: Vec<String> = (0..3).map(|i| cluster.port(i).to_string()).collect();
    let script = format!(
        "n=$(for p in {}; do redis-cli -p $p GET {key}; done | grep -c .); \
         [ \"$n\" -ge 2 ] && echo held > {}",
        ports.join(" "),
        marker.display()
    );
    (marker, script)
}

#[test]
fn run_over_mutual_tls_with_flags_or_environment() {
    let certs = Certs::generate();
    let cluster = Cluster::start_serving(
        3,
        &Serve {
            tls: Some(ServerTls {
                cert: certs.server_cert.clone(),
                key: certs.server_key.clone(),
                ca: certs.ca.clone(),
                require_client_cert: true,
            }),
            unix_socket: false,
        },
    );
    let urls: Vec<String> = (0..3).map(|i| cluster.tls_url(i)).collect();
    let urls = urls.join(",");
    let (ca, cert, key) = (
        path(&certs.ca),
        path(&certs.client_cert),
        path(&certs.client_key),
    );

    // Flags.
    let (marker, script) = check_held(&cluster, "tls-flags", certs.dir());
    let out = output(redlock(&[
        "run",
        "--nodes",
        &urls,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "-n",
        "tls-flags",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(marker.exists(), "the command ran with the lock on the node");
    assert_eq!(cluster.exists_after("tls-flags", Duration::from_secs(2)), 0);

    // The environment.
    let (marker, script) = check_held(&cluster, "tls-env", certs.dir());
    let mut c = redlock(&["run", "-n", "tls-env", "--", "sh", "-c", &script]);
    c.env("REDLOCK_NODES", &urls)
        .env("REDLOCK_TLS_CA", &ca)
        .env("REDLOCK_TLS_CERT", &cert)
        .env("REDLOCK_TLS_KEY", &key);
    let out = output(c);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(marker.exists(), "the command ran with the lock on the node");

    // `status` reads the nodes over the same TLS settings.
    let ready = certs.dir().join("status.ready");
    let hold = format!("echo > {}; exec sleep 20", ready.display());
    let mut holder = redlock(&[
        "run",
        "--nodes",
        &urls,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "tls-status",
        "--",
        "sh",
        "-c",
        &hold,
    ])
    .spawn()
    .expect("spawn holder");
    let end = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        assert!(Instant::now() < end, "the holder never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = output(redlock(&[
        "status",
        "--nodes",
        &urls,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "tls-status",
    ]));
    let _ = holder.kill();
    let _ = holder.wait();
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(120), "{shown}{}", text(&out.stderr));
    assert!(shown.contains("held by"), "{shown}");
    let out = output(redlock(&[
        "status",
        "--nodes",
        &urls,
        "--tls-ca",
        &path(&certs.other_ca),
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "tls-status",
    ]));
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(122), "{shown}");
    assert!(shown.contains("UnknownIssuer"), "{shown}");

    // A certificate without its key is a usage error.
    let out = output(redlock(&[
        "run",
        "--nodes",
        &urls,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "x",
        "--",
        "true",
    ]));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--tls-key"),
        "{}",
        text(&out.stderr)
    );

    // Without a client certificate the servers refuse: no lock, the command does not run.
    let out = output(redlock(&[
        "run",
        "--nodes",
        &urls,
        "--tls-ca",
        &ca,
        "-n",
        "tls-nocert",
        "--",
        "false",
    ]));
    let code = out.status.code();
    assert!(
        code == Some(122) || code == Some(125),
        "{code:?}: {}",
        text(&out.stderr)
    );

    // Another CA: refused at once (waiting would not help), one line naming the reason.
    let t = Instant::now();
    let out = output(redlock(&[
        "run",
        "--nodes",
        &urls,
        "--tls-ca",
        &path(&certs.other_ca),
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "tls-wrong-ca",
        "--",
        "true",
    ]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // TLS flags with no TLS node would be ignored: refused instead.
    let plain = format!("redis://127.0.0.1:{}", cluster.port(0));
    let out = output(redlock(&[
        "run", "--nodes", &plain, "--tls-ca", &ca, "x", "--", "true",
    ]));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("rediss://"),
        "{}",
        text(&out.stderr)
    );
}
