//! The chat example (`examples/chat/`) as its users meet it: its server and its terminal client
//! run as real processes over loopback, and so do the Centrifugo SDK (`centrifuge` in Node)
//! and its sessions page in headless Chromium.
//!
//! `cargo test --workspace` builds the example program before running these; a run narrowed
//! with `-p ws-channels-tests --test chat_example` does not, so build it first
//! (`cargo build -p ws-channels-examples --example chat`).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use ws_channels::ClientSocket;
use ws_channels_tests::{
    Component, NodeScript, RedisServer, Running, example, handshake_status_at, next_text, node_project, raw_http,
    read_until_close, require, within,
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
    try_start_chat("127.0.0.1:0", args)
        .await
        .expect("the chat example prints `listening on ws://…` within a step")
}

/// A chat server listening on `bind`, with `args` after it: the process, the address it
/// printed and the lines it logs; `None` if it exits first (the address is taken) or prints
/// no address within a step.
async fn try_start_chat(bind: &str, args: &[&str]) -> Option<(Running, SocketAddr, UnboundedReceiver<Vec<u8>>)> {
    let mut child = chat()
        .arg(bind)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the chat example");
    // Both pipes are read to their end: a full or closed pipe would fail the server's writes.
    let mut stdout = lines_of(child.stdout.take().expect("piped stdout"));
    let logs = lines_of(child.stderr.take().expect("piped stderr"));
    let running = Running(child);
    let printed = tokio::time::timeout(ws_channels_tests::STEP, async {
        while let Some(line) = stdout.recv().await {
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(addr) = line.trim().strip_prefix("listening on ws://") {
                return Some(addr.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")));
            }
        }
        None
    })
    .await;
    let addr = printed.ok().flatten()?;
    tokio::spawn(async move { while stdout.recv().await.is_some() {} });
    Some((running, addr, logs))
}

/// Kills the chat server by its pid (SIGKILL: no close frame, as a crash) and starts it again
/// on the address it had. The port was free a moment ago, but a client's outgoing connection
/// may be given it as its own port for a while, so a failed start is tried again.
async fn restart_chat(server: &mut Running, addr: SocketAddr) -> UnboundedReceiver<Vec<u8>> {
    server.0.kill().expect("kill the chat example");
    server.0.wait().expect("reap the chat example");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((running, at, logs)) = try_start_chat(&addr.to_string(), &[]).await {
            assert_eq!(at, addr, "restarted on the same address");
            *server = running;
            return logs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chat example could not listen on {addr} again within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn join(addr: SocketAddr, name: &str) -> ClientSocket {
    join_room(addr, "lobby", name).await
}

/// A direct client of `chat/<room>` (a WebSocket of its own), named `name`.
async fn join_room(addr: SocketAddr, room: &str, name: &str) -> ClientSocket {
    let url = format!("ws://{addr}/chat/{room}?name={name}");
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

/// Reads a direct client's events until one is `user`'s message `text`, and returns it.
async fn message_from(socket: &mut ClientSocket, user: &str, text: &str) -> Value {
    within(&format!("{user}'s message {text:?}"), async {
        loop {
            let event: Value = serde_json::from_str(&next_text(socket).await).expect("a JSON event");
            if event["type"] == "message" && event["user"] == user && event["text"] == text {
                return event;
            }
        }
    })
    .await
}

/// `GET path` on the chat: the status and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (status, response) = raw_http(addr, &request).await;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    (status, body)
}

/// Polls `GET /rooms/<room>` (`room` as a URL path carries it) until it counts `users`.
async fn until_users(addr: SocketAddr, room: &str, users: usize) {
    within(&format!("{users} users in {room}"), async {
        loop {
            let (status, body) = http_get(addr, &format!("/rooms/{room}")).await;
            let counted: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if status == 200 && counted["users"] == json!(users) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
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

// Sessions: the Centrifugo client protocol at /connection/websocket (docs/design/sessions.md,
// B8 and B10), spoken by the real SDK.

/// An event of a chat room without its time: `(type, user, text)`.
fn event_of(data: &Value) -> (String, String, String) {
    let field = |name: &str| data[name].as_str().unwrap_or_default().to_owned();
    (field("type"), field("user"), field("text"))
}

/// The real SDK and the chat's notices (`tests/node/session_chat_notices.mjs`): the hook's
/// server-side subscription to `notices/ann` arrives as the client's own `subscribed` and
/// `publication` events (the welcome), and `POST /notices/ann`, which the chat publishes
/// through its hub, reaches the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centrifuge_sdk_gets_its_notices_from_a_server_side_subscription() {
    if !require(&[Component::Node]) {
        return;
    }
    let (_server, addr, mut _logs) = start_chat(&[]).await;
    let url = format!("ws://{addr}/connection/websocket");
    let mut node = NodeScript::start("session_chat_notices.mjs", url).await;
    let mut lines: Vec<Value> = Vec::new();
    let run = async {
        while let Some(event) = node.lines.recv().await {
            if event["ev"] == "ready" {
                let request = format!(
                    "POST /notices/ann HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nhello ann"
                );
                let (status, response) = raw_http(addr, &request).await;
                assert_eq!(status, 200, "{response}");
                assert!(response.ends_with(r#"{"delivered":1}"#), "{response}");
            }
            lines.push(event);
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), run).await.is_err() {
        panic!("the Node client did not finish in 30 s: {lines:#?}");
    }
    let status = node.exit_status().await;
    assert!(status.success(), "node: {status}: {lines:#?}");
    let events: Vec<(&str, &str)> = lines
        .iter()
        .map(|line| {
            (
                line["ev"].as_str().unwrap_or(""),
                line["channel"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("connected", ""),
            ("subscribed", "notices/ann"),
            ("publication", "notices/ann"),
            ("ready", ""),
            ("publication", "notices/ann"),
            ("done", ""),
        ],
        "{lines:#?}"
    );
    assert_eq!(lines[2]["data"], json!({"text": "welcome, ann"}));
    assert_eq!(lines[4]["data"], json!({"text": "hello ann"}));
}

/// The real SDK against the chat example (`tests/node/session_chat.mjs`, whose header says
/// what it does step by step): refused tokens are final, three rooms over one socket, a
/// publication's `data` is the very `ChatEvent` a direct client gets, direct clients and the
/// session hear each other, 107 for data that is no `ChatCommand`, silence after an
/// unsubscribe, and after the server is killed and started again, the SDK reconnects and
/// subscribes again by itself. This side acts on the script's cue lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centrifuge_sdk_chats_with_direct_clients_and_survives_a_restart() {
    if !require(&[Component::Node]) {
        return;
    }
    let (mut server, addr, mut _logs) = start_chat(&[]).await;
    let mut node = NodeScript::start("session_chat.mjs", format!("ws://{addr}/connection/websocket")).await;
    let mut lines: Vec<Value> = Vec::new();
    let mut bob = None;
    let mut bob_heard = None;
    let mut others = Vec::new();
    let run = async {
        while let Some(event) = node.lines.recv().await {
            lines.push(event.clone());
            match event["ev"].as_str() {
                Some("ready") => {
                    // One session, in three rooms: each counts it.
                    for room in ["lobby", "dev", "caf%C3%A9"] {
                        until_users(addr, room, 1).await;
                    }
                }
                Some("direct") => {
                    let mut socket = join_room(addr, "lobby", "bob").await;
                    say(&mut socket, "hello from bob").await;
                    bob = Some(socket);
                }
                Some("published") => {
                    let socket = bob.as_mut().expect("bob joined");
                    bob_heard = Some(message_from(socket, "ann", "hi bob").await);
                }
                Some("unsubscribed-dev") => {
                    // Once the session has left `chat/dev`, carol says something there (and
                    // hears it: it was broadcast), then bob says `last` in the lobby.
                    until_users(addr, "dev", 0).await;
                    let mut carol = join_room(addr, "dev", "carol").await;
                    say(&mut carol, "into the void").await;
                    message_from(&mut carol, "carol", "into the void").await;
                    say(bob.as_mut().expect("bob joined"), "last").await;
                    others.push(carol);
                }
                Some("restart") => {
                    _logs = restart_chat(&mut server, addr).await;
                    bob = None;
                    others.clear();
                }
                Some("resubscribed") => {
                    let mut dan = join_room(addr, "lobby", "dan").await;
                    say(&mut dan, "back again").await;
                    others.push(dan);
                }
                _ => {}
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(100), run).await.is_err() {
        panic!("the Node client did not finish in 100 s: {lines:#?}");
    }
    let status = node.exit_status().await;
    assert!(status.success(), "node: {status}: {lines:#?}");

    let of = |ev: &str| -> Vec<&Value> { lines.iter().filter(|line| line["ev"] == ev).collect() };
    // Refused tokens: error 101 with the chat's reason, final (no reconnect in 3 s).
    let refused: Vec<(&str, &Value, &str, &Value, &Value)> = of("refused")
        .iter()
        .map(|line| {
            let token = line["token"].as_str().unwrap_or_default();
            let reason = line["reason"].as_str().unwrap_or_default();
            (token, &line["code"], reason, &line["reconnects"], &line["state"])
        })
        .collect();
    let length = "the name must be 1 to 32 characters";
    let control = "the name must not contain control characters";
    let forty = "x".repeat(40);
    let (code, none, state) = (&json!(101), &json!(0), &json!("disconnected"));
    assert_eq!(
        refused,
        [
            ("", code, length, none, state),
            (" ", code, length, none, state),
            (forty.as_str(), code, length, none, state),
            ("a\u{1b}b", code, control, none, state),
        ],
        "{lines:#?}"
    );
    // Three rooms, one WebSocket.
    assert_eq!(of("ready")[0]["sockets"], json!(1), "{lines:#?}");
    assert_eq!(of("subscribed").len(), 5, "3, then 2 after the restart: {lines:#?}");
    assert!(of("sub-error").is_empty(), "{lines:#?}");

    let pubs = |channel: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|line| line["ev"] == "pub" && line["channel"] == channel)
            .map(|line| &line["data"])
            .collect()
    };
    let events = |channel: &str| -> Vec<(String, String, String)> { pubs(channel).into_iter().map(event_of).collect() };
    let ev = |kind: &str, user: &str, text: &str| (kind.to_owned(), user.to_owned(), text.to_owned());
    assert_eq!(
        events("chat/lobby"),
        [
            ev("joined", "bob", ""),
            ev("message", "bob", "hello from bob"),
            ev("message", "ann", "hi bob"),
            ev("message", "bob", "last"),
            ev("joined", "dan", ""),
            ev("message", "dan", "back again"),
        ],
        "{lines:#?}"
    );
    assert_eq!(events("chat/dev"), [ev("message", "ann", "hi from ann")], "{lines:#?}");
    assert_eq!(
        events("chat/caf%C3%A9"),
        [ev("message", "ann", "after restart")],
        "{lines:#?}"
    );
    // A publication's data is the event a direct client gets: the same broadcast, to the
    // millisecond of its `ts`, and nothing more.
    let hi_bob = pubs("chat/lobby")[2];
    assert_eq!(Some(hi_bob), bob_heard.as_ref(), "{lines:#?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let ts = u128::from(hi_bob["ts"].as_u64().expect("a numeric ts"));
    assert!(now.abs_diff(ts) < 120_000, "ts {ts}, now {now}");
    assert_eq!(
        hi_bob
            .as_object()
            .map(|event| event.keys().cloned().collect::<Vec<_>>()),
        Some(["text", "ts", "type", "user"].map(str::to_owned).to_vec())
    );

    // Data that is no `ChatCommand`: 107, with what is wrong.
    let errors: Vec<(&str, &Value)> = of("publish-error")
        .iter()
        .map(|line| (line["kind"].as_str().unwrap_or_default(), &line["code"]))
        .collect();
    assert_eq!(
        errors,
        [("unknown type", &json!(107)), ("not an object", &json!(107))],
        "{lines:#?}"
    );
    let unknown = of("publish-error")[0]["message"].as_str().unwrap_or_default();
    assert!(unknown.contains("unknown variant `shout`"), "{unknown}");
    // Nothing of `chat/dev` on the socket after its unsubscribe.
    assert_eq!(of("silence")[0]["devAfter"], json!([]), "{lines:#?}");
    // The restart: the SDK reconnected (a second socket) and resubscribed what it had, but
    // not the room it had left.
    let resubscribed = of("resubscribed")[0];
    assert_eq!(resubscribed["sockets"], json!(2), "{lines:#?}");
    assert_eq!(resubscribed["dev"], json!("unsubscribed"), "{lines:#?}");
    assert_eq!(of("done").len(), 1, "{lines:#?}");
}

/// The sessions page (`/sessions.html`, `tests/node/browser_session_chat.mjs`) in headless
/// Chromium: in two rooms over one WebSocket, talking with direct clients in each, rejoining
/// both by itself after the server is killed and started again, leaving a room, and showing
/// the server's reason for a refused name without retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_page_chats_in_two_rooms_over_one_session_across_a_restart() {
    if !require(&[Component::Node, Component::Chromium]) {
        return;
    }
    let dir = tokio::task::spawn_blocking(node_project)
        .await
        .expect("the Node project");
    let chromium = ws_channels_tests::chromium().expect("require found Chromium");
    let (mut server, addr, mut _logs) = start_chat(&[]).await;
    let mut child = Command::new("node")
        .arg("browser_session_chat.mjs")
        .arg(format!("http://{addr}"))
        .env("CHROMIUM", chromium)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut out = lines_of(child.stdout.take().expect("piped stdout"));
    let mut err = lines_of(child.stderr.take().expect("piped stderr"));
    let mut browser = Running(child);
    let mut printed = String::new();
    let run = async {
        while let Some(line) = out.recv().await {
            let line = String::from_utf8_lossy(&line).into_owned();
            printed.push_str(&line);
            if line.trim() == "restart server" {
                _logs = restart_chat(&mut server, addr).await;
                writeln!(stdin, "restarted").expect("tell the script");
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(120), run).await.is_ok();
    let status = match finished {
        true => Some(exit_status(&mut browser).await),
        false => None,
    };
    let mut errors = String::new();
    while let Ok(line) = err.try_recv() {
        errors.push_str(&String::from_utf8_lossy(&line));
    }
    assert!(
        status.is_some_and(|status| status.success()),
        "the browser script: {status:?}\n{printed}\n{errors}"
    );
    assert_eq!(printed.matches("restart server").count(), 1, "{printed}");
    assert!(
        printed.contains("browser session chat: all checks passed"),
        "{printed}\n{errors}"
    );
}

/// The page loads the SDK from the chat itself: `/centrifuge.js` is the pinned package's
/// browser build (`tests/node`, `centrifuge` 5.8.0), under its license notice.
#[tokio::test]
async fn the_sessions_page_and_the_vendored_sdk_are_served() {
    let (_server, addr, _logs) = start_chat(&[]).await;
    let (status, page) = http_get(addr, "/sessions.html").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<script src="/centrifuge.js"></script>"#), "{page}");
    let (status, served) = http_get(addr, "/centrifuge.js").await;
    assert_eq!(status, 200);
    let (notice, bundle) = served.split_once(" */\n").expect("a license notice first");
    assert!(
        notice.contains("The MIT License (MIT)") && notice.contains("Copyright (c) 2023 Centrifugal Labs LTD"),
        "{notice}"
    );
    if !require(&[Component::Node]) {
        return;
    }
    let dir = tokio::task::spawn_blocking(node_project)
        .await
        .expect("the Node project");
    let package = dir.join("node_modules/centrifuge");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(package.join("package.json")).expect("the package's manifest"))
            .expect("JSON");
    assert_eq!(manifest["version"], "5.8.0");
    assert!(notice.contains("centrifuge 5.8.0"), "{notice}");
    let pinned = std::fs::read_to_string(package.join("dist/centrifuge.js")).expect("the package's browser build");
    // The one change: no source map comment (the map is not served).
    let pinned: String = pinned
        .lines()
        .filter(|line| !line.starts_with("//# sourceMappingURL="))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        bundle == pinned,
        "examples/chat/centrifuge.js is not the pinned package's dist/centrifuge.js"
    );
}

/// The messages of a session's next frame (replies are joined one per line), skipping pings.
async fn session_messages(socket: &mut ClientSocket) -> Vec<Value> {
    loop {
        let frame = next_text(socket).await;
        let messages: Vec<Value> = frame
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .filter(|message: &Value| message != &json!({}))
            .collect();
        if !messages.is_empty() {
            return messages;
        }
    }
}

/// A session on one node and a direct client on another, in one room, hear each other
/// through Redis (the session speaks the protocol's JSON itself here, as the SDK would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_a_direct_client_chat_across_nodes_through_redis() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    if !require(&[Component::Redis]) {
        return;
    }
    let redis = RedisServer::start().await;
    let url = redis.url();
    let (_one, one, _one_logs) = start_chat(&["--redis", &url]).await;
    let (_two, two, _two_logs) = start_chat(&["--redis", &url]).await;
    let sessions = format!("ws://{one}/connection/websocket");
    let (mut ann, _) = within("a session", tokio_tungstenite::connect_async(sessions.as_str()))
        .await
        .expect("open a session");
    // connect and subscribe in one frame, as the SDK sends them.
    let hello = "{\"id\":1,\"connect\":{\"token\":\"ann\",\"name\":\"js\"}}\n{\"id\":2,\"subscribe\":{\"channel\":\"chat/lobby\",\"flag\":1}}";
    ann.send(Message::text(hello)).await.expect("send");
    let mut replies = Vec::new();
    within("the connect and subscribe replies", async {
        while replies.len() < 3 {
            replies.extend(session_messages(&mut ann).await);
        }
    })
    .await;
    assert!(replies[0]["connect"]["client"].is_string(), "{replies:?}");
    // The server-side subscription to ann's notices, and its welcome, come with the connect.
    assert_eq!(replies[0]["connect"]["subs"], json!({"notices/ann": {}}), "{replies:?}");
    let welcome = json!({"push": {"channel": "notices/ann", "pub": {"data": {"text": "welcome, ann"}}}});
    assert_eq!(replies[1], welcome);
    assert_eq!(replies[2], json!({"id": 2, "subscribe": {}}));

    let mut bob = join_room(two, "lobby", "bob").await;
    for node in [one, two] {
        until_users(node, "lobby", 2).await;
    }
    // Subscriptions across nodes settle in a moment: bob says hello until ann hears one.
    let pub_of = |message: &Value| message["push"]["pub"]["data"].clone();
    let mut hello = 0;
    let heard = within("cross-node chat", async {
        loop {
            hello += 1;
            say(&mut bob, &format!("hello {hello}")).await;
            let next = async {
                loop {
                    for message in session_messages(&mut ann).await {
                        let data = pub_of(&message);
                        if data["type"] == "message" && data["user"] == "bob" {
                            return message;
                        }
                    }
                }
            };
            if let Ok(message) = tokio::time::timeout(Duration::from_millis(300), next).await {
                return message;
            }
        }
    })
    .await;
    assert_eq!(heard["push"]["channel"], "chat/lobby", "{heard}");
    assert!(
        pub_of(&heard)["text"]
            .as_str()
            .is_some_and(|text| text.starts_with("hello ")),
        "{heard}"
    );

    // The session publishes: bob, on the other node, gets ann's message.
    let publish = json!({"id": 3, "publish": {"channel": "chat/lobby", "data": {"type": "say", "text": "hi bob"}}});
    ann.send(Message::text(publish.to_string())).await.expect("send");
    let got = message_from(&mut bob, "ann", "hi bob").await;
    // Her own copy, on her node, is the same event.
    let mine = within("ann's own message", async {
        loop {
            for message in session_messages(&mut ann).await {
                if pub_of(&message)["user"] == "ann" {
                    return pub_of(&message);
                }
            }
        }
    })
    .await;
    assert_eq!(mine, got);
    drop(redis);
}
