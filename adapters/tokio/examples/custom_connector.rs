//! Locks over streams of your own: each node is reached through an in-memory pipe whose other
//! end a small relay task copies to the node's TCP socket, the shape of a connection through a
//! proxy or a tunnel. The nodes are named `node-0`, `node-1`, … and the connector routes each
//! name to an address from the command line (as your own service discovery would).
//!
//! ```text
//! cargo run -p redlock-tokio --example custom_connector -- 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example prints what it does

use redlock_tokio::{
    Address, BoxFuture, Connection, Node, Options, OptionsExt as _, Redlock, Stream,
};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
    let mut addrs: Vec<String> = std::env::args().skip(1).collect();
    if addrs.is_empty() {
        addrs.push("127.0.0.1:6379".into());
    }
    let routes: HashMap<String, String> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| (format!("node-{i}"), addr.clone()))
        .collect();
    let routes = Arc::new(routes);
    let opened = Arc::new(AtomicUsize::new(0));

    let connector = {
        let opened = opened.clone();
        move |address: &Address| -> BoxFuture<io::Result<Box<dyn Connection>>> {
            let target = match address {
                Address::Tcp { host, .. } => routes.get(host).cloned(),
                _ => None,
            };
            let opened = opened.clone();
            let address = address.to_string();
            Box::pin(async move {
                let target = target.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("no route to {address}"))
                })?;
                let mut upstream = tokio::net::TcpStream::connect(&target).await?;
                upstream.set_nodelay(true)?;
                let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
                // The relay: bytes between the pipe and the node until either side closes.
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut theirs, &mut upstream).await;
                });
                opened.fetch_add(1, Ordering::Relaxed);
                Ok(Box::new(Stream(ours)) as Box<dyn Connection>)
            })
        }
    };

    let nodes: Vec<Node> = (0..addrs.len())
        .map(|i| Node::tcp(format!("node-{i}"), 6379))
        .collect();
    let options = Options::default().retry_count(3).key_prefix("example:");
    let redlock = Redlock::connect_via(connector, nodes, options).await?;
    let lock = redlock
        .acquire(["custom-connector"], Duration::from_secs(5))
        .await?;
    println!("acquired, token {}", lock.token());
    let released = redlock.release(&lock).await?;
    println!(
        "released on {} node(s); the connector opened {} stream(s)",
        released.confirmed,
        opened.load(Ordering::Relaxed)
    );
    Ok(())
}
