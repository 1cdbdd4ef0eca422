//! The client side of the Autobahn|Testsuite run: echoes every case of wstest's fuzzing server
//! through the library's [`Client`] (its background task, send queue and raw channel), or,
//! with `--baseline`, through a bare tokio-tungstenite client for comparison.
//!
//! ```text
//! wstest -m fuzzingserver -s fuzzingserver.json            # listens on ws://127.0.0.1:9001
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 ws-channels
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 tokio-tungstenite --baseline
//! bash .ci/autobahn/run.sh                                  # both, gated on the report
//! ```
//!
//! Arguments: the fuzzing server's address and the agent name the report files the results
//! under. The case count and the report update are the harness's plumbing, done with a plain
//! tokio-tungstenite socket either way.
//!
//! It runs on a current-thread runtime: the client's background task then lets the echo of
//! the last message go out before it fails the connection on a protocol violation, as a client
//! that reads and answers in turn does (cases 3.2–5.15 send a message and then a violation,
//! and expect the echo first).

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use ws_channels::{Client, Event, Raw, channel};

/// One case of the fuzzing server: `/runCase?case=N&agent=NAME`; every message verbatim.
#[channel("runCase", codec = raw)]
pub struct RunCase;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .ok_or("usage: autobahn_client <ws://host:port> <agent> [--baseline]")?;
    let agent = args
        .next()
        .ok_or("usage: autobahn_client <ws://host:port> <agent> [--baseline]")?;
    let baseline = args.next().as_deref() == Some("--baseline");

    let count = case_count(&base).await?;
    println!("{agent}: {count} cases");
    for case in 1..=count {
        let result = match baseline {
            true => echo_baseline(&base, &agent, case).await,
            false => echo_through_the_client(&base, &agent, case).await.map_err(Into::into),
        };
        // A case ends the connection in many ways, some of them errors on purpose.
        if let Err(error) = result {
            println!("case {case}: {error}");
        }
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}/updateReports?agent={agent}")).await?;
    ws.close(None).await?;
    while ws.next().await.is_some() {}
    println!("{agent}: done");
    Ok(())
}

/// The number of cases, which the server sends as one text message.
async fn case_count(base: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}/getCaseCount")).await?;
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            return Ok(text.parse()?);
        }
    }
    Err("the fuzzing server sent no case count".into())
}

/// Echoes one case through the library's client.
async fn echo_through_the_client(base: &str, agent: &str, case: u32) -> Result<(), ws_channels::Error> {
    // wstest answers no subprotocol; offering one would cost each case a second handshake.
    let (client, mut events) = Client::builder(base, &RunCaseParams::new())
        .query("case", &case.to_string())
        .query("agent", agent)
        .without_channel_subprotocol()
        .connect()
        .await?;
    while let Some(event) = events.next().await {
        if let Event::Message(message) = event? {
            let message: Raw = message;
            if client.send(&message).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// Echoes one case with tokio-tungstenite alone.
async fn echo_baseline(base: &str, agent: &str, case: u32) -> Result<(), Box<dyn std::error::Error>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}/runCase?case={case}&agent={agent}")).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            break;
        }
    }
    Ok(())
}
