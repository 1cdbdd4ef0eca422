//! Sessions (the Centrifugo client protocol v2, JSON) over real loopback sockets: the connect
//! reply, the `ping` command, the protocol's pings, and every connection-level refusal with its
//! close code, from a raw WebSocket client; then the real SDK (`centrifuge@5.8.0` on Node)
//! connecting and being refused.
//!
//! The raw-socket tests run against both front ends (standalone and axum): the sessions
//! endpoint is one more route of the router, served alike by both.

// Test helpers too report failure by panicking.
#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_channels::tungstenite::Message;
use ws_channels::{Channel, ClientSocket, ConnectRequest, Identity, Server, SessionReject, Sessions, channel};
use ws_channels_tests::{
    Backend, Component, Running, Served, next_text, node_project, raw_connect, read_until_close, require, within,
};

/// A direct channel served beside the sessions.
#[channel("echo/<room>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Echo {
    text: String,
}

/// The test hook: the token says what to answer.
async fn authenticate(connect: ConnectRequest) -> Result<Identity<String>, SessionReject> {
    let token = connect.token().to_owned();
    match token.as_str() {
        "ann" => Ok(Identity::new("ann", "Ann".to_owned()).reply_data(&json!({"motd": "hi"}))),
        "invalid" => Err(SessionReject::invalid_token()),
        "expired" => Err(SessionReject::token_expired()),
        "forbidden" => Err(SessionReject::forbidden()),
        "later" => Err(SessionReject::temporary("try later")),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Identity::new("slow", String::new()))
        }
        "panic" => panic!("the hook fails"),
        _ => Err(SessionReject::unauthorized("unknown user")),
    }
}

/// Echo at `echo/<room>` and sessions at `/connection/websocket`, shaped by `sessions`.
fn server(sessions: impl FnOnce(Sessions) -> Sessions) -> Server {
    Echo::register(Server::new(), |h| {
        h.on_message(|conn, msg| async move {
            conn.send(&msg).await?;
            Ok(())
        })
    })
    .sessions(sessions(Sessions::new().authenticate(authenticate)))
}

const PATH: &str = "/connection/websocket";

async fn send(socket: &mut ClientSocket, text: &str) {
    within("send", socket.send(Message::Text(text.into()))).await.unwrap();
}

async fn next_json(socket: &mut ClientSocket) -> Value {
    let text = next_text(socket).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Reads to the end; the server's close code and reason (panics without a close frame).
async fn close_of(socket: &mut ClientSocket) -> (u16, String) {
    let (_, close) = read_until_close(socket).await;
    let close = close.expect("a close frame");
    (u16::from(close.code), close.reason.to_string())
}

/// A session that sent `connect` with `token`, and the reply.
async fn connected(served: &Served, token: &str) -> (ClientSocket, Value) {
    let mut socket = raw_connect(served, PATH).await;
    send(
        &mut socket,
        &format!(r#"{{"connect":{{"token":"{token}","name":"js"}},"id":1}}"#),
    )
    .await;
    let reply = next_json(&mut socket).await;
    (socket, reply)
}

ws_channels_tests::on_both_backends!(
    the_connect_reply_has_the_protocol_shape,
    the_ping_command_is_answered_and_channel_commands_are_not_available,
    a_refused_connect_makes_the_session_unusable,
    refusals_map_to_their_codes,
    bad_input_closes_with_3501,
    no_connect_in_time_closes_with_3502,
    protobuf_clients_are_closed_with_3506,
    a_direct_channel_works_beside_the_sessions,
    a_shutdown_closes_sessions_with_3001,
    a_session_that_does_not_read_is_closed_with_3008,
);

async fn a_shutdown_closes_sessions_with_3001(backend: Backend) {
    let mut served = Served::start_on(backend, server(|s| s)).await;
    let (mut socket, reply) = connected(&served, "ann").await;
    assert!(reply.get("connect").is_some(), "{reply}");
    let stopped = served.begin_shutdown();
    assert_eq!(close_of(&mut socket).await, (3001, "shutdown".to_owned()));
    within("the shutdown", stopped).await.unwrap().unwrap();
}

async fn a_session_that_does_not_read_is_closed_with_3008(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s.max_queued_bytes(1024))).await;
    let (mut socket, _) = connected(&served, "ann").await;
    // 200 replies of about 20 bytes, queued in one turn of the session's task: over 1 KiB
    // before its writer could send them.
    let frame: Vec<String> = (2..202).map(|id| format!(r#"{{"id":{id},"ping":{{}}}}"#)).collect();
    send(&mut socket, &frame.join("\n")).await;
    let (texts, close) = read_until_close(&mut socket).await;
    let close = close.expect("a close frame");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (3008, "slow"));
    let answered: usize = texts.iter().map(|text| text.lines().count()).sum();
    assert!(answered < 200, "closed before all its replies: {answered}");
}

async fn the_connect_reply_has_the_protocol_shape(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s)).await;
    let (_socket, reply) = connected(&served, "ann").await;
    let client = reply["connect"]["client"].as_str().unwrap().to_owned();
    assert!(!client.is_empty(), "{reply}");
    assert_eq!(
        reply,
        json!({"id": 1, "connect": {
            "client": client,
            "version": "0.1.0",
            "data": {"motd": "hi"},
            "ping": 25,
            "pong": true,
        }})
    );
    // Without a hook, anyone connects.
    let anonymous = Served::start_on(backend, Server::new().sessions(Sessions::new())).await;
    let (_socket, reply) = connected(&anonymous, "").await;
    assert_eq!(reply["connect"]["pong"], json!(true), "{reply}");
}

