//! What the benchmarks share: running a server as a child process of the benchmark binary
//! (`--serve NAME`), and the servers compared.

// Each benchmark includes this module and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use ws_channels::{Server, channel};

/// A message of a realistic shape, echoed typed: decoded, then encoded again.
#[channel("echo")]
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Echo {
    user_id: String,
    seq: u64,
    text: String,
}

/// A server child process, killed when dropped.
pub(crate) struct Running {
    child: Child,
    /// `ws://127.0.0.1:PORT`
    pub(crate) addr: String,
}

impl Running {
    /// Starts this benchmark binary as `--serve name` and waits for its address.
    pub(crate) fn start(name: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve", name])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or("no address")?
            .to_owned();
        Ok(Self { child, addr })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the server named `name` on an ephemeral loopback port, forever:
/// - `ws-channels`: the typed `Echo` channel with default settings;
/// - `raw-typed`: hand-written tokio-tungstenite that decodes and re-encodes `Echo` too;
/// - `raw-bytes`: tokio-tungstenite sending each text frame back untouched;
/// - `raw-4k`: like `raw-bytes` with a 4 KiB read buffer.
pub(crate) fn serve(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on ws://{}", listener.local_addr()?);
        if name == "ws-channels" {
            let server = Echo::register(Server::new(), |h| {
                h.on_message(|conn, message| async move {
                    conn.send(&message).await?;
                    Ok(())
                })
            });
            server.serve(listener).await?;
            return Ok(());
        }
        let config = (name == "raw-4k").then(|| WebSocketConfig::default().read_buffer_size(4 * 1024));
        let typed = name == "raw-typed";
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, config).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Text(text) = message else { continue };
                    let reply = match typed {
                        true => match serde_json::from_str::<Echo>(&text).and_then(|e| serde_json::to_string(&e)) {
                            Ok(json) => Message::text(json),
                            Err(_) => continue,
                        },
                        false => Message::Text(text),
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}
