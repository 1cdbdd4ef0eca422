//! Memory per idle connection: our server against raw tokio-tungstenite servers, measured in
//! the same run. Each server runs as a child process; this process opens N idle WebSocket
//! connections to it and reads the server's resident memory (`VmRSS`, so Linux only) before
//! and after.
//!
//! ```text
//! cargo run --release --example idle_memory            # 2000 connections per server
//! cargo run --release --example idle_memory -- 5000    # needs `ulimit -n` above 5000
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};

#[path = "common.rs"]
mod common;

use common::Running;

/// The servers compared, by the name the child process is started with.
const SERVERS: [(&str, &str); 3] = [
    ("raw-bytes", "tokio-tungstenite, default config (128 KiB read buffer)"),
    ("raw-4k", "tokio-tungstenite, 4 KiB read buffer"),
    ("ws-channels", "ws-channels, default config"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return common::serve(&args[1]);
    }
    let connections: usize = args.first().map_or(Ok(2000), |n| n.parse())?;
    println!("idle connections per server: {connections}\n");
    println!(
        "{:<12} {:>12} {:>12} {:>14} {:>8}   what",
        "server", "RSS before", "RSS after", "per connection", "ratio"
    );
    let mut baseline = None;
    for (name, what) in SERVERS {
        let per_connection = measure(name, connections)?;
        let base = *baseline.get_or_insert(per_connection.2);
        println!(
            "{name:<12} {:>9} KiB {:>9} KiB {:>10.1} KiB {:>7.2}x   {what}",
            per_connection.0,
            per_connection.1,
            per_connection.2,
            per_connection.2 / base
        );
    }
    Ok(())
}

/// Starts a server, opens `connections` idle connections, returns RSS before, after (KiB) and
/// the difference per connection.
fn measure(name: &str, connections: usize) -> Result<(u64, u64, f64), Box<dyn std::error::Error>> {
    let server = Running::start(name)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // One connection first, so lazily initialized state is in the "before" figure.
        let warm = open(&server.addr).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kib(server.pid())?;
        let mut sockets = Vec::with_capacity(connections);
        for _ in 0..connections {
            sockets.push(open(&server.addr).await?);
        }
        // Let the server settle: every connection upgraded and idle.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib(server.pid())?;
        drop((warm, sockets));
        let per = after.saturating_sub(before) as f64 / connections as f64;
        Ok((before, after, per))
    })
}

/// Opens one connection and checks it echoes, so it is fully set up.
async fn open(addr: &str) -> Result<ws_channels::ClientSocket, Box<dyn std::error::Error>> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{addr}/echo")).await?;
    let probe = r#"{"user_id":"u","seq":1,"text":"hi"}"#;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(probe))
        .await?;
    socket.next().await.ok_or("closed")??;
    Ok(socket)
}

fn rss_kib(pid: u32) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS (Linux only)")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}