async fn the_ping_command_is_answered_and_channel_commands_are_not_available(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s)).await;
    let (mut socket, _) = connected(&served, "ann").await;
    send(&mut socket, r#"{"id":2,"ping":{}}"#).await;
    assert_eq!(next_json(&mut socket).await, json!({"id": 2, "ping": {}}));
    // Two commands in a frame: two replies, in order; `send` and the pong get none.
    send(
        &mut socket,
        "{\"id\":3,\"history\":{\"channel\":\"echo/a\",\"limit\":10}}\n{\"send\":{\"data\":{}}}\n{}\n{\"id\":4,\"ping\":{}}",
    )
    .await;
    assert_eq!(
        replies(&mut socket, 2).await,
        [
            json!({"id": 3, "error": {"code": 108, "message": "not available"}}),
            json!({"id": 4, "ping": {}}),
        ]
    );
    // The commands of later releases (history, presence, rpc, refreshes) are not available;
    // `subscribe`, `unsubscribe` and `publish` are (see the subscription tests below).
    let later = [
        r#"{"id":5,"presence":{"channel":"echo/a"}}"#,
        r#"{"id":6,"presence_stats":{"channel":"echo/a"}}"#,
        r#"{"id":7,"rpc":{"method":"m","data":{}}}"#,
        r#"{"id":8,"sub_refresh":{"channel":"echo/a","token":"t"}}"#,
        r#"{"id":9,"refresh":{"token":"ann"}}"#,
    ];
    send(&mut socket, &later.join("\n")).await;
    let not_available: Vec<Value> = (5..10)
        .map(|id| json!({"id": id, "error": {"code": 108, "message": "not available"}}))
        .collect();
    assert_eq!(replies(&mut socket, 5).await, not_available);
    send(&mut socket, r#"{"id":10,"ping":{}}"#).await;
    assert_eq!(next_json(&mut socket).await, json!({"id": 10, "ping": {}}));
}

/// The next `n` replies: a frame may hold several, one per line (the server joins the replies
/// it has queued together, as Centrifugo does).
async fn replies(socket: &mut ClientSocket, n: usize) -> Vec<Value> {
    let mut replies = Vec::new();
    while replies.len() < n {
        let text = next_text(socket).await;
        for line in text.split('\n') {
            replies.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}")));
        }
    }
    replies
}

async fn a_refused_connect_makes_the_session_unusable(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s)).await;
    let (mut socket, reply) = connected(&served, "bob").await;
    assert_eq!(
        reply,
        json!({"id": 1, "error": {"code": 101, "message": "unknown user"}})
    );
    send(&mut socket, r#"{"id":2,"ping":{}}"#).await;
    assert_eq!(close_of(&mut socket).await, (3501, "bad request".to_owned()));
}

async fn refusals_map_to_their_codes(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s.command_timeout(Duration::from_millis(300)))).await;
    let mut socket = connecting(&served, "invalid").await;
    assert_eq!(close_of(&mut socket).await, (3500, "invalid token".to_owned()));
    let mut socket = connecting(&served, "forbidden").await;
    assert_eq!(close_of(&mut socket).await, (3507, "permission denied".to_owned()));
    let (_, reply) = connected(&served, "expired").await;
    assert_eq!(
        reply,
        json!({"id": 1, "error": {"code": 109, "message": "token expired"}})
    );
    let (_, reply) = connected(&served, "later").await;
    assert_eq!(
        reply,
        json!({"id": 1, "error": {"code": 100, "message": "try later", "temporary": true}})
    );
    for token in ["panic", "slow"] {
        let (_, reply) = connected(&served, token).await;
        assert_eq!(
            reply,
            json!({"id": 1, "error": {"code": 100, "message": "internal server error", "temporary": true}}),
            "{token}"
        );
    }
}

