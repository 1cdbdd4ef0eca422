//! The bad-input matrix (`ws-channels/docs/bad-input.md`): a regression test for each row that
//! no other suite covered, over real loopback sockets. Where a client library cannot produce
//! the input (a message that never ends, a reserved opcode, an invalid close code, a 1 MB
//! header) the test writes raw bytes on a TCP socket.
//!
//! Each test asserts the documented close code or HTTP status, then that a second client is
//! still served: the server neither panicked nor stalled. Frame-level rows run on both front
//! ends (standalone and axum); handshake rows run where the front ends differ.

// Test helpers too report failure by panicking.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_channels::tungstenite::Message;
use ws_channels::{Channel, CloseCode, CloseInfo, Server, channel};
use ws_channels_tests::{Backend, Served, next_text, raw_connect, raw_http, within};

ws_channels_tests::on_both_backends!(
    an_unknown_type_closes_1007,
    a_known_type_with_a_wrong_field_closes_1007,
    invalid_utf8_closes_1007,
    fragments_adding_up_past_the_limit_close_1009,
    a_message_that_never_ends_closes_1009,
    protocol_violations_close_1002,
    an_invalid_close_code_is_answered_with_1002,
    a_slow_consumers_close_frame_never_reaches_it,
    a_1_mb_header_is_refused_with_431,
    incomplete_upgrades_and_garbage_are_refused,
    an_http_1_0_upgrade_is_refused_before_any_hook,
    bad_percent_encoding_is_refused_with_400,
);

/// The largest message the test server reads (the protocol layer reads up to twice that).
const MAX: usize = 1024;

/// The echo channel: `{"type":"say","text":…}` comes back as it was sent.
#[channel("echo/<room>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Echo {
    Say { text: String },
}

/// How each connection ended, as `on_close` saw it.
type Closes = Arc<Mutex<Vec<CloseInfo>>>;

/// The echo server every test uses: 1 KiB messages, short timeouts, closes recorded.
fn echo_server(closes: Closes) -> Server<Closes> {
    let server = Server::with_state(closes)
        .max_message_size(MAX)
        .close_timeout(Duration::from_millis(300))
        .handshake_timeout(Duration::from_millis(500));
    Echo::register(server, |h| {
        h.on_message(|conn, msg| async move {
            conn.send(&msg).await?;
            Ok(())
        })
        .on_close(|conn, info| async move { conn.state().lock().unwrap().push(info) })
    })
}

async fn start(backend: Backend) -> (Served, Closes) {
    let closes = Closes::default();
    (Served::start_on(backend, echo_server(closes.clone())).await, closes)
}

/// A new client is served: the server survived whatever came before.
async fn still_served(server: &Served) {
    let mut client = raw_connect(server, "/echo/after").await;
    let say = r#"{"type":"say","text":"still here"}"#;
    client.send(Message::text(say)).await.unwrap();
    assert_eq!(next_text(&mut client).await, say);
}

