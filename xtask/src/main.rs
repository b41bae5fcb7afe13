//! `cargo xtask <task>`: the project's task runner.
//!
//! - `test`: installs `redis-server` when missing (via apt-get, as root), then runs
//!   `cargo fmt --check`, clippy with `-D warnings`, the sans-IO check on `core/src`, and
//!   every test in the workspace. `.ci/run` calls exactly this.

// A command-line tool: printing is its job (the lint is for the library crates).
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("demo") => demo(&args[1..]),
        Some("bench") => bench(&args[1..]),
        _ => Err(format!(
            "usage: cargo xtask <task>\n\ntasks:\n  test    fmt, clippy, sans-IO check and every test (what CI runs)\n  demo    5 local redis-server nodes, 32 contending workers, verified\n  bench   the benchmark matrix (release), with rslock and redis-benchmark\n\ngot: {}",
            args.join(" ")
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

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

/// DESIGN §2: the core never touches the OS. A grep, so the rule is checked, not just stated.
fn sans_io_check() -> Result<(), String> {
    let forbidden = [
        "Instant::now",
        "SystemTime::now",
        "std::net",
        "tokio",
        "getrandom",
        "thread::sleep",
        "async fn",
    ];
    let mut hits = Vec::new();
    let mut stack = vec![root().join("core/src")];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                for (n, line) in text.lines().enumerate() {
                    if let Some(word) = forbidden.iter().find(|w| line.contains(*w)) {
                        hits.push(format!("{}:{}: {word}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    if hits.is_empty() {
        eprintln!("xtask: core/src is sans-IO");
        Ok(())
    } else {
        Err(format!(
            "core/src must stay sans-IO (DESIGN.md §2):\n{}",
            hits.join("\n")
        ))
    }
}

fn test() -> Result<(), String> {
    ensure_redis()?;
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
    sans_io_check()?;
    let mut tests = cargo();
    tests.args(["test", "--workspace"]);
    run("cargo test --workspace", tests)?;
    eprintln!("xtask: all checks passed");
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
/// `redlock` and `bench/rslock` (its own workspace) in release, and runs the `redlock bench`
/// matrix with rslock as the comparison. ARGS go to `redlock bench` (e.g. `--duration 5`).
fn bench(args: &[String]) -> Result<(), String> {
    ensure_redis()?;
    let mut build = cargo();
    build.args(["build", "--release", "--quiet", "-p", "redlock-cli"]);
    run("cargo build --release -p redlock-cli", build)?;
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
    bench
        .args(["run", "--release", "--quiet", "-p", "redlock-cli"])
        .args(["--", "bench"]);
    if let Some(program) = compare {
        bench.arg("--compare").arg(program);
    }
    bench.args(args);
    run("redlock bench", bench)
}
