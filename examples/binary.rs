//! Beyond JSON text: a MessagePack channel and a raw channel on one server, with the AsyncAPI
//! document and TypeScript client derived from them.
//!
//! - `sensors/<device>` (MessagePack binary frames): a sensor sends `{"type":"report",
//!   "celsius":[20.5,21.5],"label":null}` or `{"type":"ping"}`, MessagePack-encoded with field
//!   names as map keys; the server answers a report with `{"type":"recorded","device":…,
//!   "count":2,"mean":21.0,"label":null}` and a ping with `{"type":"pong"}`. A text frame on
//!   this channel closes the connection with 1003 (unsupported data).
//! - `relay/<topic>` (raw): every text or binary frame goes to everyone on the topic, the sender
//!   included, byte for byte.
//!
//! Run the server (address from the first argument or `WS_ADDR`, default `127.0.0.1:8080`):
//!
//! ```text
//! cargo run --example binary
//! ```
//!
//! Print its AsyncAPI 3.0 document (each message with its `contentType`) and exit:
//!
//! ```text
//! cargo run --example binary -- --asyncapi
//! ```
//!
//! or its TypeScript client (checked in as `examples/binary.ts`; it imports `@msgpack/msgpack`
//! for the MessagePack channel):
//!
//! ```text
//! cargo run --example binary -- --typescript
//! ```

use serde::{Deserialize, Serialize};
use ws_channels::{AsyncApi, Channel, Server, channel};

/// What a sensor sends.
#[channel("sensors/<device>", server = SensorEvent, codec = msgpack, name = "sensors")]
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SensorCommand {
    /// A batch of readings.
    Report {
        /// Temperatures, in degrees Celsius.
        celsius: Vec<f64>,
        /// A note to keep with the batch.
        label: Option<String>,
    },
    /// Is the server there?
    Ping,
}

/// What the server tells a sensor.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SensorEvent {
    /// A batch was recorded.
    Recorded {
        /// The device, from the address.
        device: String,
        /// How many readings the batch had.
        count: u32,
        /// Their mean, in degrees Celsius (0 for an empty batch).
        mean: f64,
        /// The batch's note.
        label: Option<String>,
    },
    /// The answer to a ping.
    Pong,
}

/// Frames relayed as they are to everyone on a topic.
#[channel("relay/<topic>", codec = raw, name = "relay")]
pub struct Relay;

/// The server's contract, derived from its Rust types.
fn asyncapi() -> AsyncApi {
    AsyncApi::new("Binary channels", "1.0.0")
        .description("A MessagePack channel and a raw channel, typed by ws-channels")
        .server("local", "localhost:8080", "ws")
        .channel::<SensorCommand>()
        .channel::<Relay>()
}

fn server() -> Server {
    let server = SensorCommand::register(Server::new(), |handler| {
        handler.on_message(|conn, command| async move {
            let event = match command {
                SensorCommand::Report { celsius, label } => {
                    let count = u32::try_from(celsius.len()).unwrap_or(u32::MAX);
                    let mean = match celsius.len() {
                        0 => 0.0,
                        n => celsius.iter().sum::<f64>() / n as f64,
                    };
                    SensorEvent::Recorded {
                        device: conn.params().device.clone(),
                        count,
                        mean,
                        label,
                    }
                }
                SensorCommand::Ping => SensorEvent::Pong,
            };
            conn.send(&event).await?;
            Ok(())
        })
    });
    Relay::register(server, |handler| {
        handler.on_message(|conn, frame| async move {
            let _ = conn.broadcast(&frame).await?;
            Ok(())
        })
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = match std::env::args().nth(1) {
        Some(flag) if flag == "--asyncapi" => {
            println!("{}", asyncapi().to_json_string());
            return Ok(());
        }
        Some(flag) if flag == "--typescript" => {
            print!("{}", asyncapi().to_typescript());
            return Ok(());
        }
        arg => arg.or_else(|| std::env::var("WS_ADDR").ok()),
    };
    let listener = tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8080")).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server().serve_with_shutdown(listener, ctrl_c).await?;
    Ok(())
}
