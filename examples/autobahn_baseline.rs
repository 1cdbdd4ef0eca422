//! The baseline of the Autobahn|Testsuite runs: bare tokio-tungstenite, with no ws-channels in
//! it, on both sides of the protocol.
//!
//! - As a server (the default): every text and binary message goes straight back to its
//!   sender, against which `wstest -m fuzzingclient` runs beside the `echo` example's raw
//!   channel.
//! - As a client (`client URL AGENT`): runs every case of a `wstest -m fuzzingserver` at `URL`,
//!   echoing each message back, then asks it to write its reports; the baseline of the
//!   `autobahn_client` example.
//!
//! Pings, pongs and the closing handshake are tungstenite's own. Messages and frames up to
//! 16 MiB, like the raw channel of the `echo` example.
//!
//! ```text
//! cargo run --release --example autobahn_baseline     # server; address: first argument, or 127.0.0.1:9001
//! cargo run --release --example autobahn_baseline -- client ws://127.0.0.1:9001 tokio-tungstenite
//! bash .ci/autobahn/run.sh                             # both suites, ours beside this baseline
//! ```
//!
//! `.ci/autobahn/run.sh` runs each suite against ws-channels and this baseline in the same
//! job: a case that is NON-STRICT on ws-channels passes only if this baseline shares it (what
//! tungstenite does, which the runtime cannot change).

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The largest message and frame accepted: the Autobahn cases send up to 16 MiB.
const LIMIT: usize = 16 << 20;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = WebSocketConfig::default()
        .max_message_size(Some(LIMIT))
        .max_frame_size(Some(LIMIT));
    match args.as_slice() {
        [mode, url, agent] if mode == "client" => client(url, agent, config).await,
        [] => server("127.0.0.1:9001", config).await,
        [addr] => server(addr, config).await,
        _ => Err("usage: autobahn_baseline [ADDR] | autobahn_baseline client URL AGENT".into()),
    }
}

async fn server(addr: &str, config: WebSocketConfig) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
                return;
            };
            echo(ws).await;
        });
    }
}

async fn client(url: &str, agent: &str, config: WebSocketConfig) -> Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/getCaseCount")).await?;
    let count: u32 = match ws.next().await {
        Some(Ok(message)) => message.to_text()?.trim().parse()?,
        _ => return Err("the fuzzing server sent no case count".into()),
    };
    drop(ws);
    for case in 1..=count {
        let url = format!("{url}/runCase?case={case}&agent={agent}");
        // A case that refuses the handshake or breaks the connection is the case's verdict,
        // not this program's failure: go on with the next.
        if let Ok((ws, _)) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await {
            echo(ws).await;
        }
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/updateReports?agent={agent}")).await?;
    ws.close(None).await?;
    while ws.next().await.is_some() {}
    println!("{count} cases run");
    Ok(())
}

/// Sends every text and binary message back until the connection ends.
async fn echo<S>(mut ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if !(message.is_text() || message.is_binary()) {
            continue;
        }
        if ws.send(message).await.is_err() {
            break;
        }
    }
}
