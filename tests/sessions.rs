//! Sessions (the Centrifugo client protocol v2, JSON) over real loopback sockets: the connect
//! reply, the `ping` command, the protocol's pings, and every connection-level refusal with its
//! close code, from a raw WebSocket client; subscriptions to the server's channels (subscribe,
//! publish, unsubscribe, every command-level refusal with its code, the scoped `Conn`, direct
//! clients and sessions hearing each other, lag isolation, `on_close`); then the real SDK
//! (`centrifuge@5.8.0` on Node) connecting and being refused, and subscribed to three channels.
//!
//! The raw-socket tests run against both front ends (standalone and axum): the sessions
//! endpoint is one more route of the router, served alike by both.

// Test helpers too report failure by panicking.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_channels::http::StatusCode;
use ws_channels::tungstenite::Message;
use ws_channels::{
    Channel, ClientSocket, CloseCode, ConnId, ConnectRequest, Handler, Identity, RateLimit, RateLimitAction, Reject,
    Server, SessionReject, Sessions, TokenSource, channel,
};
use ws_channels_tests::{
    Backend, Component, NodeScript, Served, handshake_status, next_text, raw_connect, read_until_close, require, within,
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
            // A handler that takes its time (2.5 s).
            if msg.text == "slow" {
                tokio::time::sleep(Duration::from_millis(2500)).await;
            }
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
    hostile_command_streams_get_their_documented_outcome,
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
    // The commands of later releases (presence, rpc, subscription refreshes) are not
    // available; `subscribe`, `unsubscribe`, `publish` and `refresh` are (see below).
    let later = [
        r#"{"id":5,"presence":{"channel":"echo/a"}}"#,
        r#"{"id":6,"presence_stats":{"channel":"echo/a"}}"#,
        r#"{"id":7,"rpc":{"method":"m","data":{}}}"#,
        r#"{"id":8,"sub_refresh":{"channel":"echo/a","token":"t"}}"#,
    ];
    send(&mut socket, &later.join("\n")).await;
    let not_available: Vec<Value> = (5..9)
        .map(|id| json!({"id": id, "error": {"code": 108, "message": "not available"}}))
        .collect();
    assert_eq!(replies(&mut socket, 4).await, not_available);
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

/// A session whose connect was refused and that stays silent is closed as stale: it cannot
/// hold its connection slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_that_stays_is_closed_as_stale() {
    let served = Served::start(server(|s| s.connect_timeout(Duration::from_millis(300)))).await;
    let (mut socket, reply) = connected(&served, "nobody").await;
    assert_eq!(reply["error"]["code"], json!(101), "{reply}");
    assert_eq!(close_of(&mut socket).await, (3502, "stale".to_owned()));
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

/// The hostile inputs of the issue, each with its documented outcome: reused ids are
/// answered as any; 10 000 subscribes get 128 subscriptions and 106 for the rest, the session
/// staying; 1 000 commands in one frame (over the default 256) close with 3501, as does a
/// subscribe without a channel; a 1 MiB channel name closes with 1009.
async fn hostile_command_streams_get_their_documented_outcome(backend: Backend) {
    let served = Served::start_on(backend, server(|s| s)).await;
    let (mut socket, _) = connected(&served, "ann").await;
    send(&mut socket, "{\"id\":7,\"ping\":{}}\n{\"id\":7,\"ping\":{}}").await;
    assert_eq!(
        replies(&mut socket, 2).await,
        [json!({"id": 7, "ping": {}}), json!({"id": 7, "ping": {}})]
    );
    let (mut subscribed, mut limited) = (0, 0);
    for frame in 0..40 {
        let commands: Vec<String> = (0..250)
            .map(|n| {
                let id = 100 + frame * 250 + n;
                format!(r#"{{"id":{id},"subscribe":{{"channel":"echo/r{id}"}}}}"#)
            })
            .collect();
        send(&mut socket, &commands.join("\n")).await;
        for reply in replies(&mut socket, 250).await {
            match reply["error"]["code"].as_u64() {
                None if reply["subscribe"].is_object() => subscribed += 1,
                Some(106) => limited += 1,
                _ => panic!("unexpected: {reply}"),
            }
        }
    }
    assert_eq!((subscribed, limited), (128, 10_000 - 128));
    send(&mut socket, r#"{"id":2,"ping":{}}"#).await;
    assert_eq!(next_json(&mut socket).await, json!({"id": 2, "ping": {}}));

    let thousand: Vec<&str> = vec![r#"{"id":3,"ping":{}}"#; 1000];
    send(&mut socket, &thousand.join("\n")).await;
    assert_eq!(close_of(&mut socket).await, (3501, "bad request".to_owned()));

    for nameless in [
        r#"{"id":2,"subscribe":{}}"#,
        r#"{"id":2,"unsubscribe":{}}"#,
        r#"{"id":2,"publish":{"data":{}}}"#,
    ] {
        let (mut socket, _) = connected(&served, "ann").await;
        send(&mut socket, nameless).await;
        assert_eq!(
            close_of(&mut socket).await,
            (3501, "bad request".to_owned()),
            "{nameless}"
        );
    }

    // Over twice the message size, the protocol layer closes with 1009 without reading on: a
    // client still writing may see its connection reset before it reads the close frame.
    let (mut socket, _) = connected(&served, "ann").await;
    let huge = format!(r#"{{"id":2,"subscribe":{{"channel":"{}"}}}}"#, "x".repeat(1 << 20));
    let _ = within("send", socket.send(Message::Text(huge.into()))).await;
    if let (_, Some(close)) = read_until_close(&mut socket).await {
        assert_eq!(u16::from(close.code), 1009);
    }
    let (_socket, reply) = connected(&served, "ann").await;
    assert!(reply["connect"].is_object(), "the server goes on: {reply}");
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
    // The first ping within [½, 1) of the interval (jittered), then the pong timeout.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1000), "closed after {waited:?}");
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

/// A handler running past a ping and its pong timeout does not close the session with 3012
/// (while it runs, frames are not read, so the client's pong waits unread), as on a
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_handler_does_not_make_the_session_miss_its_pongs() {
    let served = Served::start(server(|s| {
        s.ping_interval(Duration::from_secs(1))
            .pong_timeout(Duration::from_millis(500))
    }))
    .await;
    let (mut socket, _) = connected(&served, "ann").await;
    let commands = [
        r#"{"id":2,"subscribe":{"channel":"echo/a"}}"#,
        r#"{"id":3,"publish":{"channel":"echo/a","data":{"text":"slow"}}}"#,
    ];
    send(&mut socket, &commands.join("\n")).await;
    let mut seen = Vec::new();
    while !seen.contains(&json!({"id": 3, "publish": {}})) {
        let text = within("the publish reply", socket.next()).await;
        let Some(Ok(Message::Text(text))) = text else {
            panic!("the session ended: {text:?} after {seen:?}");
        };
        for line in text.split('\n') {
            if line == "{}" {
                send(&mut socket, "{}").await;
            }
            seen.push(serde_json::from_str::<Value>(line).unwrap());
        }
    }
    assert!(
        seen.contains(&json!({"push": {"channel": "echo/a", "pub": {"data": {"text": "slow"}}}})),
        "{seen:?}"
    );
}

/// Credentials that expire: the connect reply's `ttl`, a `refresh` the hook checks again
/// (a new user: 101; a refused token: its code), and 3005 for a session not refreshed within
/// the grace past its expiry. A subscription whose channel set `expire_at` gets 2501.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_expire_unless_refreshed() {
    let hook = |connect: ConnectRequest| async move {
        let soon = SystemTime::now() + Duration::from_secs(2);
        match connect.token() {
            "ann-1" | "ann-2" => Ok(Identity::new("ann", ()).expire_at(soon)),
            "bob" => Ok(Identity::new("bob", ())),
            "stale" => Err(SessionReject::token_expired()),
            _ => Err(SessionReject::unauthorized("unknown token")),
        }
    };
    let server = Echo::register(Server::new(), |h| {
        h.on_connect(|handshake| async move {
            handshake.expire_at(SystemTime::now() + Duration::from_millis(700));
            Ok(())
        })
    })
    .sessions(
        Sessions::new()
            .expiry_grace(Duration::from_millis(500))
            .authenticate(hook),
    );
    let served = Served::start(server).await;
    let mut socket = raw_connect(&served, PATH).await;
    send(&mut socket, r#"{"id":1,"connect":{"token":"ann-1"}}"#).await;
    let reply = next_json(&mut socket).await;
    assert_eq!(
        (&reply["connect"]["expires"], &reply["connect"]["ttl"]),
        (&json!(true), &json!(2)),
        "{reply}"
    );
    let client = reply["connect"]["client"].clone();
    let commands = [
        r#"{"id":2,"subscribe":{"channel":"echo/a"}}"#,
        r#"{"id":3,"refresh":{"token":"bob"}}"#,
        r#"{"id":4,"refresh":{"token":"nobody"}}"#,
        r#"{"id":5,"refresh":{"token":"ann-2"}}"#,
    ];
    send(&mut socket, &commands.join("\n")).await;
    assert_eq!(
        replies(&mut socket, 4).await,
        [
            json!({"id": 2, "subscribe": {}}),
            json!({"id": 3, "error": {"code": 101, "message": "a refresh cannot change the user"}}),
            json!({"id": 4, "error": {"code": 101, "message": "unknown token"}}),
            json!({"id": 5, "refresh": {"client": client, "version": reply["connect"]["version"], "expires": true, "ttl": 2}}),
        ]
    );
    let started = Instant::now();
    // The subscription's own credentials (0.7 s) end it first, with 2501.
    assert_eq!(
        next_json(&mut socket).await,
        json!({"push": {"channel": "echo/a", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}})
    );
    // The session's, refreshed at about 0 s for 2 s more, end it after the 0.5 s grace.
    assert_eq!(close_of(&mut socket).await, (3005, "connection expired".to_owned()));
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(1000) && waited < Duration::from_secs(4),
        "closed {waited:?} after the refresh"
    );
    // A refresh with a stale token ends the session at once, with the code that reconnects.
    let mut socket = raw_connect(&served, PATH).await;
    send(
        &mut socket,
        "{\"id\":1,\"connect\":{\"token\":\"ann-1\"}}\n{\"id\":2,\"refresh\":{\"token\":\"stale\"}}",
    )
    .await;
    assert!(next_json(&mut socket).await["connect"].is_object());
    assert_eq!(close_of(&mut socket).await, (3005, "connection expired".to_owned()));
}

/// `max_connections_per_address` counts a room's members however they came: a session's
/// subscription over it is refused with 106, a direct handshake with 503, until a member
/// leaves. Sessions themselves are connections of no room (their shared path is no address):
/// two sessions pass a limit of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_member_limit_counts_subscriptions_too() {
    let served = Served::start(server(|s| s).max_connections_per_address(1)).await;
    let (mut first, _) = connected(&served, "ann").await;
    send(&mut first, r#"{"id":2,"subscribe":{"channel":"echo/a"}}"#).await;
    assert_eq!(next_json(&mut first).await, json!({"id": 2, "subscribe": {}}));
    let (mut second, reply) = connected(&served, "ann").await;
    assert!(reply["connect"].is_object(), "a second session: {reply}");
    send(&mut second, r#"{"id":2,"subscribe":{"channel":"echo/a"}}"#).await;
    assert_eq!(
        next_json(&mut second).await,
        json!({"id": 2, "error": {"code": 106, "message": "limit exceeded"}})
    );
    assert_eq!(handshake_status(&served, "/echo/a").await, 503);
    send(&mut first, r#"{"id":3,"unsubscribe":{"channel":"echo/a"}}"#).await;
    assert_eq!(next_json(&mut first).await, json!({"id": 3, "unsubscribe": {}}));
    send(&mut second, r#"{"id":3,"subscribe":{"channel":"echo/a"}}"#).await;
    assert_eq!(next_json(&mut second).await, json!({"id": 3, "subscribe": {}}));
}

/// The server's rate limit counts a session's commands (not `connect`, not pongs): each one
/// over it gets 111 (temporary) under `RateLimitAction::Reply`, or the session is closed with
/// 3013 under `Close`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_111_or_closes_with_3013() {
    let limited = |action| {
        let limit = RateLimit::per_second(1).burst(2).on_exceed(action);
        let server = server(|s| s).rate_limit(limit);
        let metrics = server.hub().metrics();
        (Served::start(server), metrics)
    };
    let (served, metrics) = limited(RateLimitAction::Reply);
    let served = served.await;
    let (mut socket, _) = connected(&served, "ann").await;
    let pings: Vec<String> = (2..6).map(|id| format!(r#"{{"id":{id},"ping":{{}}}}"#)).collect();
    // Pongs are free: four of them do not use up the burst.
    send(&mut socket, &format!("{{}}\n{{}}\n{{}}\n{{}}\n{}", pings.join("\n"))).await;
    let too_many =
        |id: u32| json!({"id": id, "error": {"code": 111, "message": "too many requests", "temporary": true}});
    assert_eq!(
        replies(&mut socket, 4).await,
        [
            json!({"id": 2, "ping": {}}),
            json!({"id": 3, "ping": {}}),
            too_many(4),
            too_many(5)
        ]
    );
    assert_eq!(metrics.snapshot().rate_limited, 2);
    let served = limited(RateLimitAction::Close).0.await;
    let (mut socket, _) = connected(&served, "ann").await;
    send(&mut socket, &pings.join("\n")).await;
    assert_eq!(
        replies(&mut socket, 2).await,
        [json!({"id": 2, "ping": {}}), json!({"id": 3, "ping": {}})]
    );
    assert_eq!(close_of(&mut socket).await, (3013, "too many requests".to_owned()));
}

/// A server-only channel the hook subscribes sessions to.
#[channel("notices/<name>", server_only)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Notice {
    text: String,
}

/// Sessions whose hook subscribes them server-side to their own `notices/<name>` (and, for
/// `ann`, to `notices/nobody`, which the channel refuses; for `greedy`, to 129 channels). The
/// tokens `old` and `fresh` are both user `tok`, whose notices want the connect token `fresh`
/// (109 otherwise); `notices/stale` and `notices/past` are refused as expired; `notices/flaky`
/// closes itself in `on_open` with 1011; `notices/sleepy`'s `on_open` and `notices/hang`'s
/// `on_close` never end. The
/// sessions are shaped by `sessions`.
fn notices_server(sessions: impl FnOnce(Sessions) -> Sessions) -> Server {
    let server = Notice::register(Server::new(), |h| {
        h.on_connect(|handshake| async move {
            let name = handshake.params().name.clone();
            match name.as_str() {
                "nobody" => return Err(Reject::forbidden("nobody's notices")),
                "stale" => return Err(Reject::token_expired("a stale token")),
                "past" => handshake.expire_at(SystemTime::now() - Duration::from_secs(1)),
                "tok" if handshake.token(&[TokenSource::Connect]).as_deref() != Some("fresh") => {
                    return Err(Reject::token_expired("not the fresh token"));
                }
                _ => {}
            }
            Ok(handshake.session_user().unwrap_or_default().to_owned())
        })
        .on_open(|conn| async move {
            let text = format!("welcome {}", conn.data());
            conn.send(&Notice { text }).await?;
            match conn.params().name.as_str() {
                "flaky" => conn.close(CloseCode::Error, "flaky"),
                "sleepy" => std::future::pending().await,
                _ => {}
            }
            Ok(())
        })
        .on_close(|conn, _info| async move {
            if conn.params().name == "hang" {
                std::future::pending::<()>().await;
            }
        })
    });
    server.sessions(
        sessions(Sessions::new()).authenticate(|connect: ConnectRequest| async move {
            let name = connect.token().to_owned();
            let user = match name.as_str() {
                "old" | "fresh" => "tok",
                other => other,
            };
            let identity = Identity::new(user, ());
            Ok(match name.as_str() {
                "greedy" => (0..129).fold(identity, |identity, n| {
                    identity.subscribe::<Notice>(&NoticeParams::new(format!("n{n}")))
                }),
                "old" | "fresh" => identity,
                _ => identity
                    .subscribe::<Notice>(&NoticeParams::new(name.as_str()))
                    .subscribe::<Notice>(&NoticeParams::new("nobody")),
            })
        }),
    )
}

/// Expired subscription credentials get 109 (the SDK fetches a new token): a channel's
/// `Reject::token_expired`, an `expire_at` already past, and a connect token the channel
/// finds stale until a `refresh` brings the fresh one (`TokenSource::Connect` then reads it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_subscription_credentials_get_109() {
    let served = Served::start(notices_server(|s| s)).await;
    let (mut socket, reply) = connected(&served, "old").await;
    assert!(reply["connect"].is_object(), "{reply}");
    let commands = [
        r#"{"id":2,"subscribe":{"channel":"notices/stale"}}"#,
        r#"{"id":3,"subscribe":{"channel":"notices/past"}}"#,
        r#"{"id":4,"subscribe":{"channel":"notices/tok"}}"#,
        r#"{"id":5,"refresh":{"token":"fresh"}}"#,
        r#"{"id":6,"subscribe":{"channel":"notices/tok"}}"#,
    ];
    send(&mut socket, &commands.join("\n")).await;
    let expired = |id: u32| json!({"id": id, "error": {"code": 109, "message": "token expired"}});
    let replies = replies(&mut socket, 6).await;
    assert_eq!(replies[..3], [expired(2), expired(3), expired(4)]);
    assert!(replies[3]["refresh"].is_object(), "{replies:?}");
    assert_eq!(replies[4], json!({"id": 6, "subscribe": {}}));
    assert_eq!(
        replies[5],
        json!({"push": {"channel": "notices/tok", "pub": {"data": {"text": "welcome tok"}}}})
    );
}

/// A subscription whose `on_open` takes the command timeout is refused with 100 (temporary:
/// the SDK retries with backoff, where its own call timeout would end the connection); the
/// session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_open_that_takes_the_command_timeout_is_refused_with_100() {
    let served = Served::start(notices_server(|s| s.command_timeout(Duration::from_millis(300)))).await;
    let (mut socket, _) = connected(&served, "ann").await;
    assert!(next_json(&mut socket).await["push"]["pub"].is_object(), "the welcome");
    let started = Instant::now();
    send(
        &mut socket,
        "{\"id\":2,\"subscribe\":{\"channel\":\"notices/sleepy\"}}\n{\"id\":3,\"ping\":{}}",
    )
    .await;
    assert_eq!(
        replies(&mut socket, 2).await,
        [
            json!({"id": 2, "error": {"code": 100, "message": "internal server error", "temporary": true}}),
            json!({"id": 3, "ping": {}}),
        ]
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// An `on_close` that never ends holds the session's commands for the command timeout only,
/// then goes on beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_close_past_the_command_timeout_goes_on_beside_the_session() {
    let served = Served::start(notices_server(|s| s.command_timeout(Duration::from_millis(300)))).await;
    let (mut socket, _) = connected(&served, "ann").await;
    assert!(next_json(&mut socket).await["push"]["pub"].is_object(), "the welcome");
    send(&mut socket, r#"{"id":2,"subscribe":{"channel":"notices/hang"}}"#).await;
    assert_eq!(replies(&mut socket, 2).await[0], json!({"id": 2, "subscribe": {}}));
    let started = Instant::now();
    send(
        &mut socket,
        "{\"id\":3,\"unsubscribe\":{\"channel\":\"notices/hang\"}}\n{\"id\":4,\"ping\":{}}",
    )
    .await;
    assert_eq!(
        replies(&mut socket, 2).await,
        [json!({"id": 3, "unsubscribe": {}}), json!({"id": 4, "ping": {}})]
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// A channel that ends every subscription with a code the SDK resubscribes after at once
/// (2500) gets, on the fourth subscribe within 10 s, 100 temporary: the SDK then backs off
/// instead of looping with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_ending_every_subscription_is_answered_100_before_it_loops() {
    let served = Served::start(notices_server(|s| s)).await;
    let (mut socket, _) = connected(&served, "ann").await;
    assert!(next_json(&mut socket).await["push"]["pub"].is_object(), "the welcome");
    let ended = json!({"push": {"channel": "notices/flaky", "unsubscribe": {"code": 2500, "reason": "flaky"}}});
    for id in 2..5 {
        send(
            &mut socket,
            &format!(r#"{{"id":{id},"subscribe":{{"channel":"notices/flaky"}}}}"#),
        )
        .await;
        let lines = replies(&mut socket, 3).await;
        assert_eq!(lines[0], json!({"id": id, "subscribe": {}}), "{lines:?}");
        assert_eq!(lines[2], ended, "{lines:?}");
    }
    // Refused until the oldest of those ends is 10 s old, however often the client asks.
    for id in 5..7 {
        send(
            &mut socket,
            &format!(r#"{{"id":{id},"subscribe":{{"channel":"notices/flaky"}}}}"#),
        )
        .await;
        assert_eq!(
            next_json(&mut socket).await,
            json!({"id": id, "error": {"code": 100, "message": "internal server error", "temporary": true}})
        );
    }
}

/// A subscription its handler closes with a code a direct client would retry: 2500 for a
/// client's (the SDK resubscribes); a server-side one, which the SDK would forget: 2000 for
/// one the hub made (nobody would make it again), and for one of the identity's, the session
/// ends with 3010 (it reconnects and gets it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_subscription_that_must_be_resubscribed_ends_the_session() {
    let server = notices_server(|s| s);
    let served_hub = server.hub();
    let served = Served::start(server).await;
    let (mut socket, _) = connected(&served, "ann").await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"push": {"channel": "notices/ann", "pub": {"data": {"text": "welcome ann"}}}})
    );
    send(&mut socket, r#"{"id":2,"subscribe":{"channel":"notices/flaky"}}"#).await;
    let lines = replies(&mut socket, 3).await;
    assert_eq!(
        lines,
        [
            json!({"id": 2, "subscribe": {}}),
            json!({"push": {"channel": "notices/flaky", "pub": {"data": {"text": "welcome ann"}}}}),
            json!({"push": {"channel": "notices/flaky", "unsubscribe": {"code": 2500, "reason": "flaky"}}}),
        ]
    );
    // Made by the hub later, nobody would make it again after a reconnect: ended for good.
    {
        let (mut other, reply) = connected(&served, "bob").await;
        assert!(next_json(&mut other).await["push"]["pub"].is_object(), "bob's welcome");
        let id: ConnId = reply["connect"]["client"].as_str().unwrap().parse().unwrap();
        let hub_made = served_hub.subscribe_session::<Notice>(id, &NoticeParams::new("flaky"));
        assert!(hub_made);
        let lines = replies(&mut other, 3).await;
        assert_eq!(
            lines,
            [
                json!({"push": {"channel": "notices/flaky", "subscribe": {}}}),
                json!({"push": {"channel": "notices/flaky", "pub": {"data": {"text": "welcome bob"}}}}),
                json!({"push": {"channel": "notices/flaky", "unsubscribe": {"code": 2000, "reason": "flaky"}}}),
            ]
        );
        send(&mut other, r#"{"id":2,"ping":{}}"#).await;
        assert_eq!(
            next_json(&mut other).await,
            json!({"id": 2, "ping": {}}),
            "the session stays"
        );
    }
    let mut socket = connecting(&served, "flaky").await;
    let (texts, close) = read_until_close(&mut socket).await;
    assert!(texts[0].contains(r#""subs":{"notices/flaky":{}}"#), "{texts:?}");
    let close = close.expect("a close frame");
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (3010, "insufficient state")
    );
}

/// Server-side subscriptions: decided by their channel, listed in the connect reply, their
/// publications after it; a refused one left out; a client's subscribe to one is 105; made
/// and ended later by `Hub::subscribe_session` / `unsubscribe_session` with pushes; too many
/// close with 3505.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_subscriptions_come_with_the_connect_reply() {
    let server = notices_server(|s| s);
    let hub = server.hub();
    let served = Served::start(server).await;
    let (mut socket, reply) = connected(&served, "ann").await;
    assert_eq!(reply["id"], json!(1), "{reply}");
    assert_eq!(reply["connect"]["subs"], json!({"notices/ann": {}}), "{reply}");
    let publication = |text: &str| json!({"push": {"channel": "notices/ann", "pub": {"data": {"text": text}}}});
    assert_eq!(next_json(&mut socket).await, publication("welcome ann"));
    let published = hub
        .publish(&NoticeParams::new("ann"), &Notice { text: "hello".into() })
        .await
        .unwrap();
    assert_eq!(published.local, 1);
    assert_eq!(next_json(&mut socket).await, publication("hello"));
    send(&mut socket, r#"{"id":2,"subscribe":{"channel":"notices/ann"}}"#).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"id": 2, "error": {"code": 105, "message": "already subscribed"}})
    );
    // A server-side subscription ends as any.
    send(&mut socket, r#"{"id":3,"unsubscribe":{"channel":"notices/ann"}}"#).await;
    assert_eq!(next_json(&mut socket).await, json!({"id": 3, "unsubscribe": {}}));
    assert_eq!(hub.subscribers(&NoticeParams::new("ann")), 0);
    // Made later by the server: a `subscribe` push, then its publications; ended by it: 2000.
    let session: ConnId = reply["connect"]["client"].as_str().unwrap().parse().unwrap();
    let ann = NoticeParams::new("ann");
    assert!(hub.subscribe_session::<Notice>(session, &ann));
    assert_eq!(
        next_json(&mut socket).await,
        json!({"push": {"channel": "notices/ann", "subscribe": {}}})
    );
    assert_eq!(next_json(&mut socket).await, publication("welcome ann"));
    assert!(
        hub.subscribe_session::<Notice>(session, &ann),
        "taken; already subscribed: nothing"
    );
    assert!(hub.unsubscribe_session::<Notice>(session, &ann));
    assert_eq!(
        next_json(&mut socket).await,
        json!({"push": {"channel": "notices/ann", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}})
    );
    assert_eq!(hub.subscribers(&ann), 0);
    // One the channel refuses is logged, and the session goes on.
    assert!(hub.subscribe_session::<Notice>(session, &NoticeParams::new("nobody")));
    send(&mut socket, r#"{"id":4,"ping":{}}"#).await;
    assert_eq!(next_json(&mut socket).await, json!({"id": 4, "ping": {}}));
    let unknown = ConnId::new(session.node(), session.seq() + 1000);
    assert!(!hub.subscribe_session::<Notice>(unknown, &ann), "no such session");

    let mut socket = connecting(&served, "greedy").await;
    assert_eq!(close_of(&mut socket).await, (3505, "channel limit".to_owned()));
}

/// The real SDK and server-side subscriptions (`tests/node/session_server_subs.mjs`): the
/// client-level `subscribed` event without a `subscribe` of its own, the channel's welcome and
/// a hub publication as client-level publications; then one ended and another made by the
/// hub (`unsubscribed` 2000, `subscribed`, its welcome).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centrifuge_sdk_delivers_server_side_subscriptions() {
    if !require(&[Component::Node]) {
        return;
    }
    let server = notices_server(|s| s);
    let hub = server.hub();
    let served = Served::start(server).await;
    let mut node = NodeScript::start("session_server_subs.mjs", format!("{}{PATH}", served.base())).await;
    let mut lines = Vec::new();
    let mut session: Option<ConnId> = None;
    let run = async {
        while let Some(event) = node.lines.recv().await {
            match event["ev"].as_str() {
                Some("connected") => session = event["client"].as_str().unwrap().parse().ok(),
                Some("ready") => {
                    let hello = Notice { text: "hello".into() };
                    let published = hub.publish(&NoticeParams::new("ann"), &hello).await.unwrap();
                    assert_eq!(published.local, 1, "the SDK's session");
                }
                Some("moving") => {
                    let session = session.expect("connected first");
                    assert!(hub.unsubscribe_session::<Notice>(session, &NoticeParams::new("ann")));
                    assert!(hub.subscribe_session::<Notice>(session, &NoticeParams::new("extra")));
                }
                _ => {}
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
        .map(|line| (line["ev"].as_str().unwrap(), line["channel"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        events,
        [
            ("connected", ""),
            ("subscribed", "notices/ann"),
            ("publication", "notices/ann"),
            ("ready", ""),
            ("publication", "notices/ann"),
            ("moving", ""),
            ("unsubscribed", "notices/ann"),
            ("subscribed", "notices/extra"),
            ("publication", "notices/extra"),
            ("done", ""),
        ],
        "{lines:#?}"
    );
    assert_eq!(lines[2]["data"], json!({"text": "welcome ann"}));
    assert_eq!(lines[4]["data"], json!({"text": "hello"}));
    assert_eq!(lines[8]["data"], json!({"text": "welcome ann"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centrifuge_sdk_connects_and_is_refused_for_good() {
    if !require(&[Component::Node]) {
        return;
    }
    let served = Served::start(server(|s| s)).await;
    let mut node = NodeScript::start("session_connect.mjs", format!("{}{PATH}", served.base())).await;
    let lines = node.all_lines(Duration::from_secs(30)).await;
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

// Subscriptions: a session subscribes to the server's channels by their canonical address
// (`chat/lobby`, `chat/caf%C3%A9`), and each subscription runs the channel's own hooks
// (`on_connect`/`authorize`, `on_open`, `on_message`, `on_close`) with a `Conn` scoped to it.
// The spec: docs/design/sessions.md, B1, B4 and B6.

/// What a client says in a chat room: the channel sessions subscribe to in these tests.
#[channel("chat/<room>", server = ChatEvent, validate, on_lag = disconnect)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Chat {
    /// Broadcast to the room, the sender included.
    Say { text: String },
    /// `conn.send`: back to the sender only.
    Whisper { text: String },
    /// `conn.broadcast_others`: to the room but the sender.
    Others { text: String },
    /// `conn.send` of what the `Conn` says about itself (and whether `join` worked).
    Whoami,
    /// `conn.close(code, reason)`.
    Close { code: u16, reason: String },
    /// The handler returns `Err`.
    Fail,
    /// The handler panics.
    Panic,
    /// `n` `conn.send`s in one go, their errors ignored: more than a small queue holds.
    Flood { n: u32 },
}

impl ws_channels::Validate for Chat {
    fn validate(&self) -> Result<(), ws_channels::ValidationError> {
        match self {
            Chat::Say { text } | Chat::Whisper { text } | Chat::Others { text } if text.is_empty() => {
                Err(ws_channels::ValidationError::field("text", "must not be empty"))
            }
            _ => Ok(()),
        }
    }
}

/// What the server tells a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChatEvent {
    /// Sent by `on_open`: what the handshake said (the `user` query parameter, the `x-test`
    /// header, the `pet` cookie; `-` when absent) and what the `Conn` says.
    Welcome {
        room: String,
        user: String,
        tag: String,
        pet: String,
        address: String,
        id: String,
    },
    Message {
        from: String,
        text: String,
    },
    Me {
        id: String,
        address: String,
        joined: bool,
    },
}

impl ws_channels::Validate for ChatEvent {
    fn validate(&self) -> Result<(), ws_channels::ValidationError> {
        Ok(())
    }
}

/// A MessagePack channel: not available over a (JSON) session.
#[channel("bin/<id>", codec = msgpack)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Bin {
    n: u32,
}

/// A chat connection's data, from its handshake.
struct Member {
    user: String,
    tag: String,
    pet: String,
}

/// What the chat channel's hooks saw: `on_open` (once it succeeded) and `on_close`, with the
/// connection's id (a session's id for its subscriptions) and address.
#[derive(Debug, Clone, PartialEq)]
enum Hooked {
    Open { id: String, address: String },
    Close { id: String, address: String, code: u16 },
}

type Seen = Arc<Mutex<Vec<Hooked>>>;

/// The chat channel. Rooms with a meaning: `secret` (403) and `locked` (401) are refused,
/// `broken` answers 500, `boom` panics in `on_connect`, `vip` is for `ann` only (`authorize`),
/// `nopen` fails and `opanic` panics in `on_open`, `slowbye` takes 300 ms in `on_close`.
/// Every other room sends a welcome.
fn chat_handler(handler: Handler<Chat>, seen: Seen) -> Handler<Chat, (), Member> {
    let (opened, closed) = (seen.clone(), seen);
    handler
        .on_connect(|handshake| async move {
            match handshake.params().room.as_str() {
                "secret" => return Err(Reject::forbidden("members only")),
                "locked" => return Err(Reject::unauthorized("who are you")),
                "broken" => return Err(Reject::new(StatusCode::INTERNAL_SERVER_ERROR, "database down")),
                "boom" => panic!("on_connect panics"),
                _ => {}
            }
            Ok(Member {
                user: handshake.query_param("user").unwrap_or_else(|| "-".to_owned()),
                tag: handshake.header("x-test").unwrap_or("-").to_owned(),
                pet: handshake.cookie("pet").unwrap_or("-").to_owned(),
            })
        })
        .authorize(|member, params| match params.room == "vip" && member.user != "ann" {
            true => Err(Reject::forbidden("ann only")),
            false => Ok(()),
        })
        .on_open(move |conn| {
            let seen = opened.clone();
            async move {
                match conn.params().room.as_str() {
                    "nopen" => return Err("on_open fails".into()),
                    "opanic" => panic!("on_open panics"),
                    _ => {}
                }
                let member = conn.data();
                conn.send(&ChatEvent::Welcome {
                    room: conn.params().room.clone(),
                    user: member.user.clone(),
                    tag: member.tag.clone(),
                    pet: member.pet.clone(),
                    address: conn.address().to_owned(),
                    id: conn.id().to_string(),
                })
                .await?;
                seen.lock().unwrap().push(Hooked::Open {
                    id: conn.id().to_string(),
                    address: conn.address().to_owned(),
                });
                Ok(())
            }
        })
        .on_message(|conn, msg| async move {
            let from = conn.data().user.clone();
            match msg {
                Chat::Say { text } => drop(conn.broadcast(&ChatEvent::Message { from, text }).await?),
                Chat::Whisper { text } => conn.send(&ChatEvent::Message { from, text }).await?,
                Chat::Others { text } => drop(conn.broadcast_others(&ChatEvent::Message { from, text }).await?),
                Chat::Whoami => {
                    let joined = conn.join(&ChatParams::new("elsewhere"));
                    conn.send(&ChatEvent::Me {
                        id: conn.id().to_string(),
                        address: conn.address().to_owned(),
                        joined,
                    })
                    .await?;
                }
                Chat::Close { code, reason } => conn.close(CloseCode::from(code), &reason),
                Chat::Fail => return Err("the handler fails".into()),
                Chat::Panic => panic!("the handler panics"),
                Chat::Flood { n } => {
                    for i in 0..n {
                        let flood = ChatEvent::Message {
                            from: "flood".into(),
                            text: i.to_string(),
                        };
                        let _ = conn.send(&flood).await;
                    }
                }
            }
            Ok(())
        })
        .on_close(move |conn, info| {
            let seen = closed.clone();
            async move {
                // A goodbye that takes its time: the session's next handler waits for it.
                if conn.params().room == "slowbye" {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                seen.lock().unwrap().push(Hooked::Close {
                    id: conn.id().to_string(),
                    address: conn.address().to_owned(),
                    code: u16::from(info.code),
                });
            }
        })
}

/// Sessions (the test's `authenticate`: token `ann`) beside `chat/<room>` and `bin/<id>`.
fn chat_server(seen: &Seen) -> Server {
    let server = Chat::register(Server::new(), |h| chat_handler(h, seen.clone()));
    Bin::register(server, |h| h).sessions(Sessions::new().authenticate(authenticate))
}

/// Waits until what the hooks saw satisfies `done`.
async fn hooks_until(seen: &Seen, what: &str, done: impl Fn(&[Hooked]) -> bool) {
    within(what, async {
        while !done(&seen.lock().unwrap()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// The addresses `on_open` (or `on_close`) ran for, for connection `id`, in order.
fn hooked(seen: &Seen, id: &str, close: bool) -> Vec<String> {
    hooked_in(&seen.lock().unwrap(), id, close)
}

/// [`hooked`], in what the hooks saw (for [`hooks_until`], which holds the lock).
fn hooked_in(hooks: &[Hooked], id: &str, close: bool) -> Vec<String> {
    hooks
        .iter()
        .filter_map(|hook| match hook {
            Hooked::Open { id: of, address } if !close && of == id => Some(address.clone()),
            Hooked::Close { id: of, address, .. } if close && of == id => Some(address.clone()),
            _ => None,
        })
        .collect()
}

/// A connected session read one message at a time (a text frame may hold several replies,
/// one per line); it answers the protocol's pings itself.
struct Session {
    socket: ClientSocket,
    lines: std::collections::VecDeque<String>,
    /// The connect reply's `client`: the session's id.
    client: String,
}

impl Session {
    /// Connects to the sessions endpoint with `query` (`?user=ann`) and `headers` on its
    /// upgrade request, then sends `connect` with the token `ann`.
    async fn open(served: &Served, query: &str, headers: &[(&'static str, &str)]) -> Self {
        use ws_channels::tungstenite::client::IntoClientRequest;
        let mut request = format!("{}{PATH}{query}", served.base()).into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (socket, _) = within("the session's handshake", tokio_tungstenite::connect_async(request))
            .await
            .unwrap();
        let mut session = Self {
            socket,
            lines: std::collections::VecDeque::new(),
            client: String::new(),
        };
        session.send(r#"{"id":1,"connect":{"token":"ann","name":"js"}}"#).await;
        let reply = session.next_line().await;
        let reply: Value = serde_json::from_str(&reply).unwrap();
        session.client = reply["connect"]["client"]
            .as_str()
            .unwrap_or_else(|| panic!("not a connect result: {reply}"))
            .to_owned();
        session
    }

    async fn send(&mut self, text: &str) {
        send(&mut self.socket, text).await;
    }

    /// The next message as sent, pings answered and skipped.
    async fn next_line(&mut self) -> String {
        loop {
            if let Some(line) = self.lines.pop_front() {
                if line == "{}" {
                    self.send("{}").await;
                    continue;
                }
                return line;
            }
            let text = next_text(&mut self.socket).await;
            if text.contains('\n') {
                // Replies (and the session's own pushes, such as `unsubscribe`) may share a
                // frame; a publication, whose bytes every subscriber shares, is a frame of
                // its own.
                assert!(
                    !text.contains(r#""pub":"#),
                    "a publication joined with others: {text:?}"
                );
            }
            self.lines.extend(text.split('\n').map(str::to_owned));
        }
    }

    /// The next message, pings answered and skipped.
    async fn next(&mut self) -> Value {
        let line = self.next_line().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// Sends `{"id":id, method: body}` alone in a frame and reads up to its reply: the reply,
    /// and the pushes read before it.
    async fn call(&mut self, id: u32, method: &str, body: Value) -> (Value, Vec<Value>) {
        self.send(&json!({"id": id, method: body}).to_string()).await;
        self.reply(id).await
    }

    /// Reads up to the reply to `id`: the reply, and the pushes read before it.
    async fn reply(&mut self, id: u32) -> (Value, Vec<Value>) {
        let mut pushes = Vec::new();
        loop {
            let message = self.next().await;
            if message["id"] == json!(id) {
                return (message, pushes);
            }
            assert!(
                message.get("push").is_some(),
                "a push or the reply to {id} expected, got {message} (pushes so far: {pushes:?})"
            );
            pushes.push(message);
        }
    }

    /// Subscribes to `channel` with command `id`; asserts the reply is `subscribe:{}` with no
    /// publication before it, and returns the welcome `on_open` sent after it.
    async fn subscribe(&mut self, id: u32, channel: &str) -> ChatEvent {
        let (reply, before) = self.call(id, "subscribe", json!({"channel": channel, "flag": 1})).await;
        assert_eq!(reply, ok(id, "subscribe"), "{channel}");
        assert_eq!(
            before,
            Vec::<Value>::new(),
            "no push before the subscribe reply ({channel})"
        );
        let push = self.next().await;
        assert_eq!(push["push"]["channel"], json!(channel), "{push}");
        serde_json::from_value(push["push"]["pub"]["data"].clone()).unwrap_or_else(|e| panic!("{e}: {push}"))
    }

    /// Asserts the session is still there and has nothing queued for it: a `ping` command
    /// is answered next.
    async fn ping(&mut self, id: u32) {
        self.send(&format!(r#"{{"id":{id},"ping":{{}}}}"#)).await;
        assert_eq!(
            self.next().await,
            json!({"id": id, "ping": {}}),
            "only the ping's reply"
        );
    }
}

/// The empty result of `method` to command `id`.
fn ok(id: u32, method: &str) -> Value {
    json!({"id": id, method: {}})
}

/// Error reply `code` with `message` to command `id` (`temporary` only for 100).
fn error(id: u32, code: u32, message: &str) -> Value {
    json!({"id": id, "error": {"code": code, "message": message}})
}

/// A `pub` push of `event` on `channel`.
fn publication(channel: &str, event: &ChatEvent) -> Value {
    json!({"push": {"channel": channel, "pub": {"data": event}}})
}

fn message(from: &str, text: &str) -> ChatEvent {
    ChatEvent::Message {
        from: from.into(),
        text: text.into(),
    }
}

/// A publish command's body: `data` on `channel`.
fn publish(channel: &str, data: Value) -> Value {
    json!({"channel": channel, "data": data})
}

/// Reads a direct client's next frame as a chat event.
async fn next_event(socket: &mut ClientSocket) -> ChatEvent {
    let text = next_text(socket).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a chat event ({e}): {text}"))
}

ws_channels_tests::on_both_backends!(
    a_subscription_runs_the_channels_hooks_with_the_sessions_handshake,
    subscribe_refusals_have_their_codes,
    the_129th_subscription_exceeds_the_limit,
    direct_clients_and_sessions_hear_each_other,
    the_conn_of_a_subscription_is_scoped_to_it,
    unsubscribe_stops_publications_and_runs_on_close,
    publish_refusals_have_their_codes,
    the_end_of_a_session_runs_every_subscriptions_on_close,
    an_ended_subscriptions_on_close_runs_before_the_next_command,
    a_publish_after_its_subscriptions_close_in_the_same_frame_gets_103,
    lag_ends_only_the_lagging_subscription,
);

async fn a_subscription_runs_the_channels_hooks_with_the_sessions_handshake(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen)).await;
    let headers = [("x-test", "yes"), ("cookie", "pet=cat")];
    let mut session = Session::open(&served, "?user=ann", &headers).await;
    let id = session.client.clone();
    // `on_connect` saw the upgrade request's query, headers and cookies; `on_open`'s `Conn`
    // has the session's id and the channel string as its address; its welcome comes after
    // the reply, as a publication of that channel.
    let welcome = |room: &str, address: &str| ChatEvent::Welcome {
        room: room.into(),
        user: "ann".into(),
        tag: "yes".into(),
        pet: "cat".into(),
        address: address.into(),
        id: id.clone(),
    };
    assert_eq!(session.subscribe(2, "chat/lobby").await, welcome("lobby", "chat/lobby"));
    // The canonical percent-encoded address, echoed in the pushes.
    assert_eq!(ChatParams::new("café").to_string(), "chat/caf%C3%A9");
    assert_eq!(
        session.subscribe(3, "chat/caf%C3%A9").await,
        welcome("café", "chat/caf%C3%A9")
    );
    // Fields the channel does not use are ignored; `recover` is echoed as `was_recovering`.
    let (reply, before) = session
        .call(
            4,
            "subscribe",
            json!({"channel": "chat/kitchen", "flag": 1, "recover": true, "offset": 7, "epoch": "e1",
                   "positioned": true, "recoverable": true, "join_leave": true, "data": {"x": 1}, "token": "t"}),
        )
        .await;
    assert_eq!(
        (reply, before),
        (json!({"id": 4, "subscribe": {"was_recovering": true}}), vec![])
    );
    assert_eq!(
        session.next().await,
        publication("chat/kitchen", &welcome("kitchen", "chat/kitchen"))
    );
    // A name of 255 bytes is still accepted.
    let longest = format!("chat/{}", "x".repeat(250));
    assert_eq!(longest.len(), 255);
    assert_eq!(
        session.subscribe(5, &longest).await,
        welcome(&"x".repeat(250), &longest)
    );
    session.ping(6).await;
    assert_eq!(
        hooked(&seen, &id, false),
        ["chat/lobby", "chat/caf%C3%A9", "chat/kitchen", longest.as_str()]
    );
    // A direct client with the same handshake gets the same welcome, with its own id.
    let request = {
        use ws_channels::tungstenite::client::IntoClientRequest;
        let mut request = format!("{}/chat/lobby?user=ann", served.base())
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        request
    };
    let (mut direct, _) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    let ChatEvent::Welcome { id: direct_id, .. } = next_event(&mut direct).await else {
        panic!("a welcome first");
    };
    assert_ne!(direct_id, id, "the session and the direct client are two connections");
    let _ = direct.close(None).await;
    // Without query, headers or cookies.
    let mut bare = Session::open(&served, "", &[]).await;
    let ChatEvent::Welcome { user, tag, pet, .. } = bare.subscribe(2, "chat/lobby").await else {
        panic!("a welcome");
    };
    assert_eq!((user.as_str(), tag.as_str(), pet.as_str()), ("-", "-", "-"));
}

async fn subscribe_refusals_have_their_codes(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen)).await;
    // `bob`: `authorize` refuses him `chat/vip`.
    let mut session = Session::open(&served, "?user=bob", &[]).await;
    let unknown = "unknown channel";
    let refused = "permission denied";
    let not_available = "not available";
    let too_long = format!("chat/{}", "x".repeat(251));
    let cases: Vec<(Value, u32, Option<&str>)> = vec![
        // No template matches: 102.
        (json!({"channel": "nowhere/x"}), 102, Some(unknown)),
        (json!({"channel": "chat"}), 102, Some(unknown)),
        (json!({"channel": "chat/lobby/more"}), 102, Some(unknown)),
        (json!({"channel": "connection/websocket"}), 102, Some(unknown)),
        // A malformed parameter, a name not in its canonical form, a name over 255 bytes: 107.
        (json!({"channel": "chat/%zz"}), 107, None),
        (json!({"channel": "chat/café"}), 107, None),
        (json!({"channel": "chat/caf%c3%a9"}), 107, None),
        (json!({"channel": too_long}), 107, None),
        // MessagePack channels and map subscriptions: 108.
        (json!({"channel": "bin/x"}), 108, Some(not_available)),
        (json!({"channel": "chat/lobby", "type": 1}), 108, Some(not_available)),
        // The channel's `on_connect`/`authorize` refuses with a 4xx: 103.
        (json!({"channel": "chat/secret"}), 103, Some(refused)),
        (json!({"channel": "chat/locked"}), 103, Some(refused)),
        (json!({"channel": "chat/vip"}), 103, Some(refused)),
    ];
    let mut id = 2;
    for (body, code, message) in &cases {
        let (reply, before) = session.call(id, "subscribe", body.clone()).await;
        assert_eq!(before, Vec::<Value>::new(), "{body}");
        match message {
            Some(message) => assert_eq!(reply, error(id, *code, message), "{body}"),
            None => {
                assert_eq!(reply["error"]["code"], json!(code), "{body}: {reply}");
                let text = reply["error"]["message"].as_str().unwrap_or_default();
                assert!(!text.is_empty(), "{body}: a message saying why: {reply}");
                assert_eq!(reply["error"].get("temporary"), None, "{body}: {reply}");
            }
        }
        id += 1;
    }
    // The decoded form is refused with a message naming the canonical one.
    let (reply, _) = session.call(id, "subscribe", json!({"channel": "chat/café"})).await;
    id += 1;
    let text = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("chat/caf%C3%A9"), "{reply}");
    // `on_connect` answering 500 or panicking, `on_open` failing or panicking: 100, temporary
    // (the SDK retries with backoff).
    for room in ["broken", "boom", "nopen", "opanic"] {
        let channel = format!("chat/{room}");
        let (reply, before) = session.call(id, "subscribe", json!({"channel": channel})).await;
        assert_eq!(before, Vec::<Value>::new(), "{channel}");
        assert_eq!(reply["error"]["code"], json!(100), "{channel}: {reply}");
        assert_eq!(reply["error"]["temporary"], json!(true), "{channel}: {reply}");
        id += 1;
        // Not subscribed: a publish on it is refused.
        let (reply, _) = session
            .call(id, "publish", publish(&channel, json!({"type": "say", "text": "hi"})))
            .await;
        assert_eq!(reply, error(id, 103, refused), "{channel} is not subscribed");
        id += 1;
    }
    // A second subscribe to the same string: 105.
    session.subscribe(id, "chat/lobby").await;
    id += 1;
    let (reply, before) = session
        .call(id, "subscribe", json!({"channel": "chat/lobby", "flag": 1}))
        .await;
    assert_eq!((reply, before), (error(id, 105, "already subscribed"), vec![]));
    id += 1;
    // The session went on through all of it, and only `chat/lobby` was opened.
    session.ping(id).await;
    assert_eq!(hooked(&seen, &session.client, false), ["chat/lobby"]);
}

async fn the_129th_subscription_exceeds_the_limit(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen)).await;
    let mut session = Session::open(&served, "", &[]).await;
    // 129 subscribes in one frame (the limit per frame is 256): ids 2..=130, rooms r0..=r128.
    let frame: Vec<String> = (0..129)
        .map(|room| {
            format!(
                r#"{{"id":{},"subscribe":{{"channel":"chat/r{room}","flag":1}}}}"#,
                room + 2
            )
        })
        .collect();
    session.send(&frame.join("\n")).await;
    let mut replies = std::collections::BTreeMap::new();
    while replies.len() < 129 {
        let message = session.next().await;
        if let Some(id) = message["id"].as_u64() {
            replies.insert(id, message);
        } else {
            assert!(message.get("push").is_some(), "{message}");
        }
    }
    for id in 2..130 {
        assert_eq!(replies[&id], ok(id as u32, "subscribe"), "subscription {id}");
    }
    assert_eq!(replies[&130], error(130, 106, "limit exceeded"));
    // Welcomes of the 128 may still be coming: drain them behind a ping.
    session.send(r#"{"id":131,"ping":{}}"#).await;
    let (reply, _) = session.reply(131).await;
    assert_eq!(reply, ok(131, "ping"));
    // One unsubscribed makes room for another.
    let (reply, _) = session.call(132, "unsubscribe", json!({"channel": "chat/r0"})).await;
    assert_eq!(reply, ok(132, "unsubscribe"));
    session.subscribe(133, "chat/r128").await;
    session.ping(134).await;
}

async fn direct_clients_and_sessions_hear_each_other(backend: Backend) {
    let seen = Seen::default();
    let server = chat_server(&seen);
    let hub = server.hub();
    let served = Served::start_on(backend, server).await;
    let lobby = ChatParams::new("lobby");
    let mut direct = raw_connect(&served, "/chat/lobby?user=dan").await;
    assert!(matches!(next_event(&mut direct).await, ChatEvent::Welcome { .. }));
    let mut session = Session::open(&served, "?user=ann", &[]).await;
    session.subscribe(2, "chat/lobby").await;
    // The hub's publication: the direct client's frame, wrapped byte for byte.
    let published = hub.publish(&lobby, &message("hub", "one")).await.unwrap();
    assert_eq!(published.local, 2, "the direct client and the session");
    let frame = next_text(&mut direct).await;
    assert_eq!(
        serde_json::from_str::<ChatEvent>(&frame).unwrap(),
        message("hub", "one")
    );
    assert_eq!(
        session.next_line().await,
        format!(r#"{{"push":{{"channel":"chat/lobby","pub":{{"data":{frame}}}}}}}"#)
    );
    // The direct client's message, broadcast by the handler, reaches the session.
    send(&mut direct, r#"{"type":"say","text":"from dan"}"#).await;
    assert_eq!(next_event(&mut direct).await, message("dan", "from dan"));
    assert_eq!(
        session.next().await,
        publication("chat/lobby", &message("dan", "from dan"))
    );
    // The session's publish: `on_message` broadcasts, and its push reaches the session before
    // the publish reply.
    let (reply, before) = session
        .call(
            3,
            "publish",
            publish("chat/lobby", json!({"type": "say", "text": "from ann"})),
        )
        .await;
    assert_eq!(reply, ok(3, "publish"));
    assert_eq!(before, [publication("chat/lobby", &message("ann", "from ann"))]);
    assert_eq!(next_event(&mut direct).await, message("ann", "from ann"));
    // `broadcast_others` skips the session, not the direct client.
    let (reply, before) = session
        .call(
            4,
            "publish",
            publish("chat/lobby", json!({"type": "others", "text": "not you"})),
        )
        .await;
    assert_eq!((reply, before), (ok(4, "publish"), vec![]));
    assert_eq!(next_event(&mut direct).await, message("ann", "not you"));
    // `send` reaches the session only (the direct client's next frame is the marker).
    let (reply, before) = session
        .call(
            5,
            "publish",
            publish("chat/lobby", json!({"type": "whisper", "text": "just you"})),
        )
        .await;
    assert_eq!(reply, ok(5, "publish"));
    assert_eq!(before, [publication("chat/lobby", &message("ann", "just you"))]);
    let published = hub.publish(&lobby, &message("hub", "marker")).await.unwrap();
    assert_eq!(published.local, 2);
    assert_eq!(next_event(&mut direct).await, message("hub", "marker"));
    assert_eq!(
        session.next().await,
        publication("chat/lobby", &message("hub", "marker"))
    );
    // The session's welcome went to the session only: the direct client's frames were
    // exactly the ones above.
    session.ping(6).await;
}

async fn the_conn_of_a_subscription_is_scoped_to_it(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen)).await;
    let mut session = Session::open(&served, "?user=ann", &[]).await;
    let cafe = "chat/caf%C3%A9";
    session.subscribe(2, cafe).await;
    // `id()` is the session's, `address()` the channel string; `join` does nothing.
    let (reply, before) = session
        .call(3, "publish", publish(cafe, json!({"type": "whoami"})))
        .await;
    assert_eq!(reply, ok(3, "publish"));
    let me = ChatEvent::Me {
        id: session.client.clone(),
        address: cafe.into(),
        joined: false,
    };
    assert_eq!(before, [publication(cafe, &me)]);
    // `close` ends the subscription, not the session: 2000 (final for the SDK) for the
    // codes the client should not retry, 2500 (resubscribe) for the ones it should.
    let mut id = 4;
    for (code, pushed) in [(1000, 2000), (1008, 2000), (1001, 2500), (1011, 2500), (1013, 2500)] {
        let channel = format!("chat/c{code}");
        session.subscribe(id, &channel).await;
        id += 1;
        let reason = format!("reason {code}");
        session
            .send(&json!({"id": id, "publish": publish(&channel, json!({"type": "close", "code": code, "reason": reason}))}).to_string())
            .await;
        // The unsubscribe push and the publish reply, in whichever order.
        let mut got = vec![session.next().await, session.next().await];
        got.sort_by_key(|message| message.get("id").is_some());
        assert_eq!(
            got,
            [
                json!({"push": {"channel": channel, "unsubscribe": {"code": pushed, "reason": reason}}}),
                ok(id, "publish"),
            ],
            "close {code}"
        );
        id += 1;
        // The subscription is gone: publishing on it is refused; the session goes on.
        let (reply, _) = session
            .call(id, "publish", publish(&channel, json!({"type": "say", "text": "hi"})))
            .await;
        assert_eq!(reply, error(id, 103, "permission denied"), "close {code}");
        id += 1;
        session.ping(id).await;
        id += 1;
    }
    // The first subscription lived through all of it, and a closed one can be subscribed again.
    let (reply, before) = session
        .call(
            id,
            "publish",
            publish(cafe, json!({"type": "say", "text": "still here"})),
        )
        .await;
    assert_eq!(
        (reply, before),
        (
            ok(id, "publish"),
            vec![publication(cafe, &message("ann", "still here"))]
        )
    );
    session.subscribe(id + 1, "chat/c1000").await;
}

async fn unsubscribe_stops_publications_and_runs_on_close(backend: Backend) {
    let seen = Seen::default();
    let server = chat_server(&seen);
    let hub = server.hub();
    let served = Served::start_on(backend, server).await;
    let mut session = Session::open(&served, "", &[]).await;
    let client = session.client.clone();
    session.subscribe(2, "chat/lobby").await;
    session.subscribe(3, "chat/kitchen").await;
    let (reply, before) = session.call(4, "unsubscribe", json!({"channel": "chat/lobby"})).await;
    assert_eq!((reply, before), (ok(4, "unsubscribe"), vec![]));
    // The channel's `on_close` ran for the subscription (code 1000: a client unsubscribe).
    hooks_until(&seen, "on_close of the unsubscribed chat/lobby", |hooks| {
        hooks
            .iter()
            .any(|hook| matches!(hook, Hooked::Close { id, address, .. } if *id == client && address == "chat/lobby"))
    })
    .await;
    assert!(
        seen.lock().unwrap().contains(&Hooked::Close {
            id: client.clone(),
            address: "chat/lobby".into(),
            code: 1000
        }),
        "{:?}",
        seen.lock().unwrap()
    );
    // No more publications of it: the hub reaches nobody there, and the session's next push is
    // the kitchen's.
    assert_eq!(
        hub.subscribers(&ChatParams::new("lobby")),
        0,
        "the session left chat/lobby"
    );
    let published = hub
        .publish(&ChatParams::new("lobby"), &message("hub", "gone"))
        .await
        .unwrap();
    assert_eq!(published.local, 0);
    let published = hub
        .publish(&ChatParams::new("kitchen"), &message("hub", "here"))
        .await
        .unwrap();
    assert_eq!(published.local, 1);
    assert_eq!(
        session.next().await,
        publication("chat/kitchen", &message("hub", "here"))
    );
    // Unsubscribing what is not subscribed is answered alike; publishing on it is refused.
    for (id, channel) in [(5, "chat/lobby"), (6, "chat/never")] {
        let (reply, before) = session.call(id, "unsubscribe", json!({"channel": channel})).await;
        assert_eq!((reply, before), (ok(id, "unsubscribe"), vec![]), "{channel}");
    }
    let (reply, _) = session
        .call(
            7,
            "publish",
            publish("chat/lobby", json!({"type": "say", "text": "hi"})),
        )
        .await;
    assert_eq!(reply, error(7, 103, "permission denied"));
    // `on_close` ran once for it, and not for the kitchen.
    assert_eq!(hooked(&seen, &client, true), ["chat/lobby"]);
    // Subscribed again, it hears the room again.
    session.subscribe(8, "chat/lobby").await;
    let published = hub
        .publish(&ChatParams::new("lobby"), &message("hub", "back"))
        .await
        .unwrap();
    assert_eq!(published.local, 1);
    assert_eq!(session.next().await, publication("chat/lobby", &message("hub", "back")));
}

/// A publish behind the one whose handler closed its subscription, in the same frame, finds
/// it ended: 103, not a handler run on a subscription that is gone.
async fn a_publish_after_its_subscriptions_close_in_the_same_frame_gets_103(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen)).await;
    let mut session = Session::open(&served, "", &[]).await;
    session.subscribe(2, "chat/lobby").await;
    let close = json!({"type": "close", "code": 1000, "reason": "bye"});
    let say = json!({"type": "say", "text": "too late"});
    session
        .send(
            &[
                json!({"id": 3, "publish": publish("chat/lobby", close)}).to_string(),
                json!({"id": 4, "publish": publish("chat/lobby", say)}).to_string(),
            ]
            .join("\n"),
        )
        .await;
    let mut lines = Vec::new();
    for _ in 0..3 {
        lines.push(session.next().await);
    }
    assert!(lines.contains(&json!({"id": 3, "publish": {}})), "{lines:?}");
    assert!(lines.contains(&error(4, 103, "permission denied")), "{lines:?}");
    assert!(
        lines.contains(&json!({"push": {"channel": "chat/lobby", "unsubscribe": {"code": 2000, "reason": "bye"}}})),
        "{lines:?}"
    );
}

/// Handlers of one session run one at a time, `on_close` included: a subscription ended and
/// made again in one frame has its old `on_close` finished before its new `on_open` runs.
async fn an_ended_subscriptions_on_close_runs_before_the_next_command(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen)).await;
    let mut session = Session::open(&served, "", &[]).await;
    let client = session.client.clone();
    session.subscribe(2, "chat/slowbye").await;
    session
        .send(
            &[
                json!({"id": 3, "unsubscribe": {"channel": "chat/slowbye"}}).to_string(),
                json!({"id": 4, "subscribe": {"channel": "chat/slowbye"}}).to_string(),
            ]
            .join("\n"),
        )
        .await;
    assert_eq!(session.next().await, json!({"id": 3, "unsubscribe": {}}));
    assert_eq!(session.next().await, json!({"id": 4, "subscribe": {}}));
    let order: Vec<&str> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|hook| match hook {
            Hooked::Open { id, .. } if *id == client => Some("open"),
            Hooked::Close { id, .. } if *id == client => Some("close"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["open", "close", "open"]);
}

async fn publish_refusals_have_their_codes(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen)).await;
    let mut session = Session::open(&served, "?user=ann", &[]).await;
    session.subscribe(2, "chat/lobby").await;
    session.subscribe(3, "chat/kitchen").await;
    let say = json!({"type": "say", "text": "hi"});
    // Not subscribed by this session (whatever the name): 103.
    for (id, channel) in [(4, "chat/attic"), (5, "nowhere/x")] {
        let (reply, before) = session.call(id, "publish", publish(channel, say.clone())).await;
        assert_eq!(
            (reply, before),
            (error(id, 103, "permission denied"), vec![]),
            "{channel}"
        );
    }
    // Data that is not a client message, or fails its validation: 107, saying why.
    let bad = [
        (6, json!({"type": "shout", "text": "hey"}), None),
        (7, json!("just a string"), None),
        (8, json!({"type": "say"}), None),
        (9, json!({"type": "say", "text": ""}), Some("must not be empty")),
    ];
    for (id, data, says) in bad {
        let (reply, before) = session.call(id, "publish", publish("chat/lobby", data.clone())).await;
        assert_eq!(before, Vec::<Value>::new(), "{data}");
        assert_eq!(reply["id"], json!(id), "{data}: {reply}");
        assert_eq!(reply["error"]["code"], json!(107), "{data}: {reply}");
        let text = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(!text.is_empty(), "{data}: a message saying why: {reply}");
        if let Some(says) = says {
            assert!(text.contains(says), "{data}: {reply}");
        }
    }
    // Nothing of those reached the room: the next publish's broadcast is the first push.
    let (reply, before) = session.call(10, "publish", publish("chat/lobby", say.clone())).await;
    assert_eq!(
        (reply, before),
        (
            ok(10, "publish"),
            vec![publication("chat/lobby", &message("ann", "hi"))]
        )
    );
    // `on_message` failing or panicking: 100, temporary; the session stays.
    for (id, kind) in [(11, "fail"), (12, "panic")] {
        let (reply, before) = session
            .call(id, "publish", publish("chat/lobby", json!({"type": kind})))
            .await;
        assert_eq!(before, Vec::<Value>::new(), "{kind}");
        assert_eq!(reply["id"], json!(id), "{kind}: {reply}");
        assert_eq!(reply["error"]["code"], json!(100), "{kind}: {reply}");
        assert_eq!(reply["error"]["temporary"], json!(true), "{kind}: {reply}");
        session.ping(id + 10).await;
    }
    // No unsubscribe push came, so both subscriptions are still there.
    let (reply, before) = session.call(30, "publish", publish("chat/kitchen", say.clone())).await;
    assert_eq!(
        (reply, before),
        (
            ok(30, "publish"),
            vec![publication("chat/kitchen", &message("ann", "hi"))]
        )
    );
    let (reply, before) = session.call(31, "publish", publish("chat/lobby", say)).await;
    assert_eq!(
        (reply, before),
        (
            ok(31, "publish"),
            vec![publication("chat/lobby", &message("ann", "hi"))]
        )
    );
}

async fn the_end_of_a_session_runs_every_subscriptions_on_close(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen)).await;
    let mut session = Session::open(&served, "", &[]).await;
    let client = session.client.clone();
    let channels = ["chat/lobby", "chat/kitchen", "chat/caf%C3%A9"];
    for (id, channel) in (2..).zip(channels) {
        session.subscribe(id, channel).await;
    }
    assert_eq!(hooked(&seen, &client, true), Vec::<String>::new());
    within("close", session.socket.close(None)).await.unwrap();
    let _ = read_until_close(&mut session.socket).await;
    hooks_until(&seen, "on_close of the three subscriptions", |hooks| {
        hooked_in(hooks, &client, true).len() >= 3
    })
    .await;
    let mut closed = hooked(&seen, &client, true);
    closed.sort();
    let mut expected = channels.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(closed, expected, "once each");
}

/// Under `on_lag = disconnect`, a subscription whose pushes overflow its queue
/// (`Server::outbound_queue`, 4 here) is ended with unsubscribe 2500 "insufficient state";
/// the session and its other subscriptions go on. The overflow is made by the handler itself:
/// 200 `conn.send`s in one go, while the session's task cannot write.
async fn lag_ends_only_the_lagging_subscription(backend: Backend) {
    let seen = Seen::default();
    let served = Served::start_on(backend, chat_server(&seen).outbound_queue(4)).await;
    let mut session = Session::open(&served, "", &[]).await;
    session.subscribe(2, "chat/flood").await;
    session.subscribe(3, "chat/calm").await;
    session
        .send(&json!({"id": 4, "publish": publish("chat/flood", json!({"type": "flood", "n": 200}))}).to_string())
        .await;
    let lagged =
        json!({"push": {"channel": "chat/flood", "unsubscribe": {"code": 2500, "reason": "insufficient state"}}});
    let (mut flooded, mut unsubscribed, mut replied) = (0, false, false);
    while !(unsubscribed && replied) {
        let message = session.next().await;
        if message == lagged {
            assert!(!unsubscribed, "one unsubscribe push");
            unsubscribed = true;
        } else if message["id"] == json!(4) {
            // The handler ran to its end (the sends it could not queue failed, ignored).
            assert_eq!(message, ok(4, "publish"));
            replied = true;
        } else {
            assert!(!unsubscribed, "nothing of chat/flood after its unsubscribe: {message}");
            assert_eq!(message["push"]["channel"], json!("chat/flood"), "{message}");
            flooded += 1;
        }
        assert!(flooded < 200, "200 pushes went through a queue of 4");
    }
    // The session and its other subscription go on; the lagging one is gone.
    let (reply, before) = session
        .call(
            5,
            "publish",
            publish("chat/calm", json!({"type": "say", "text": "calm"})),
        )
        .await;
    assert_eq!(
        (reply, before),
        (ok(5, "publish"), vec![publication("chat/calm", &message("-", "calm"))])
    );
    let (reply, _) = session
        .call(
            6,
            "publish",
            publish("chat/flood", json!({"type": "say", "text": "hi"})),
        )
        .await;
    assert_eq!(reply, error(6, 103, "permission denied"));
    session.ping(7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_three_subscriptions_is_one_connection() {
    let seen = Seen::default();
    let server = chat_server(&seen);
    let (hub, metrics) = (server.hub(), server.metrics());
    let served = Served::start(server).await;
    let mut session = Session::open(&served, "", &[]).await;
    for (id, room) in (2..).zip(["lobby", "kitchen", "café"]) {
        session.subscribe(id, &ChatParams::new(room).to_string()).await;
    }
    let counted = metrics.snapshot();
    assert_eq!(
        (counted.connections_open, counted.connections_total),
        (1, 1),
        "{counted:?}"
    );
    for room in ["lobby", "kitchen", "café"] {
        assert_eq!(hub.subscribers(&ChatParams::new(room)), 1, "{room}");
    }
    within("close", session.socket.close(None)).await.unwrap();
    let _ = read_until_close(&mut session.socket).await;
    within("the session to be uncounted", async {
        while metrics.snapshot().connections_open != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    hooks_until(&seen, "the subscriptions to be closed", |_| {
        ["lobby", "kitchen", "café"]
            .iter()
            .all(|room| hub.subscribers(&ChatParams::new(*room)) == 0)
    })
    .await;
}

/// The real SDK (`tests/node/session_channels.mjs`, whose header says what it does step by
/// step): three subscriptions over one socket, a publish and its broadcast, publications from
/// the hub and from a direct client, 107 for bad publish data, and silence after an
/// unsubscribe. This side acts on the script's `ready`, `waiting` and `unsubscribed` lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centrifuge_sdk_subscribes_publishes_and_unsubscribes() {
    if !require(&[Component::Node]) {
        return;
    }
    let seen = Seen::default();
    let server = chat_server(&seen);
    let (hub, metrics) = (server.hub(), server.metrics());
    let served = Served::start(server).await;
    let url = format!("{}{PATH}?user=ann", served.base());
    let mut node = NodeScript::start("session_channels.mjs", url).await;
    let rooms = ["lobby", "kitchen", "café"].map(ChatParams::new);
    let channels = ["chat/lobby", "chat/kitchen", "chat/caf%C3%A9"];
    let lobby = &rooms[0];
    let mut lines: Vec<Value> = Vec::new();
    let mut direct = None;
    let run = async {
        while let Some(event) = node.lines.recv().await {
            lines.push(event.clone());
            match event["ev"].as_str() {
                Some("ready") => {
                    // One connection carries the three subscriptions.
                    let client = event["client"].as_str().unwrap();
                    assert_eq!(hooked(&seen, client, false), channels, "{lines:#?}");
                    let counted = metrics.snapshot();
                    assert_eq!(
                        (counted.connections_open, counted.connections_total),
                        (1, 1),
                        "{counted:?}"
                    );
                    for room in &rooms {
                        assert_eq!(hub.subscribers(room), 1, "{room}");
                    }
                }
                Some("waiting") => {
                    // A direct client of the lobby, then the hub's publication, then the
                    // direct client's message.
                    let mut socket = raw_connect(&served, "/chat/lobby?user=dan").await;
                    assert!(matches!(next_event(&mut socket).await, ChatEvent::Welcome { .. }));
                    let published = hub.publish(lobby, &message("hub", "from hub")).await.unwrap();
                    assert_eq!(published.local, 2, "the SDK's session and the direct client");
                    assert_eq!(next_event(&mut socket).await, message("hub", "from hub"));
                    send(&mut socket, r#"{"type":"say","text":"from direct"}"#).await;
                    assert_eq!(next_event(&mut socket).await, message("dan", "from direct"));
                    direct = Some(socket);
                }
                // Code 0: the SDK's own `unsubscribe()` (not a refusal from the server).
                Some("unsubscribed") if event["channel"] == "chat/kitchen" && event["code"] == 0 => {
                    let client = lines
                        .iter()
                        .find(|line| line["ev"] == "ready")
                        .and_then(|line| line["client"].as_str())
                        .unwrap()
                        .to_owned();
                    hooks_until(&seen, "on_close of chat/kitchen", |hooks| {
                        hooked_in(hooks, &client, true).contains(&"chat/kitchen".to_owned())
                    })
                    .await;
                    assert_eq!(hub.subscribers(&rooms[1]), 0);
                    let published = hub
                        .publish(&rooms[1], &message("hub", "after unsubscribe"))
                        .await
                        .unwrap();
                    assert_eq!(published.local, 0, "nobody is on chat/kitchen any more");
                    let published = hub.publish(lobby, &message("hub", "last")).await.unwrap();
                    assert_eq!(published.local, 2);
                }
                _ => {}
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), run).await.is_err() {
        panic!("the Node client did not finish in 60 s: {lines:#?}");
    }
    drop(direct);
    let status = node.exit_status().await;
    assert!(status.success(), "node: {status}: {lines:#?}");

    let of = |ev: &str| -> Vec<&Value> { lines.iter().filter(|line| line["ev"] == ev).collect() };
    let client = of("ready")[0]["client"].as_str().unwrap().to_owned();
    assert_eq!(of("connected")[0]["client"], json!(client));
    assert_eq!(of("subscribed").len(), 3, "{lines:#?}");
    assert!(of("sub-error").is_empty(), "{lines:#?}");
    // Each subscription's first publication is its welcome, with the session's id and the
    // channel string.
    let pubs = |channel: &str| -> Vec<Value> {
        lines
            .iter()
            .filter(|line| line["ev"] == "pub" && line["channel"] == channel)
            .map(|line| line["data"].clone())
            .collect()
    };
    for (room, channel) in ["lobby", "kitchen", "café"].into_iter().zip(channels) {
        let welcome = ChatEvent::Welcome {
            room: room.into(),
            user: "ann".into(),
            tag: "-".into(),
            pet: "-".into(),
            address: channel.into(),
            id: client.clone(),
        };
        assert_eq!(
            pubs(channel).first(),
            Some(&serde_json::to_value(&welcome).unwrap()),
            "{lines:#?}"
        );
    }
    let data = |from: &str, text: &str| serde_json::to_value(message(from, text)).unwrap();
    assert_eq!(pubs("chat/caf%C3%A9")[1..], [data("ann", "bonjour")], "{lines:#?}");
    let errors: Vec<(&str, &Value)> = of("publish-error")
        .iter()
        .map(|line| (line["kind"].as_str().unwrap(), &line["code"]))
        .collect();
    assert_eq!(
        errors,
        [("undecodable", &json!(107)), ("invalid", &json!(107))],
        "{lines:#?}"
    );
    assert!(
        of("publish-error")
            .iter()
            .all(|line| !line["message"].as_str().unwrap_or_default().is_empty()),
        "{lines:#?}"
    );
    assert_eq!(
        pubs("chat/lobby")[1..],
        [data("hub", "from hub"), data("dan", "from direct"), data("hub", "last")],
        "{lines:#?}"
    );
    assert_eq!(pubs("chat/kitchen").len(), 1, "the welcome only: {lines:#?}");
    assert_eq!(of("done")[0]["kitchenAfter"], json!([]), "{lines:#?}");
}
