//! Echo throughput: typed ws-channels against hand-written tokio-tungstenite servers, measured
//! in the same run on the same machine. Each server runs as a child process; this process
//! opens C connections and keeps W messages in flight on each until N round trips are done.
//!
//! ```text
//! cargo run --release --example echo_throughput              # 50 connections × 2000 messages
//! cargo run --release --example echo_throughput -- 100 1000  # connections, messages each
//! ```
//!
//! `raw-typed` decodes and re-encodes the same struct as ws-channels does, so the ratio against
//! it is the cost of the library; `raw-bytes` sends frames back untouched, the ceiling.
//! Client and server share the machine's cores: compare ratios, not absolute figures.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[path = "common.rs"]
mod common;

use common::Running;

const SERVERS: [(&str, &str); 3] = [
    ("raw-bytes", "tokio-tungstenite, frames echoed untouched"),
    ("raw-typed", "tokio-tungstenite, decode + encode the struct"),
    ("ws-channels", "ws-channels typed channel, default config"),
];

/// Messages in flight per connection.
const WINDOW: usize = 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return common::serve(&args[1]);
    }
    let connections: usize = args.first().map_or(Ok(50), |n| n.parse())?;
    let messages: usize = args.get(1).map_or(Ok(2000), |n| n.parse())?;
    println!("{connections} connections × {messages} round trips, {WINDOW} in flight per connection\n");
    println!("{:<12} {:>14} {:>10}   what", "server", "round trips/s", "vs typed");
    let mut results = Vec::new();
    for (name, what) in SERVERS {
        // The best of three runs, to damp the noise of a shared machine.
        let mut best = 0.0_f64;
        for _ in 0..3 {
            best = best.max(measure(name, connections, messages)?);
        }
        results.push((name, what, best));
    }
    let typed = results
        .iter()
        .find(|(name, ..)| *name == "raw-typed")
        .map_or(1.0, |r| r.2);
    for (name, what, rate) in results {
        println!("{name:<12} {rate:>14.0} {:>9.2}x   {what}", rate / typed);
    }
    Ok(())
}

/// Round trips per second against one server.
fn measure(name: &str, connections: usize, messages: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let server = Running::start(name)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut sockets = Vec::with_capacity(connections);
        for _ in 0..connections {
            let (socket, _) = tokio_tungstenite::connect_async(format!("{}/echo", server.addr)).await?;
            sockets.push(socket);
        }
        let started = Instant::now();
        let clients = sockets
            .into_iter()
            .enumerate()
            .map(|(id, socket)| tokio::spawn(client(id, socket, messages)));
        for result in futures_util::future::join_all(clients).await {
            result?.map_err(|e| e.to_string())?;
        }
        let elapsed = started.elapsed();
        Ok::<_, Box<dyn std::error::Error>>((connections * messages) as f64 / elapsed.as_secs_f64())
    })
}

/// Sends `messages` echo messages keeping `WINDOW` in flight; checks every reply arrives.
async fn client(
    id: usize,
    socket: ws_channels::ClientSocket,
    messages: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (mut tx, mut rx) = socket.split();
    let message = |seq: usize| {
        Message::text(format!(
            r#"{{"user_id":"user-{id}","seq":{seq},"text":"hello, world"}}"#
        ))
    };
    let mut sent = 0;
    while sent < WINDOW.min(messages) {
        tx.feed(message(sent)).await?;
        sent += 1;
    }
    tx.flush().await?;
    let mut received = 0;
    while received < messages {
        let reply = tokio::time::timeout(Duration::from_secs(10), rx.next())
            .await?
            .ok_or("closed")??;
        if reply.is_text() {
            received += 1;
            if sent < messages {
                tx.send(message(sent)).await?;
                sent += 1;
            }
        }
    }
    Ok(())
}