/// A session that sent `connect` with `token`, its reply (if any) left unread.
async fn connecting(served: &Served, token: &str) -> ClientSocket {
    let mut socket = raw_connect(served, PATH).await;
    send(&mut socket, &format!(r#"{{"connect":{{"token":"{token}"}},"id":1}}"#)).await;
    socket
}

async fn bad_input_closes_with_3501(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s.max_commands_per_frame(4))).await;
    let bad_request = (3501, "bad request".to_owned());
    let before_connect = [
        "not json",
        "[1,2]",
        r#"{"id":1,"ping":{}}"#,
        r#"{"id":1,"nope":{}}"#,
        "{\"id\":1,\"connect\":{}}\n\n{\"id\":2,\"ping\":{}}",
        // Over the limit of 4: nothing of it is handled, not even the connect.
        "{\"id\":1,\"connect\":{}}\n{}\n{}\n{}\n{}",
    ];
    for frame in before_connect {
        let mut socket = raw_connect(&served, PATH).await;
        send(&mut socket, frame).await;
        let (texts, close) = read_until_close(&mut socket).await;
        assert!(texts.is_empty(), "{frame:?}: {texts:?}");
        let close = close.expect("a close frame");
        assert_eq!(
            (u16::from(close.code), close.reason.to_string()),
            bad_request,
            "{frame:?}"
        );
    }
    // A second connect, and a binary frame, after a good one.
    let (mut socket, _) = connected(&served, "ann").await;
    send(&mut socket, r#"{"id":2,"connect":{"token":"ann"}}"#).await;
    assert_eq!(close_of(&mut socket).await, bad_request);
    let (mut socket, _) = connected(&served, "ann").await;
    within("send", socket.send(Message::Binary(vec![1, 2, 3].into())))
        .await
        .unwrap();
    assert_eq!(close_of(&mut socket).await, bad_request);
    // A frame over the server's message size: 1009, as on a channel.
    let (mut socket, _) = connected(&served, "ann").await;
    let huge = format!(r#"{{"id":2,"subscribe":{{"channel":"{}"}}}}"#, "x".repeat(70 * 1024));
    send(&mut socket, &huge).await;
    assert_eq!(close_of(&mut socket).await.0, 1009);
}

async fn no_connect_in_time_closes_with_3502(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s.connect_timeout(Duration::from_secs(1)))).await;
    let started = Instant::now();
    let mut socket = raw_connect(&served, PATH).await;
    assert_eq!(close_of(&mut socket).await, (3502, "stale".to_owned()));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}");
    // A connect in time stops that clock.
    let (mut socket, _) = connected(&served, "ann").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&mut socket, r#"{"id":2,"ping":{}}"#).await;
    assert_eq!(next_json(&mut socket).await, json!({"id": 2, "ping": {}}));
}

async fn protobuf_clients_are_closed_with_3506(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s)).await;
    let inappropriate = (3506, "inappropriate protocol".to_owned());
    let mut socket = raw_connect(&served, &format!("{PATH}?format=protobuf")).await;
    assert_eq!(close_of(&mut socket).await, inappropriate);
    // The SDK's subprotocol: upgraded without one (a raw request, since a WebSocket client
    // refuses an answer without the subprotocol it asked for), then the close frame.
    let (status, close) = within("a protobuf handshake", async {
        let mut tcp = tokio::net::TcpStream::connect(served.addr).await.unwrap();
        let request = format!(
            "GET {PATH} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: centrifuge-protobuf\r\n\r\n",
            served.addr
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 1024];
        // The head, then a close frame: 0x88, its length, the code, the reason.
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "ended after {:?}", String::from_utf8_lossy(&bytes));
            bytes.extend_from_slice(&buf[..n]);
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let frame = &bytes[end + 4..];
                if frame.len() >= 2 && frame.len() >= 2 + usize::from(frame[1]) {
                    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
                    return (head, frame[..2 + usize::from(frame[1])].to_vec());
                }
            }
        }
    })
    .await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    assert!(
        !status.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{status}"
    );
    assert_eq!(close[0], 0x88, "a close frame: {close:?}");
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 3506);
    assert_eq!(&close[4..], b"inappropriate protocol");
    // `centrifuge-json` is echoed.
    let request = {
        use ws_channels::tungstenite::client::IntoClientRequest;
        let mut request = format!("{}{PATH}", served.base()).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "centrifuge-json".parse().unwrap());
        request
    };
    let (_socket, response) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "centrifuge-json"
    );
}

