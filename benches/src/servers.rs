//! The servers compared, each with the same wire behaviour: JSON [`Chat`] text frames on any
//! path (MessagePack binary frames for `ws-channels-msgpack`, see [`format()`]); in
//! [`Mode::Echo`] every message goes back to its sender, in [`Mode::Broadcast`] to every other
//! connection. Every server runs on the same tokio runtime, and the hand-written ones use
//! ws-channels' default buffer sizes, so the differences measured are the designs.

use std::collections::HashMap;
use std::future::ready;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::stream::{SplitSink, unfold};
use futures_util::{Future, Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use ws_channels::Channel;

use crate::Result;
use crate::wire::{Chat, Format, PackChat, RoomChat};

/// What a server does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Back to the sender.
    Echo,
    /// To every other connection (serialized once).
    Broadcast,
    /// To every other connection of the same room, `soak/<room>` (ws-channels only).
    Rooms,
}

impl Mode {
    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Broadcast => "broadcast",
            Self::Rooms => "rooms",
        }
    }

    /// The mode named `name`.
    pub fn parse(name: &str) -> Result<Self> {
        [Self::Echo, Self::Broadcast, Self::Rooms]
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| format!("unknown mode {name:?}").into())
    }
}

/// The Rust servers, by name, with what they are.
pub const RUST_SERVERS: [(&str, &str); 6] = [
    (
        "ws-channels",
        "ws-channels as a user writes it: #[channel(\"bench\")], conn.send / broadcast_others, pings off, outbound queue 256",
    ),
    (
        MSGPACK,
        "the same echo with the channel declared `codec = msgpack`: the same struct as MessagePack binary frames (echo only)",
    ),
    (
        "ws-channels-redis",
        "the same with the Redis backplane attached (a redis-server of the run's own on loopback, prefix `bench`); \
         `cross-node` is two of them, the publisher on one and the subscribers on the other",
    ),
    (
        "typed-forward",
        "hand-written typed floor: split + forward (batched flushes); broadcast serializes once into an mpsc per connection",
    ),
    (
        "typed-queue",
        "hand-written typed: a reader task → mpsc(256) → a writer task (forward)",
    ),
    (
        "raw-bytes",
        "hand-written untyped: frames echoed untouched (split + forward)",
    ),
];

/// The ws-channels server whose bench channel is declared `codec = msgpack`.
pub const MSGPACK: &str = "ws-channels-msgpack";

/// The format server `name` speaks.
pub fn format(name: &str) -> Format {
    match name {
        MSGPACK => Format::MsgPack,
        _ => Format::Json,
    }
}

/// The bound of every hand-written per-connection queue: ws-channels' outbound queue in this
/// suite. A full queue disconnects the slow reader, like ws-channels' default lag policy.
pub const QUEUE: usize = 256;

/// Serves server `name` in `mode` on an ephemeral loopback port until the process ends; prints
/// `listening on ws://ADDR` first. `redis` is the Redis URL of `ws-channels-redis`.
pub fn run(name: &str, mode: Mode, redis: Option<String>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on ws://{}", listener.local_addr()?);
        match (name, mode) {
            ("ws-channels", _) => ws_channels_server(listener, mode, None).await,
            ("ws-channels-redis", _) => {
                let url = redis.ok_or("ws-channels-redis needs a Redis URL")?;
                ws_channels_server(listener, mode, Some(url)).await
            }
            (MSGPACK, Mode::Echo) => ws_channels_msgpack_echo(listener).await,
            ("typed-forward", Mode::Echo) => accept_loop(listener, typed_forward_echo).await,
            ("typed-queue", Mode::Echo) => accept_loop(listener, typed_queue_echo).await,
            ("raw-bytes", Mode::Echo) => accept_loop(listener, raw_bytes_echo).await,
            // Broadcasting needs a queue per receiver whatever the design: one broadcaster.
            ("typed-forward" | "typed-queue", Mode::Broadcast) => {
                let room = Arc::new(Room::default());
                accept_loop(listener, move |ws| typed_broadcast(ws, room.clone())).await
            }
            _ => Err(format!("server {name:?} has no {mode:?} mode").into()),
        }
    })
}

/// ws-channels with the two settings the results state.
fn ws_channels_settings() -> ws_channels::Server {
    ws_channels::Server::new().ping_interval(None).outbound_queue(QUEUE)
}

