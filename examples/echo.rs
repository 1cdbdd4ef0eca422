//! The smallest server: every message on `echo` comes straight back to its sender. For
//! benchmarks and conformance runs.
//!
//! ```text
//! cargo run --release --example echo     # address: first argument, WS_ADDR, or 127.0.0.1:8080
//! ```
//!
//! Connect to `ws://127.0.0.1:8080/echo` and send any JSON value, such as `{"hello":"world"}`.

use ws_channels::{Server, channel};

/// Any JSON value.
#[channel("echo")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Echo(serde_json::Value);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Echo::register(Server::new(), |handler| {
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
