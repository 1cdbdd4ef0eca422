//! Beyond JSON text: MessagePack channels, raw passthrough channels and binary side-band
//! frames, over real loopback sockets on both front ends (standalone and axum), and what each
//! kind of bad input gets.

// Test helpers too report failure by panicking.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use ws_channels::tungstenite::Message;
use ws_channels::{Channel, CloseCode, Error, ErrorReply, Event, Raw, Report, Server, channel, connect};
use ws_channels_tests::{Backend, Encodings, Served, raw_connect, read_until_close, within};

ws_channels_tests::on_both_backends!(
    msgpack_messages_travel_as_binary_frames_and_broadcast_encodes_once,
    msgpack_bad_input_gets_its_documented_code_and_harms_no_one,
    msgpack_errors_can_be_replied_to,
    raw_frames_come_back_byte_for_byte,
    binary_side_band_frames_travel_beside_json,
);

/// A MessagePack room.
#[channel("pack/<room>", server = PackEvent, codec = msgpack)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PackCommand {
    Say { text: String },
}

/// What a MessagePack room hears.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PackEvent {
    Said {
        text: String,
        #[serde(skip)]
        encodings: Encodings,
    },
    Error {
        message: String,
    },
}

impl Serialize for PackEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("PackEvent", 2)?;
        match self {
            PackEvent::Said { text, encodings } => {
                if let Some(count) = &encodings.0 {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                s.serialize_field("type", "said")?;
                s.serialize_field("text", text)?;
            }
            PackEvent::Error { message } => {
                s.serialize_field("type", "error")?;
                s.serialize_field("message", message)?;
            }
        }
        s.end()
    }
}

impl ErrorReply for PackEvent {
    fn error_reply(error: &Error) -> Self {
        PackEvent::Error {
            message: Report(error).to_string(),
        }
    }
}

/// The same room, answering bad input with an error event instead of closing.
#[channel("pack-reply/<room>", server = PackEvent, codec = msgpack, on_invalid = reply)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PackReplyCommand {
    Say { text: String },
}

fn pack_server(encodings: Arc<AtomicUsize>) -> Server {
    let server = Server::new().max_message_size(1024);
    let server = PackCommand::register(server, move |h| {
        let encodings = encodings.clone();
        // Binary frames are this channel's messages: side-band bytes never see them.
        h.on_binary(|_, _| async { Err("on_binary got a MessagePack message".into()) })
            .on_message(move |conn, PackCommand::Say { text }| {
                let encodings = encodings.clone();
                async move {
                    let event = PackEvent::Said {
                        text,
                        encodings: Encodings(Some(encodings)),
                    };
                    let _ = conn.broadcast(&event).await?;
                    Ok(())
                }
            })
    });
    PackReplyCommand::register(server, |h| {
        h.on_message(|conn, PackReplyCommand::Say { text }| async move {
            conn.send(&PackEvent::Said {
                text,
                encodings: Encodings::default(),
            })
            .await?;
            Ok(())
        })
    })
}

async fn msgpack_messages_travel_as_binary_frames_and_broadcast_encodes_once(backend: Backend) {
    let encodings = Arc::new(AtomicUsize::new(0));
    let pack = pack_server(encodings.clone());
    let hub = pack.hub();
    let server = Served::start_on(backend, pack).await;
    let params = PackCommandParams::new("lobby");
    let (tx, mut rx) = connect(&server.base(), &params).await.unwrap();
    let (_other_tx, mut other_rx) = connect(&server.base(), &params).await.unwrap();
    // No waiting: a connection is a member of its address's topic before its 101 is sent.
    assert_eq!(hub.subscribers(&params), 2, "both are members once connected");
    tx.send(&PackCommand::Say { text: "hé".into() }).await.unwrap();
    for rx in [&mut rx, &mut other_rx] {
        let event = within("the broadcast", rx.next()).await.unwrap().unwrap();
        assert_eq!(
            event,
            Event::Message(PackEvent::Said {
                text: "hé".into(),
                encodings: Encodings::default()
            })
        );
    }
    assert_eq!(encodings.load(Ordering::SeqCst), 1, "encoded once for both receivers");
    // On the wire: a binary frame, a MessagePack map with the field names.
    let mut raw = raw_connect(&server, "/pack/lobby").await;
    let frame = rmp_serde::to_vec_named(&PackCommand::Say { text: "x".into() }).unwrap();
    raw.send(Message::binary(frame)).await.unwrap();
    let reply = within("a frame", raw.next()).await.unwrap().unwrap();
    let Message::Binary(bytes) = reply else {
        panic!("expected a binary frame, got {reply:?}")
    };
    let decoded: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(decoded, serde_json::json!({"type": "said", "text": "x"}));
}

