//! The chat example (`examples/chat/`) as its users meet it: its server and its terminal client
//! run as real processes over loopback.
//!
//! `cargo test --workspace` builds the example program before running these; a run narrowed
//! with `-p ws-channels-tests --test chat_example` does not, so build it first
//! (`cargo build -p ws-channels-examples --example chat`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use ws_channels::ClientSocket;
use ws_channels_tests::{
    Component, RedisServer, Running, example, handshake_status_at, raw_http, read_until_close, require, within,
};

/// The chat example's program, logging plain lines whatever the caller's settings: the tests
/// read what the server logs.
fn chat() -> Command {
    let mut command = example("chat");
    command.env("RUST_LOG", "info");
    command
}

/// Forwards each line `from` writes (as bytes: what a terminal would be sent) until it ends.
fn lines_of(from: impl std::io::Read + Send + 'static) -> UnboundedReceiver<Vec<u8>> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        let mut from = BufReader::new(from);
        loop {
            let mut line = Vec::new();
            match from.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Reads lines until one contains `wanted`; every line read is kept in `seen`.
async fn line_with(lines: &mut UnboundedReceiver<Vec<u8>>, wanted: &str, seen: &mut Vec<Vec<u8>>) {
    let waited = tokio::time::timeout(ws_channels_tests::STEP, async {
        while let Some(line) = lines.recv().await {
            let found = String::from_utf8_lossy(&line).contains(wanted);
            seen.push(line);
            if found {
                return true;
            }
        }
        false
    })
    .await;
    if waited != Ok(true) {
        let seen: Vec<_> = seen.iter().map(|line| String::from_utf8_lossy(line)).collect();
        panic!("no line with {wanted:?}; read so far:\n{}", seen.concat());
    }
}

/// A chat server on `127.0.0.1:0` with `args` after the address, its address, and the lines
/// it logs (stderr).
async fn start_chat(args: &[&str]) -> (Running, SocketAddr, UnboundedReceiver<Vec<u8>>) {
    let mut child = chat()
        .arg("127.0.0.1:0")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the chat example");
    // Both pipes are read to their end: a full or closed pipe would fail the server's writes.
    let mut stdout = lines_of(child.stdout.take().expect("piped stdout"));
    let logs = lines_of(child.stderr.take().expect("piped stderr"));
    let running = Running(child);
    let mut seen = Vec::new();
    line_with(&mut stdout, "listening on ws://", &mut seen).await;
    let printed = String::from_utf8_lossy(seen.last().expect("the line just read")).into_owned();
    let addr = printed
        .trim()
        .trim_start_matches("listening on ws://")
        .parse()
        .unwrap_or_else(|e| panic!("{printed:?}: {e}"));
    tokio::spawn(async move { while stdout.recv().await.is_some() {} });
    (running, addr, logs)
}

async fn join(addr: SocketAddr, name: &str) -> ClientSocket {
    let url = format!("ws://{addr}/chat/lobby?name={name}");
    let (socket, _) = within("join the chat", tokio_tungstenite::connect_async(url.as_str()))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    socket
}

async fn say(socket: &mut ClientSocket, text: &str) {
    use futures_util::SinkExt;
    let frame = serde_json::json!({ "type": "say", "text": text }).to_string();
    within("say", socket.send(tokio_tungstenite::tungstenite::Message::text(frame)))
        .await
        .expect("send");
}

/// Waits up to a step for the process to exit by itself.
async fn exit_status(process: &mut Running) -> std::process::ExitStatus {
    within("the process to exit", async {
        loop {
            if let Some(status) = process.0.try_wait().expect("wait for the process") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_name_with_a_control_character_is_refused_with_400() {
    let (_server, addr, _logs) = start_chat(&[]).await;
    for name in [
        "a%1Bb",
        "a%0Ab",
        "a%0D%0A%3Calice%3E",
        "a%C2%9Bb",
        "a%E2%80%AEb",
        "a%7Fb",
    ] {
        assert_eq!(
            handshake_status_at(addr, &format!("/chat/lobby?name={name}"), &[]).await,
            400,
            "?name={name}"
        );
    }
    // The same rule for a name that comes with a token.
    assert_eq!(
        handshake_status_at(addr, "/chat/lobby?token=demo-token-a%1Bb", &[]).await,
        400
    );
    // Whitespace around a name is trimmed, as before; other scripts are names.
    for name in ["ann", "%20ann%0A", "Zo%C3%AB"] {
        assert_eq!(
            handshake_status_at(addr, &format!("/chat/lobby?name={name}"), &[]).await,
            101,
            "?name={name}"
        );
    }
}

#[tokio::test]
async fn the_terminal_client_prints_others_control_characters_escaped() {
    let (_server, addr, _logs) = start_chat(&[]).await;
    let mut client = chat()
        .args(["--client", &format!("ws://{addr}"), "--room", "lobby", "--name", "bot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the terminal client");
    let stdin = client.stdin.take().expect("piped stdin");
    let mut printed = lines_of(client.stdout.take().expect("piped stdout"));
    let mut client = Running(client);
    let mut seen = Vec::new();
    line_with(&mut printed, "* connected to lobby as bot", &mut seen).await;

    let mut mallory = join(addr, "mallory").await;
    line_with(&mut printed, "* mallory joined", &mut seen).await;
    // The clipboard, the window title, the screen, a forged line from alice, a C1 CSI and a
    // right-to-left override, all in one message.
    say(
        &mut mallory,
        "\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}]0;owned\u{7}\u{1b}[2Jhi\n<alice> my password is hunter2\r\u{9b}31m\u{202e}olleh",
    )
    .await;
    say(&mut mallory, "done").await;
    line_with(&mut printed, "<mallory> done", &mut seen).await;

    // End of input: the client closes and exits; everything it printed has been read.
    drop(stdin);
    assert!(exit_status(&mut client).await.success());
    while let Some(line) = printed.recv().await {
        seen.push(line);
    }
    let output: Vec<u8> = seen.concat();
    let text = String::from_utf8(output.clone()).expect("the client prints UTF-8");
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && !ws_channels::Escaped(c.to_string()).is_plain())
        .collect();
    assert!(
        raw.is_empty(),
        "raw control characters reached the terminal: {raw:?}\n{text}"
    );
    assert!(
        !text.lines().any(|line| line.starts_with("<alice>")),
        "a forged line:\n{text}"
    );
    let said = text
        .lines()
        .find(|line| line.contains("owned"))
        .unwrap_or_else(|| panic!("mallory's message not printed:\n{text}"));
    assert_eq!(
        said,
        r"<mallory> \u{1b}]52;c;cHduZWQ=\u{7}\u{1b}]0;owned\u{7}\u{1b}[2Jhi\n<alice> my password is hunter2\r\u{9b}31m\u{202e}olleh"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    let (mut server, addr, _logs) = start_chat(&[]).await;
    let mut ann = join(addr, "ann").await;
    let terminated = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(terminated.success(), "kill -TERM: {terminated}");
    let (_, close) = read_until_close(&mut ann).await;
    let code = close.map(|frame| u16::from(frame.code));
    assert_eq!(
        code,
        Some(1001),
        "ann's close frame (none: the process died without one)"
    );
    let status = exit_status(&mut server).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn room_counts_during_a_redis_outage_log_no_line_per_request() {
    if !require(&[Component::Redis]) {
        return;
    }
    let mut redis = RedisServer::start().await;
    let (_server, addr, mut logs) = start_chat(&["--redis", &redis.url()]).await;
    let ann = join(addr, "ann").await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut seen = Vec::new();

    redis.kill();
    line_with(&mut logs, "redis backplane down", &mut seen).await;
    within("the node to report itself not ready", async {
        while raw_http(addr, &get("/ready")).await.0 != 503 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    const REQUESTS: usize = 20;
    for _ in 0..REQUESTS {
        let (status, response) = raw_http(addr, &get("/rooms/lobby")).await;
        assert_eq!(status, 200, "{response}");
        assert!(response.ends_with(r#"{"room":"lobby","users":1}"#), "{response}");
    }
    // Each line is written before its response is sent; a marker line, logged after them all,
    // shows every earlier line has been read.
    drop(ann);
    line_with(&mut logs, "connection closed", &mut seen).await;
    let per_request = seen
        .iter()
        .filter(|line| String::from_utf8_lossy(line).contains("counting this node's users only"))
        .count();
    assert!(
        per_request <= 1,
        "{per_request} warnings for {REQUESTS} requests: the hub already said the backplane is down"
    );
}
