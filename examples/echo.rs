//! The smallest server: every message comes straight back to its sender. For benchmarks and
//! conformance runs (the WebSocket conformance suite runs against `/raw`).
//!
//! ```text
//! cargo run --release --example echo     # address: first argument, WS_ADDR, or 127.0.0.1:8080
//! ```
//!
//! - `ws://127.0.0.1:8080/echo`: send any JSON value, such as `{"hello":"world"}`; it is
//!   decoded and encoded again.
//! - `ws://127.0.0.1:8080/raw`: send any text or binary message (up to 16 MiB); it comes back
//!   byte for byte, through the same routing, connection task and writer queue, never decoded.

use ws_channels::{Channel, Server, channel};

/// Any JSON value.
#[channel("echo")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Echo(serde_json::Value);

/// Any text or binary message, verbatim.
#[channel("raw", codec = raw)]
pub struct RawEcho;

/// The conformance suite sends messages of up to 16 MiB and expects them back.
const RAW_LIMIT: usize = 16 * 1024 * 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::new()
        // The limit is for whole messages; the protocol layer reads frames up to twice it.
        .max_message_size(RAW_LIMIT)
        .max_outgoing_message_size(RAW_LIMIT);
    let server = Echo::register(server, |handler| {
        handler.on_message(|conn, message| async move {
            conn.send(&message).await?;
            Ok(())
        })
    });
    let server = RawEcho::register(server, |handler| {
        handler.on_message(|conn, message| async move {
            conn.send(&message).await?;
            Ok(())
        })
    });
    let addr = std::env::args().nth(1).or_else(|| std::env::var("WS_ADDR").ok());
    let listener = tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8080")).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    server.serve(listener).await?;
    Ok(())
}