/// Sends `frame` on a fresh connection to the MessagePack room; returns its close code, after
/// checking a bystander in the same room still gets served.
async fn msgpack_bad_frame(server: &Served, frame: Message) -> CloseCode {
    let params = PackCommandParams::new("bad");
    let (bystander_tx, mut bystander_rx) = connect(&server.base(), &params).await.unwrap();
    let mut socket = raw_connect(server, "/pack/bad").await;
    socket.send(frame).await.unwrap();
    let (_, close) = read_until_close(&mut socket).await;
    bystander_tx
        .send(&PackCommand::Say { text: "fine".into() })
        .await
        .unwrap();
    let heard = within("the bystander", bystander_rx.next()).await.unwrap().unwrap();
    assert!(matches!(heard, Event::Message(PackEvent::Said { text, .. }) if text == "fine"));
    close.unwrap().code
}

async fn msgpack_bad_input_gets_its_documented_code_and_harms_no_one(backend: Backend) {
    let server = Served::start_on(backend, pack_server(Arc::default())).await;
    let cases = [
        (
            "a text frame",
            Message::text(r#"{"type":"say","text":"x"}"#),
            CloseCode::Unsupported,
        ),
        (
            "bytes that are not MessagePack",
            Message::binary(vec![0xc1, 0xff, 0x00]),
            CloseCode::Invalid,
        ),
        (
            "MessagePack of the wrong shape",
            Message::binary(rmp_serde::to_vec_named(&serde_json::json!({"type": "shout"})).unwrap()),
            CloseCode::Invalid,
        ),
        (
            "an oversize message",
            Message::binary(rmp_serde::to_vec_named(&PackCommand::Say { text: "x".repeat(1500) }).unwrap()),
            CloseCode::Size,
        ),
    ];
    for (what, frame, code) in cases {
        assert_eq!(msgpack_bad_frame(&server, frame).await, code, "{what}");
    }
}

async fn msgpack_errors_can_be_replied_to(backend: Backend) {
    let server = Served::start_on(backend, pack_server(Arc::default())).await;
    let params = PackReplyCommandParams::new("r");
    // Frames a typed client never sends (a text frame, bytes that are not MessagePack), on a
    // raw socket read through the low-level typed subscription.
    let (mut sink, stream) = raw_connect(&server, &format!("/{params}")).await.split();
    let mut rx = PackReplyCommand::subscribe(stream);
    sink.send(Message::text("not binary")).await.unwrap();
    sink.send(Message::binary(vec![0xc1])).await.unwrap();
    for expected in ["unexpected text frame", "cannot decode"] {
        match within("an error reply", rx.next()).await.unwrap().unwrap() {
            PackEvent::Error { message } => assert!(message.contains(expected), "{message}"),
            other => panic!("expected an error event, got {other:?}"),
        }
    }
}

/// Any text or binary message, verbatim.
#[channel("raw/<id>", codec = raw)]
struct RawEcho;

async fn raw_frames_come_back_byte_for_byte(backend: Backend) {
    let server = Server::new()
        .max_message_size(2 * 1024 * 1024)
        .max_outgoing_message_size(2 * 1024 * 1024);
    let server = RawEcho::register(server, |h| {
        h.on_message(|conn, message: Raw| async move {
            conn.send(&message).await?;
            Ok(())
        })
    });
    let server = Served::start_on(backend, server).await;
    let (tx, mut rx) = connect(&server.base(), &RawEchoParams::new("1")).await.unwrap();
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let sent = [
        Raw::text("héllo, not JSON {"),
        Raw::binary(vec![0, 255, 128]),
        Raw::text(""),
        Raw::binary(big),
    ];
    for message in &sent {
        tx.send(message).await.unwrap();
    }
    for message in &sent {
        let echoed = within("the echo", rx.next()).await.unwrap().unwrap();
        assert_eq!(
            echoed,
            Event::Message(message.clone()),
            "in order, kind and bytes unchanged"
        );
    }
}

/// Accepts JSON text and answers binary uploads with their size, plus a thumbnail as bytes.
#[channel("upload/<id>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Upload {
    size: usize,
}

async fn binary_side_band_frames_travel_beside_json(backend: Backend) {
    let server = Upload::register(Server::new(), |h| {
        h.on_binary(|conn, bytes| async move {
            conn.send(&Upload { size: bytes.len() }).await?;
            conn.send_binary(bytes.slice(..2)).await?;
            Ok(())
        })
    });
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/upload/1").await;
    socket.send(Message::binary(vec![7u8; 300])).await.unwrap();
    let json = within("the reply", socket.next()).await.unwrap().unwrap();
    assert_eq!(json, Message::text(r#"{"size":300}"#));
    let bytes = within("the bytes", socket.next()).await.unwrap().unwrap();
    assert_eq!(bytes, Message::binary(vec![7u8, 7]));
}