/// ws-channels written as a user would, with the two settings the results state; with `redis`,
/// the Redis backplane attached.
async fn ws_channels_server(listener: TcpListener, mode: Mode, redis: Option<String>) -> Result<()> {
    let server = ws_channels_settings();
    if let Some(url) = redis {
        let config = ws_channels::RedisConfig::new(url).prefix("bench");
        ws_channels::RedisBackplane::connect(&server.hub(), config).await?;
    }
    let server = match mode {
        Mode::Echo => Chat::register(server, |h| {
            h.on_message(|conn, message| async move {
                conn.send(&message).await?;
                Ok(())
            })
        }),
        Mode::Broadcast => Chat::register(server, |h| {
            h.on_message(|conn, message| async move {
                let _ = conn.broadcast_others(&message).await?;
                Ok(())
            })
        }),
        Mode::Rooms => RoomChat::register(server, |h| {
            h.on_message(|conn, message| async move {
                let _ = conn.broadcast_others(&message).await?;
                Ok(())
            })
        }),
    };
    server.serve(listener).await?;
    Ok(())
}

/// [`ws_channels_server`]'s echo on the `codec = msgpack` channel: only the codec differs.
async fn ws_channels_msgpack_echo(listener: TcpListener) -> Result<()> {
    let server = ws_channels_settings();
    let server = PackChat::register(server, |h| {
        h.on_message(|conn, PackChat(message)| async move {
            conn.send(&message).await?;
            Ok(())
        })
    });
    server.serve(listener).await?;
    Ok(())
}

type Ws = WebSocketStream<TcpStream>;

/// The hand-written servers' settings: ws-channels' default read and write buffers.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
}

/// Accepts connections forever, each handled by `handle` on its own task after the upgrade.
async fn accept_loop<F, Fut>(listener: TcpListener, handle: F) -> Result<()>
where
    F: Fn(Ws) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config())).await {
                handle(ws).await;
            }
        });
    }
}

/// The typed work every typed server does per message: decode the struct, encode it again.
fn retype(text: &str) -> Option<String> {
    let chat: Chat = serde_json::from_str(text).ok()?;
    serde_json::to_string(&chat).ok()
}

/// Incoming messages until the first error (a hand-written server's read loop).
fn messages(stream: impl Stream<Item = tungstenite::Result<Message>>) -> impl Stream<Item = Message> {
    stream.take_while(|r| ready(r.is_ok())).filter_map(|r| ready(r.ok()))
}

/// Drains a queue into a connection; `forward` flushes only when the queue is empty, so
/// replies are batched.
async fn drain(rx: mpsc::Receiver<Message>, sink: SplitSink<Ws, Message>) {
    let queued = unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (Ok(m), rx)) });
    let _ = queued.forward(sink).await;
}

/// The floor: replies go straight from the read half into the write half.
async fn typed_forward_echo(ws: Ws) {
    let (sink, stream) = ws.split();
    let replies = messages(stream).filter_map(|message| {
        ready(match message {
            Message::Text(text) => retype(&text).map(|json| Ok(Message::text(json))),
            _ => None,
        })
    });
    let _ = replies.forward(sink).await;
}

/// A reader task queues replies for a writer task, as a server that also pushes would.
async fn typed_queue_echo(ws: Ws) {
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::channel(QUEUE);
    let writer = tokio::spawn(drain(rx, sink));
    let mut stream = std::pin::pin!(messages(stream));
    while let Some(message) = stream.next().await {
        if let Message::Text(text) = message
            && let Some(json) = retype(&text)
            && tx.send(Message::text(json)).await.is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The ceiling: frames go back untouched.
async fn raw_bytes_echo(ws: Ws) {
    let (sink, stream) = ws.split();
    let replies = messages(stream).filter(|m| ready(m.is_text() || m.is_binary())).map(Ok);
    let _ = replies.forward(sink).await;
}

/// Every connection's queue, by id.
#[derive(Default)]
struct Room {
    members: Mutex<HashMap<u64, mpsc::Sender<Message>>>,
    next_id: AtomicU64,
}

impl Room {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Message>>> {
        // A panic elsewhere cannot leave the map half-updated: every change is one call.
        self.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `json` (serialized once, its bytes shared) for everyone but `from`; a full
    /// queue disconnects its reader.
    fn publish_others(&self, from: u64, json: Utf8Bytes) {
        self.lock()
            .retain(|id, tx| *id == from || tx.try_send(Message::Text(json.clone())).is_ok());
    }
}

/// The hand-written broadcaster: a reader that decodes, encodes once and fans out; a writer
/// task per connection draining its bounded queue.
async fn typed_broadcast(ws: Ws, room: Arc<Room>) {
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::channel(QUEUE);
    let id = room.next_id.fetch_add(1, Ordering::Relaxed);
    room.lock().insert(id, tx);
    let writer = tokio::spawn(drain(rx, sink));
    let mut stream = std::pin::pin!(messages(stream));
    while let Some(message) = stream.next().await {
        if let Message::Text(text) = message
            && let Some(json) = retype(&text)
        {
            room.publish_others(id, json.into());
        }
    }
    // Dropping the only sender ends the writer once it has sent what is queued.
    room.lock().remove(&id);
    let _ = writer.await;
}
