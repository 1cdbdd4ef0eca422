//! The baseline of the Autobahn|Testsuite run: a bare tokio-tungstenite echo, with no
//! ws-channels in it. Every text and binary message goes straight back to its sender; pings,
//! pongs and the closing handshake are tungstenite's own. Messages and frames up to 16 MiB,
//! like the raw channel of the `echo` example.
//!
//! ```text
//! cargo run --release --example autobahn_baseline     # address: first argument, or 127.0.0.1:9001
//! bash .ci/autobahn/run.sh                             # the suite against it and against `echo`
//! ```
//!
//! `.ci/autobahn/run.sh` runs the fuzzing client against both in the same job: a case that is
//! NON-STRICT on ws-channels passes only if this baseline shares it (what tungstenite does,
//! which the runtime cannot change).

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The largest message and frame accepted: the Autobahn cases send up to 16 MiB.
const LIMIT: usize = 16 << 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:9001")).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let config = WebSocketConfig::default()
        .max_message_size(Some(LIMIT))
        .max_frame_size(Some(LIMIT));
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                if !(message.is_text() || message.is_binary()) {
                    continue;
                }
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}