async fn a_direct_channel_works_beside_the_sessions(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s)).await;
    let (_session, reply) = connected(&served, "ann").await;
    assert!(reply.get("connect").is_some(), "{reply}");
    let (client, mut events) = ws_channels::connect(&served.base(), &EchoParams::new("a"))
        .await
        .unwrap();
    client.send(&Echo { text: "hi".into() }).await.unwrap();
    let echoed = within("the echo", events.next()).await.unwrap().unwrap();
    assert_eq!(echoed.into_message(), Some(Echo { text: "hi".into() }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_counted_as_connections() {
    let server = server(|s| s);
    let metrics = server.metrics();
    let served = Served::start(server).await;
    let (mut socket, _) = connected(&served, "ann").await;
    within("the session to be counted", async {
        while metrics.snapshot().connections_open != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    socket.close(None).await.unwrap();
    let _ = read_until_close(&mut socket).await;
    within("the session to be uncounted", async {
        while metrics.snapshot().connections_open != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_pongs_is_closed_with_3012() {
    let served = Served::start(server(|s| {
        s.ping_interval(Duration::from_secs(1))
            .pong_timeout(Duration::from_millis(500))
    }))
    .await;
    let started = Instant::now();
    let (mut socket, reply) = connected(&served, "ann").await;
    assert_eq!(reply["connect"]["ping"], json!(1), "{reply}");
    let (texts, close) = read_until_close(&mut socket).await;
    assert_eq!(texts, ["{}"], "one ping, then the close");
    let close = close.expect("a close frame");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (3012, "no pong"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1400), "closed after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pongs_stays_connected() {
    let served = Served::start(server(|s| {
        s.ping_interval(Duration::from_secs(1))
            .pong_timeout(Duration::from_millis(500))
    }))
    .await;
    let (mut socket, _) = connected(&served, "ann").await;
    let until = Instant::now() + Duration::from_millis(3500);
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(until.into(), socket.next()).await {
        match frame {
            Some(Ok(Message::Text(text))) if text.as_str() == "{}" => {
                pings += 1;
                send(&mut socket, "{}").await;
            }
            other => panic!("expected pings only, got {other:?}"),
        }
    }
    assert!(pings >= 3, "{pings} pings in 3.5 s");
    send(&mut socket, r#"{"id":2,"ping":{}}"#).await;
    assert_eq!(next_json(&mut socket).await, json!({"id": 2, "ping": {}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centrifuge_sdk_connects_and_is_refused_for_good() {
    if !require(&[Component::Node]) {
        return;
    }
    let dir = tokio::task::spawn_blocking(node_project).await.unwrap();
    let served = Served::start(server(|s| s)).await;
    let mut child = Command::new("node")
        .arg("session_connect.mjs")
        .env("URL", format!("{}{PATH}", served.base()))
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().unwrap();
    // Killed when the test ends, however it ends (which also ends the reading thread).
    let _node = Running(child);
    let reading = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|line| serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect::<Vec<_>>()
    });
    let lines = match tokio::time::timeout(Duration::from_secs(30), reading).await {
        Ok(lines) => lines.unwrap(),
        Err(_) => panic!("the Node client did not finish in 30 s"),
    };
    let events: Vec<(&str, &str)> = lines
        .iter()
        .map(|line| (line["ev"].as_str().unwrap(), line["token"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        events,
        [
            ("connecting", "ann"),
            ("connected", "ann"),
            ("disconnected", "ann"),
            ("connecting", "bob"),
            ("disconnected", "bob"),
            ("quiet", "bob"),
        ],
        "{lines:#?}"
    );
    let connected = &lines[1];
    assert!(!connected["client"].as_str().unwrap().is_empty(), "{connected}");
    assert_eq!(connected["data"], json!({"motd": "hi"}));
    let refused = &lines[4];
    assert_eq!(refused["code"], json!(101), "{refused}");
    assert_eq!(lines[5]["connecting"], json!(0), "no reconnect attempt after a 101");
}
