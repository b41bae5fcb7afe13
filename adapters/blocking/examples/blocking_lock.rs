//! Acquire and release a lock, then hold one with `using`, without any async runtime.
//!
//! ```text
//! cargo run -p redlock-blocking --example blocking_lock -- redis://127.0.0.1:7001 redis://127.0.0.1:7002 redis://127.0.0.1:7003
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example prints what it does

use redlock_blocking::{Options, Redlock};
use std::time::Duration;

fn main() -> std::process::ExitCode {
    // Errors print with `Display`: one line naming each failing node and why, not a Debug dump.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        urls.push("redis://127.0.0.1:6379".into());
    }
    let mut options = Options::default();
    options.automatic_extension_threshold = Duration::from_millis(300);
    let redlock = Redlock::connect(&urls, options)?;
    let lock = redlock.acquire(["example:blocking"], Duration::from_secs(5))?;
    println!("acquired, token {}", lock.token());
    println!("released on {} node(s)", redlock.release(&lock)?.confirmed);
    let n = redlock.using(["example:blocking"], Duration::from_secs(1), |lease| {
        // Outlives the 1 s ttl three times over: the keep-alive extends it.
        std::thread::sleep(Duration::from_secs(3));
        assert!(!lease.is_lost());
        42
    })?;
    println!("using returned {n}");
    Ok(())
}
