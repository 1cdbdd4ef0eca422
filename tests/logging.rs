//! What a peer can put in the server's logs: every field that holds peer input (a close
//! reason, a decode error quoting the frame, a refusal naming a parameter) is written with its
//! control characters escaped, so a client cannot forge log lines or send escape sequences to
//! an operator's terminal. The lines are read as a `tracing-subscriber` formatter writes them.

// A failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use ws_channels::tungstenite::Message;
use ws_channels::tungstenite::protocol::CloseFrame;
use ws_channels::{Channel, CloseCode, Server, channel};
use ws_channels_tests::{Backend, Served, raw_connect, read_until_close, within};

ws_channels_tests::on_both_backends!(
    a_close_reason_cannot_forge_a_log_line,
    a_decode_error_quoting_the_frame_is_escaped,
);

#[channel("echo/<room>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Echo {
    Say { text: String },
}

/// Everything every test's server logged, at debug and above, formatted as text without
/// colours (a global subscriber: the servers run on several threads).
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_ansi(false)
            .with_writer(move || Writer(writer.clone()))
            .init();
        log
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log so far, as text.
fn logged() -> String {
    String::from_utf8_lossy(&log().lock().unwrap()).into_owned()
}

/// Waits until a line containing `marker` was logged, and returns every such line.
async fn lines_with(marker: &str) -> Vec<String> {
    within(&format!("a log line with {marker:?}"), async {
        loop {
            let lines: Vec<String> = logged()
                .lines()
                .filter(|line| line.contains(marker))
                .map(str::to_owned)
                .collect();
            if !lines.is_empty() {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn echo_server() -> Server {
    Echo::register(Server::new(), |h| {
        h.on_message(|conn, message| async move {
            conn.send(&message).await?;
            Ok(())
        })
    })
}

/// A forged line, an OSC 52 clipboard write and a screen clear, in one close reason.
async fn a_close_reason_cannot_forge_a_log_line(backend: Backend) {
    let _ = log();
    let server = Served::start_on(backend, echo_server()).await;
    let marker = format!("reason-{backend:?}");
    let reason = format!("{marker}\nINFO forged: admin logged in\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J");
    let mut socket = raw_connect(&server, "/echo/r").await;
    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: reason.as_str().into(),
        })))
        .await
        .unwrap();
    let _ = read_until_close(&mut socket).await;
    let lines = lines_with(&marker).await;
    let closed = lines
        .iter()
        .find(|line| line.contains("connection closed"))
        .unwrap_or_else(|| panic!("no close line: {lines:?}"));
    assert!(
        closed.contains(&format!(
            "{marker}\\nINFO forged: admin logged in\\u{{1b}}]52;c;ZXZpbA==\\u{{7}}\\u{{1b}}[2J"
        )),
        "{closed}"
    );
    let log = logged();
    assert!(!log.contains("\nINFO forged"), "a forged line reached the log");
    assert!(!log.contains('\u{1b}'), "an escape sequence reached the log");
}

/// serde quotes an unknown variant in its error; the connection's debug line carries it.
async fn a_decode_error_quoting_the_frame_is_escaped(backend: Backend) {
    let _ = log();
    let server = Served::start_on(backend, echo_server()).await;
    let marker = format!("variant-{backend:?}");
    let mut socket = raw_connect(&server, "/echo/r").await;
    let frame = format!(r#"{{"type":"{marker}\nFAKE LINE\u001b[31m"}}"#);
    socket.send(Message::text(frame)).await.unwrap();
    let (_, close) = read_until_close(&mut socket).await;
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1007));
    let lines = lines_with(&marker).await;
    assert!(
        lines
            .iter()
            .any(|line| line.contains(&format!("{marker}\\nFAKE LINE\\u{{1b}}[31m"))),
        "{lines:?}"
    );
    let log = logged();
    assert!(!log.contains("\nFAKE LINE"), "a forged line reached the log");
    assert!(!log.contains('\u{1b}'), "an escape sequence reached the log");
}
