//! Acquire, extend and release a lock, then hold one with `using`.
//!
//! ```text
//! cargo run -p redlock-tokio --example tokio_lock -- redis://127.0.0.1:7001 redis://127.0.0.1:7002 redis://127.0.0.1:7003
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example prints what it does

use redlock_tokio::{Options, Redlock};
use std::time::Duration;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors print with `Display`: one line naming each failing node and why, not a Debug dump.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        urls.push("redis://127.0.0.1:6379".into());
    }
    let redlock = Redlock::connect(&urls, Options::default()).await?;
    let lock = redlock
        .acquire(["example:tokio"], Duration::from_secs(5))
        .await?;
    println!("acquired, token {}", lock.token());
    let lock = redlock.extend(&lock, Duration::from_secs(5)).await?;
    println!(
        "extended, {:?} left",
        lock.remaining(std::time::Instant::now())
    );
    let released = redlock.release(&lock).await?;
    println!("released on {} node(s)", released.confirmed);

    let mut options = Options::default();
    options.automatic_extension_threshold = Duration::from_millis(300);
    let redlock = Redlock::connect(&urls, options).await?;
    let n = redlock
        .using(
            ["example:tokio"],
            Duration::from_secs(1),
            |lease| async move {
                // Outlives the 1 s ttl three times over: the lease keeps extending it.
                tokio::time::sleep(Duration::from_secs(3)).await;
                assert!(!lease.is_lost());
                42
            },
        )
        .await?;
    println!("using returned {n}");
    Ok(())
}
