//! `redlock status`'s connection to one node: opened the way the lock client opens it (TCP, a
//! Unix socket, TLS with the same settings: `rediss://`, `--tls-ca`, client certificates),
//! logged in and the database selected as the node says, then one pipeline of commands.
//! Blocking: `status` asks each node from a thread of its own.

use bytes::BytesMut;
use redlock_core::resp::{encode_command, Decoder, Protocol, Reply};
use redlock_harness::describe;
use redlock_tokio::{open_connection, Connection, Node, Tokio};
use std::future::poll_fn;
use std::time::Duration;

/// The largest reply buffered (one frame).
const REPLY_CAP: usize = 64 << 20;

/// Sends `cmds` to `node` in one write and returns their replies in order (error replies
/// included), or why the node could not be asked, all within `timeout`.
pub fn pipeline(
    node: &Node,
    cmds: &[Vec<Vec<u8>>],
    timeout: Duration,
) -> Result<Vec<Reply>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        tokio::time::timeout(timeout, exchange(node, cmds))
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    })
}

async fn exchange(node: &Node, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, String> {
    let mut conn = open_connection(&Tokio, node)
        .await
        .map_err(|e| describe(&e))?;
    let mut login: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    if let Some(password) = &node.password {
        let mut auth = vec![b"AUTH".to_vec()];
        auth.extend(node.username.as_ref().map(|u| u.as_bytes().to_vec()));
        auth.push(password.as_bytes().to_vec());
        login.push(("AUTH", auth));
    }
    if node.db != 0 {
        login.push((
            "SELECT",
            vec![b"SELECT".to_vec(), node.db.to_string().into_bytes()],
        ));
    }
    let mut out = BytesMut::new();
    for cmd in login.iter().map(|(_, c)| c).chain(cmds) {
        encode_command(&mut out, cmd);
    }
    let mut written = 0;
    while written < out.len() {
        let n = poll_fn(|cx| conn.poll_write(cx, &out[written..]))
            .await
            .map_err(|e| describe(&e))?;
        if n == 0 {
            return Err("the node closed the connection".into());
        }
        written += n;
    }
    let mut replies = read_replies(&mut *conn, login.len() + cmds.len()).await?;
    for ((what, _), reply) in login.iter().zip(&replies) {
        if let Reply::Error(e) = reply {
            return Err(format!("{what} refused: {e}"));
        }
    }
    Ok(replies.split_off(login.len()))
}

/// Reads until `n` replies (pushes skipped) have arrived.
async fn read_replies(conn: &mut dyn Connection, n: usize) -> Result<Vec<Reply>, String> {
    let mut decoder = Decoder::new(Protocol::Resp2, REPLY_CAP);
    let mut replies = Vec::with_capacity(n);
    let mut chunk = vec![0u8; 16 * 1024];
    while replies.len() < n {
        let got = poll_fn(|cx| conn.poll_read(cx, &mut chunk))
            .await
            .map_err(|e| describe(&e))?;
        if got == 0 {
            return Err("the node closed the connection before a complete reply".into());
        }
        decoder
            .feed(&chunk[..got], |r| {
                if !matches!(r, Reply::Push(_)) {
                    replies.push(r)
                }
            })
            .map_err(|e| format!("not a Redis reply: {e}"))?;
    }
    replies.truncate(n);
    Ok(replies)
}