/// The first connection's end, as `on_close` saw it.
async fn first_close(closes: &Closes) -> CloseInfo {
    within("on_close", async {
        loop {
            if let Some(info) = closes.lock().unwrap().first().cloned() {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// An upgraded connection to `path`, as a raw TCP socket to write any bytes on.
async fn raw_socket(server: &Served, path: &str) -> TcpStream {
    match raw_connect(server, path).await.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => unreachable!("plain ws:// connection"),
    }
}

/// A client frame: `first` is the first byte (FIN, RSV and opcode), the payload masked with a
/// fixed key as RFC 6455 §5.3 requires of clients.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Opcodes with the FIN bit.
const TEXT: u8 = 0x81;
const CLOSE: u8 = 0x88;
/// A text frame that more frames continue, and such a continuation frame.
const TEXT_MORE: u8 = 0x01;
const CONTINUATION_MORE: u8 = 0x00;
const CONTINUATION_FIN: u8 = 0x80;

/// Reads a server's frames from a raw socket until its close frame: its code and reason, or
/// `None` when the connection ended without one (what a WebSocket client reports as 1006).
async fn close_from(tcp: &mut (impl AsyncRead + Unpin)) -> Option<(u16, String)> {
    within("the server's close frame or the end of the connection", async {
        loop {
            let mut head = [0u8; 2];
            tcp.read_exact(&mut head).await.ok()?;
            // Server frames are not masked.
            let len = match head[1] & 0x7f {
                126 => {
                    let mut len = [0u8; 2];
                    tcp.read_exact(&mut len).await.ok()?;
                    usize::from(u16::from_be_bytes(len))
                }
                127 => {
                    let mut len = [0u8; 8];
                    tcp.read_exact(&mut len).await.ok()?;
                    usize::try_from(u64::from_be_bytes(len)).unwrap()
                }
                n => usize::from(n),
            };
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.ok()?;
            if head[0] & 0x0f == 0x8 {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
            }
        }
    })
    .await
}

/// Writes `bytes` on a fresh connection and returns the server's close frame.
async fn close_after(server: &Served, bytes: &[u8]) -> Option<(u16, String)> {
    let mut tcp = raw_socket(server, "/echo/culprit").await;
    tcp.write_all(bytes).await.unwrap();
    close_from(&mut tcp).await
}

async fn an_unknown_type_closes_1007(backend: Backend) {
    let (server, closes) = start(backend).await;
    let (code, reason) = close_after(&server, &frame(TEXT, br#"{"type":"shout","text":"hi"}"#))
        .await
        .unwrap();
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("unknown variant `shout`"), "{reason}");
    assert_eq!(first_close(&closes).await.code, CloseCode::Invalid);
    still_served(&server).await;
}

async fn a_known_type_with_a_wrong_field_closes_1007(backend: Backend) {
    let (server, _) = start(backend).await;
    let (code, reason) = close_after(&server, &frame(TEXT, br#"{"type":"say","text":1}"#))
        .await
        .unwrap();
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("invalid type"), "{reason}");
    still_served(&server).await;
}

async fn invalid_utf8_closes_1007(backend: Backend) {
    let (server, closes) = start(backend).await;
    let (code, reason) = close_after(&server, &frame(TEXT, b"{\"type\":\"say\",\"text\":\"\xff\xfe\"}"))
        .await
        .unwrap();
    assert_eq!((code, reason.as_str()), (1007, "invalid UTF-8"));
    assert_eq!(first_close(&closes).await.code, CloseCode::Invalid);
    still_served(&server).await;
}

async fn fragments_adding_up_past_the_limit_close_1009(backend: Backend) {
    let (server, _) = start(backend).await;
    // 600 + 600 + 100 bytes: each frame is small, the message is over MAX (but not 2 × MAX,
    // so it is read whole and checked).
    let text = format!(r#"{{"type":"say","text":"{}"}}"#, "x".repeat(1300 - 24));
    let bytes = text.as_bytes();
    let mut frames = frame(TEXT_MORE, &bytes[..600]);
    frames.extend(frame(CONTINUATION_MORE, &bytes[600..1200]));
    frames.extend(frame(CONTINUATION_FIN, &bytes[1200..]));
    let (code, reason) = close_after(&server, &frames).await.unwrap();
    assert_eq!(code, 1009, "{reason}");
    assert_eq!(reason, "message of 1300 bytes is larger than the limit of 1024 bytes");
    still_served(&server).await;
}

async fn a_message_that_never_ends_closes_1009(backend: Backend) {
    let (server, closes) = start(backend).await;
    let tcp = raw_socket(&server, "/echo/culprit").await;
    let (mut read, mut write) = tcp.into_split();
    // A text frame without FIN, then 100-byte continuations, for as long as the server reads.
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        let mut next = frame(TEXT_MORE, b"{\"type\":\"say\",\"text\":\"");
        while write.write_all(&next).await.is_ok() && sent < 10_000 {
            sent += 1;
            next = frame(CONTINUATION_MORE, &[b'x'; 100]);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sent
    });
    let (code, reason) = close_from(&mut read).await.unwrap();
    assert_eq!((code, reason.as_str()), (1009, "message too large"));
    let info = first_close(&closes).await;
    assert_eq!((info.code, info.by_server), (CloseCode::Size, true));
    let sent = within("the writer to give up", writer).await.unwrap();
    assert!(sent < 10_000, "the server stopped reading: {sent} frames written");
    still_served(&server).await;
}

async fn protocol_violations_close_1002(backend: Backend) {
    let (server, closes) = start(backend).await;
    let unmasked = [TEXT, 2, b'{', b'}'];
    let cases: [(&str, Vec<u8>); 6] = [
        ("a reserved data opcode (0x3)", frame(0x83, b"{}")),
        ("a reserved control opcode (0xB)", frame(0x8b, b"")),
        ("an RSV bit without an extension", frame(TEXT | 0x40, b"{}")),
        ("an unmasked client frame", unmasked.to_vec()),
        (
            "a continuation with no message to continue",
            frame(CONTINUATION_FIN, b"{}"),
        ),
        ("a ping longer than 125 bytes", {
            let mut long = frame(0x89, &[0u8; 126]);
            long[1] = 0x80 | 126;
            long
        }),
    ];
    for (what, bytes) in cases {
        let close = close_after(&server, &bytes).await;
        assert_eq!(close, Some((1002, "protocol error".to_owned())), "{what}");
    }
    let info = first_close(&closes).await;
    assert_eq!((info.code, info.by_server), (CloseCode::Protocol, true));
    still_served(&server).await;
}

async fn an_invalid_close_code_is_answered_with_1002(backend: Backend) {
    let (server, closes) = start(backend).await;
    for code in [999u16, 1005, 1006, 2999] {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend(b"bye");
        let close = close_after(&server, &frame(CLOSE, &payload)).await;
        assert_eq!(close.as_ref().map(|c| c.0), Some(1002), "close code {code}: {close:?}");
    }
    // tungstenite answers with 1002 and hands the reader that frame in place of the client's:
    // `on_close` sees 1002, with the client as the side that closed.
    let info = first_close(&closes).await;
    assert_eq!(
        (info.code, info.reason.as_str(), info.by_server),
        (CloseCode::Protocol, "Protocol violation", false)
    );
    still_served(&server).await;
}

/// Pushed by the server only, with a tiny queue, so a reader that never reads is a slow
/// consumer quickly.
#[channel("feed/<topic>", server_only)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Feed {
    seq: u64,
    padding: String,
}

async fn a_slow_consumers_close_frame_never_reaches_it(backend: Backend) {
    let closes = Closes::default();
    let server = Feed::register(echo_server(closes.clone()).outbound_queue(4), |h| {
        h.on_close(|conn, info| async move { conn.state().lock().unwrap().push(info) })
    });
    let hub = server.hub();
    let metrics = server.metrics();
    let server = Served::start_on(backend, server).await;
    let mut deaf = raw_socket(&server, "/feed/news").await;
    let params = FeedParams::new("news");
    let padding = "x".repeat(32 * 1024);
    // Publish as fast as the writer writes, so the queue overflows only once the socket is
    // full (the writer stuck for a while), not because a busy machine was slow to run it; then
    // overflow it.
    within("the slow consumer's disconnect", async {
        let (mut seq, mut written, mut since) = (0, 0, std::time::Instant::now());
        while metrics.snapshot().lag_disconnects == 0 {
            let out = metrics.snapshot().messages_out;
            if out != written {
                (written, since) = (out, std::time::Instant::now());
            }
            if seq <= written || since.elapsed() > Duration::from_millis(300) {
                let feed = Feed {
                    seq,
                    padding: padding.clone(),
                };
                let _ = hub.publish(&params, &feed).await.unwrap();
                seq += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let info = first_close(&closes).await;
    assert_eq!(
        (info.code, info.reason.as_str(), info.by_server),
        (CloseCode::Again, "slow consumer: outbound queue full", true)
    );
    // The client reads at last: the messages that were in its socket, then the end of the
    // connection without the close frame, which never fit.
    assert_eq!(
        close_from(&mut deaf).await,
        None,
        "no close frame reaches a full socket"
    );
    still_served(&server).await;
}

/// A WebSocket upgrade request to the echo channel with one header `size` bytes long.
fn request_with_a_header_of(size: usize) -> Vec<u8> {
    let mut request = b"GET /echo/r HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Big: "
        .to_vec();
    request.extend(std::iter::repeat_n(b'a', size));
    request.extend(b"\r\n\r\n");
    request
}

async fn a_1_mb_header_is_refused_with_431(backend: Backend) {
    let (server, _) = start(backend).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    // Written by another task: the server answers (and hangs up) before reading it all.
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request_with_a_header_of(1 << 20)).await;
        write
    });
    let mut response = Vec::new();
    within("the response", async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 431 "),
        "{backend:?}: {:?}",
        response.lines().next()
    );
    drop(within("the writer", writer).await);
    still_served(&server).await;
}

/// Standalone: the handshake timeout bounds the whole request head, so a client that trickles
/// a byte at a time (each well within the timeout) is dropped as surely as a silent one. (axum
/// under `serve_app`: `the_axum_serve_helper_drops_idle_and_slowloris_sockets` in `e2e.rs`.)
#[tokio::test]
async fn a_slowloris_handshake_is_dropped_standalone() {
    let (server, _) = start(Backend::Standalone).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let head = b"GET /echo/r HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = std::time::Instant::now();
    // One byte every 50 ms, while the server keeps the socket: 0.5 s handshake timeout.
    for byte in head {
        if slow.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let mut rest = Vec::new();
    let read = within("the server hanging up", slow.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "no response to a head that never completed: {rest:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "dropped at the handshake timeout, not when the trickle ended: {:?}",
        started.elapsed()
    );
    still_served(&server).await;
}

/// Requests that are not (complete) WebSocket upgrades, on both front ends: the same
/// statuses, though hyper parses the request under axum.
async fn incomplete_upgrades_and_garbage_are_refused(backend: Backend) {
    let (server, _) = start(backend).await;
    // `close` lets hyper end the connection after a refusal, as the standalone server always does.
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade, close\r\n";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = [
        (
            "no Sec-WebSocket-Key",
            format!("GET /echo/r HTTP/1.1\r\nHost: x\r\n{upgrade}Sec-WebSocket-Version: 13\r\n\r\n"),
            400,
        ),
        (
            "WebSocket version 8",
            format!("GET /echo/r HTTP/1.1\r\nHost: x\r\n{upgrade}{key}Sec-WebSocket-Version: 8\r\n\r\n"),
            426,
        ),
        (
            "no Upgrade header",
            "GET /echo/r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
            426,
        ),
        ("bytes that are not HTTP", "\u{1}\u{2} garbage\r\n\r\n".to_owned(), 400),
    ];
    for (what, request, status) in cases {
        let (got, response) = raw_http(server.addr, &request).await;
        assert_eq!(got, status, "{what} on {backend:?}: {response}");
    }
    still_served(&server).await;
}

/// RFC 6455 §4.1: the handshake is an HTTP/1.1 request. An HTTP/1.0 one (or one whose key is
/// not the base64 of 16 bytes, §4.2.1) is refused with 400 before `on_connect` runs, on both
/// front ends; it is counted as a refusal, never as a connection.
async fn an_http_1_0_upgrade_is_refused_before_any_hook(backend: Backend) {
    let hooks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hooks.clone();
    let server = Echo::register(Server::new(), move |h| {
        let counted = counted.clone();
        h.on_connect(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok(()) }
        })
        .on_message(|conn, msg| async move {
            conn.send(&msg).await?;
            Ok(())
        })
    });
    let metrics = server.metrics();
    let server = Served::start_on(backend, server).await;
    // `close` lets hyper end the connection after a refusal, as the standalone server does.
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\n";
    let cases = [
        (
            "HTTP/1.0",
            format!("GET /echo/r HTTP/1.0\r\nHost: x\r\n{upgrade}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
        ),
        (
            "a key of 15 bytes",
            format!("GET /echo/r HTTP/1.1\r\nHost: x\r\n{upgrade}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n\r\n"),
        ),
        (
            "a key that is not base64",
            format!("GET /echo/r HTTP/1.1\r\nHost: x\r\n{upgrade}Sec-WebSocket-Key: not*base64*at*all*here==\r\n\r\n"),
        ),
    ];
    for (what, request) in cases {
        let (status, response) = raw_http(server.addr, &request).await;
        assert_eq!(status, 400, "{what} on {backend:?}: {response}");
    }
    assert_eq!(hooks.load(std::sync::atomic::Ordering::SeqCst), 0, "no hook ran");
    let counted = metrics.snapshot();
    assert_eq!(counted.connections_total, 0, "{counted:?}");
    assert_eq!(counted.handshakes_rejected, 3, "{counted:?}");
    still_served(&server).await;
    assert_eq!(
        hooks.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "an HTTP/1.1 upgrade runs it"
    );
}

/// A `%` not followed by two hex digits is not percent-encoding: refused with 400 on both
/// front ends, so `/echo/%zz` cannot be a second spelling of `/echo/%25zz`'s topic.
async fn bad_percent_encoding_is_refused_with_400(backend: Backend) {
    let (server, _) = start(backend).await;
    for path in ["/echo/%zz", "/echo/a%", "/echo/a%2", "/echo/%%41"] {
        assert_eq!(
            ws_channels_tests::handshake_status(&server, path).await,
            400,
            "{path} on {backend:?}"
        );
    }
    assert_eq!(ws_channels_tests::handshake_status(&server, "/echo/%25zz").await, 101);
    still_served(&server).await;
}
