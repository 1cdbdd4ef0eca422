//! One accepted connection: the [`Conn`] handle handlers get, and the task that runs it.

use std::any::TypeId;
use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message as WsMessage};
use tracing::Instrument;

use super::Config;
use super::handler::Handler;
use super::limits::{RateLimitAction, Slot, TokenBucket};
use crate::channel::{Channel, LagPolicy};
use crate::codec::{self, Inbound};
use crate::error::Error;
use crate::hub::{self, Counters, Hub, IntoTopic, Peer, Pushed, TopicKey};

/// A connection's id, unique within one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The id as a number (to send to a client, to log).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for ConnId {
    /// An id as a client reported it back; sending to an id no connection has is a no-op.
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a connection ended, as passed to `on_close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code: the side that closed first chose it; 1006 when the connection dropped
    /// without a close frame.
    pub code: CloseCode,
    /// The close reason (possibly empty).
    pub reason: String,
    /// Whether the server closed first (a handler's `close`, an error, a limit, a shutdown).
    pub by_server: bool,
}

/// What `on_lag` learns when a connection's outbound queue overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lagged {
    /// Messages lost since the last report (for `Disconnect`, the one that did not fit).
    pub dropped: u64,
    /// The channel's policy, which decided what was lost.
    pub policy: LagPolicy,
}

/// The handle a handler gets for its connection: identity, typed params and data, shared
/// state, typed `send` / `close`, topics and broadcast. Cheap to clone; every clone is the same
/// connection.
pub struct Conn<C: Channel, S = (), D = ()> {
    inner: Arc<ConnInner<C, S, D>>,
}

struct ConnInner<C: Channel, S, D> {
    params: C::Params,
    /// The concrete address, the name of the topic every connection is subscribed to.
    address: String,
    /// That topic's key, built once: broadcasts use it for every message.
    topic: TopicKey,
    data: D,
    state: Arc<S>,
    remote_addr: Option<SocketAddr>,
    peer: Arc<Peer>,
    hub: Hub,
}

impl<C: Channel, S, D> Clone for Conn<C, S, D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Channel, S, D> Conn<C, S, D> {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.inner.peer.id
    }

    /// The typed path parameters it connected with.
    pub fn params(&self) -> &C::Params {
        &self.inner.params
    }

    /// The concrete address it connected to (`chat/lobby`), percent-encoded.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The data `on_connect` returned.
    pub fn data(&self) -> &D {
        &self.inner.data
    }

    /// The server's shared state.
    pub fn state(&self) -> &S {
        &self.inner.state
    }

    /// The peer's socket address, when the transport has one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr
    }

    /// The server's hub, to publish anywhere.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Sends a server message to this connection.
    ///
    /// The message is validated (for channels declared with `validate`) and serialized here,
    /// then queued for the connection's writer task under the channel's
    /// [lag policy](crate::LagPolicy); this never waits for the client. Fails with
    /// [`Error::Closed`] once the connection is closing.
    pub async fn send(&self, message: &C::ServerMessage) -> Result<(), Error> {
        if self.is_closing() {
            return Err(Error::Closed);
        }
        match self.inner.peer.push(hub::encode::<C>(message)?) {
            Pushed::Closed | Pushed::Disconnected => Err(Error::Closed),
            Pushed::Queued | Pushed::DroppedOldest | Pushed::DroppedNew => Ok(()),
        }
    }

    /// Sends a message to everyone on this connection's address, this connection included.
    /// Serialized once; returns how many connections queued it.
    pub async fn broadcast(&self, message: &C::ServerMessage) -> Result<usize, Error> {
        self.inner.hub.publish_to::<C>(&self.inner.topic, message, None)
    }

    /// Sends a message to everyone on this connection's address except this connection.
    pub async fn broadcast_others(&self, message: &C::ServerMessage) -> Result<usize, Error> {
        self.inner
            .hub
            .publish_to::<C>(&self.inner.topic, message, Some(self.id()))
    }

    /// Subscribes this connection to another topic of its channel (another room, a named
    /// topic); `false` if it already was. Subscriptions end with the connection.
    pub fn join(&self, topic: impl IntoTopic<C>) -> bool {
        self.inner
            .hub
            .join(&self.inner.peer, TopicKey::new::<C>(topic.into_topic().name()))
    }

    /// Unsubscribes this connection from a topic; `false` if it was not subscribed. A
    /// connection can leave even its own address.
    pub fn leave(&self, topic: impl IntoTopic<C>) -> bool {
        self.inner
            .hub
            .leave(self.id(), &TopicKey::new::<C>(topic.into_topic().name()))
    }

    /// Closes the connection with a code and reason (truncated to the 123 bytes a close frame
    /// holds). Messages already queued are delivered first; later sends fail. Only the first
    /// close counts.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.inner.peer.request_close(code, reason);
    }

    /// Whether the connection is closing (a handler's `close`, an error, a limit, a shutdown).
    pub fn is_closing(&self) -> bool {
        self.inner.peer.is_closing()
    }
}

impl<C: Channel, S, D: fmt::Debug> fmt::Debug for Conn<C, S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id())
            .field("channel", &C::NAME)
            .field("address", &self.inner.address)
            .field("data", &self.inner.data)
            .field("remote_addr", &self.inner.remote_addr)
            .finish_non_exhaustive()
    }
}

/// Everything a connection task needs besides its handler.
pub(crate) struct ConnEnv<S> {
    pub(crate) id: ConnId,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) state: Arc<S>,
    pub(crate) hub: Hub,
    pub(crate) config: Arc<Config>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The connection-limit slot taken at the handshake, freed when the connection ends.
    pub(crate) slot: Option<Slot>,
}

/// Runs one upgraded connection to its end: a writer task drains the outbox while this task
/// reads, decodes and dispatches.
pub(crate) async fn run<C, S, D, IO>(
    socket: WebSocketStream<IO>,
    handler: Arc<Handler<C, S, D>>,
    params: C::Params,
    // The params' `Display`, formatted once at the handshake.
    address: String,
    data: D,
    env: ConnEnv<S>,
) where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::info_span!("ws_conn", channel = C::NAME, %address, id = env.id.0);
    let counters = env.hub.counters().clone();
    let peer = Arc::new(Peer::new(
        env.id,
        TypeId::of::<C>(),
        env.config.outbound_queue,
        C::LAG_POLICY,
        counters.clone(),
    ));
    env.hub.attach(peer.clone());
    let topic = TopicKey::new::<C>(&address);
    env.hub.join(&peer, topic.clone());
    counters.connections_open.fetch_add(1, Ordering::Relaxed);
    counters.connections_total.fetch_add(1, Ordering::Relaxed);
    let mut registration = Registration {
        peer: peer.clone(),
        hub: env.hub.clone(),
        counters: counters.clone(),
        writer: None,
        _slot: env.slot,
    };
    let conn = Conn {
        inner: Arc::new(ConnInner {
            params,
            address,
            topic,
            data,
            state: env.state,
            remote_addr: env.remote_addr,
            peer: peer.clone(),
            hub: env.hub.clone(),
        }),
    };
    let (sink, stream) = socket.split();
    let writer = registration.writer.insert(tokio::spawn(
        write_loop(sink, peer.clone(), counters).instrument(span.clone()),
    ));
    let reader = Reader {
        handler,
        conn: conn.clone(),
        config: env.config,
    };
    let info = reader.read_loop(stream, env.shutdown).instrument(span.clone()).await;
    if conn.is_closing() {
        // Let the writer deliver what is queued and the close frame (bounded: a peer that does
        // not read cannot hold the connection open).
        let _ = tokio::time::timeout(reader.config.close_timeout, writer).await;
    }
    // The peer is gone or the close handshake is over: nothing queued can be delivered now.
    drop(registration);
    if let Some(on_close) = &reader.handler.on_close {
        let done = AssertUnwindSafe(on_close(conn.clone(), info))
            .catch_unwind()
            .instrument(span)
            .await;
        if done.is_err() {
            tracing::warn!(channel = C::NAME, id = conn.id().0, "on_close panicked");
        }
    }
}

/// Undoes a connection's registration however its task ends: normally, by a panic, or aborted
/// when a shutdown times out. Stops the writer (which holds the socket), makes later sends fail,
/// leaves every topic and frees the connection-limit slot.
struct Registration {
    peer: Arc<Peer>,
    hub: Hub,
    counters: Arc<Counters>,
    writer: Option<tokio::task::JoinHandle<()>>,
    _slot: Option<Slot>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(writer) = &self.writer {
            writer.abort();
        }
        self.peer.mark_closed();
        self.hub.detach(self.peer.id);
        self.counters.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes queued frames in batches (one flush, usually one syscall, per batch), then the close
/// frame once the connection is closing and the queue is drained. If writing fails the
/// connection is closed: later sends fail and the reader stops waiting.
async fn write_loop<W>(mut sink: W, peer: Arc<Peer>, counters: Arc<Counters>)
where
    W: futures_util::Sink<WsMessage, Error = WsError> + Unpin,
{
    let mut batch = Vec::new();
    while peer.next_batch(&mut batch).await {
        let written = batch.len() as u64;
        let mut result = Ok(());
        for frame in batch.drain(..) {
            if result.is_ok() {
                result = sink.feed(frame).await;
            }
        }
        if let Err(error) = result.and(sink.flush().await) {
            match error {
                // The peer closed first (its close frame was read): nothing to report, the
                // reader records that close.
                WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Protocol(ProtocolError::SendAfterClosing) => {}
                _ => {
                    peer.request_close(CloseCode::Error, "write failed");
                }
            }
            peer.mark_closed();
            return;
        }
        counters.messages_out.fetch_add(written, Ordering::Relaxed);
    }
    if let Some(frame) = peer.close_frame() {
        if sink.send(WsMessage::Close(Some(frame))).await.is_ok() {
            counters.messages_out.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Reader<C: Channel, S, D> {
    handler: Arc<Handler<C, S, D>>,
    conn: Conn<C, S, D>,
    config: Arc<Config>,
}

/// The reader's clocks: when the peer was last heard from, and the idle limit.
struct Clocks {
    pings: Option<Interval>,
    /// When the last ping went out; the peer must be heard from after it, before the next one.
    pinged: Option<Instant>,
    heard: Instant,
    /// The last data message, for the idle timeout.
    active: Instant,
    /// Set once the connection is closing: when to stop waiting for the peer's close reply.
    closing_deadline: Option<Instant>,
}

impl<C, S, D> Reader<C, S, D>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    async fn read_loop<R>(&self, mut stream: R, mut shutdown: watch::Receiver<bool>) -> CloseInfo
    where
        R: futures_util::Stream<Item = Result<WsMessage, WsError>> + Unpin,
    {
        let peer = &self.conn.inner.peer;
        let mut closing = peer.close_requested();
        let mut peer_close: Option<CloseFrame> = None;
        let mut bucket = self.config.rate_limit.map(TokenBucket::new);
        let now = Instant::now();
        let mut clocks = Clocks {
            pings: self.config.liveness.ping_interval.map(|every| {
                let mut pings = tokio::time::interval_at(now + every, every);
                pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
                pings
            }),
            pinged: None,
            heard: now,
            active: now,
            closing_deadline: None,
        };

        // A shutdown that began during the handshake was already signalled.
        if *shutdown.borrow_and_update() {
            self.conn.close(CloseCode::Away, "server shutting down");
        }
        if let Some(on_open) = &self.handler.on_open {
            self.run_handler(on_open(self.conn.clone())).await;
        }

        loop {
            if clocks.closing_deadline.is_none() && self.conn.is_closing() {
                clocks.closing_deadline = Some(Instant::now() + self.config.close_timeout);
            }
            let idle_deadline = self.config.liveness.idle_timeout.map(|idle| clocks.active + idle);
            let open = clocks.closing_deadline.is_none();
            tokio::select! {
                frame = stream.next() => match frame {
                    None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => break,
                    Some(Err(WsError::Capacity(error))) => {
                        self.report(&Error::WebSocket(WsError::Capacity(error)));
                        self.conn.close(CloseCode::Size, "message too large");
                        // The frame was not read to its end: the stream cannot be read further.
                        break;
                    }
                    Some(Err(error)) => {
                        // Tell the peer why when the socket still works (RFC 6455 §7.1.7).
                        match &error {
                            // The peer vanished without a close: 1006, nobody to answer.
                            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {}
                            WsError::Protocol(_) => self.conn.close(CloseCode::Protocol, "protocol error"),
                            WsError::Utf8(_) => self.conn.close(CloseCode::Invalid, "invalid UTF-8"),
                            _ => {}
                        }
                        self.report(&Error::WebSocket(error));
                        break;
                    }
                    Some(Ok(frame)) => {
                        clocks.heard = Instant::now();
                        if matches!(frame, WsMessage::Text(_) | WsMessage::Binary(_)) {
                            clocks.active = clocks.heard;
                        }
                        // Handlers are guarded on their own; this catches panics in the
                        // channel's own code (a `Validate` or `ErrorReply` impl).
                        match AssertUnwindSafe(self.on_frame(frame, bucket.as_mut())).catch_unwind().await {
                            Ok(Some(frame)) => peer_close = Some(frame),
                            Ok(None) => {}
                            Err(panic) => {
                                self.report(&Error::HandlerPanicked(panic_message(panic.as_ref())));
                                self.conn.close(CloseCode::Error, "internal error");
                            }
                        }
                    }
                },
                Ok(()) = closing.changed(), if open => {}
                () = peer.lag.notified() => self.report_lag(),
                Ok(()) = shutdown.changed(), if open => {
                    self.conn.close(CloseCode::Away, "server shutting down");
                }
                _ = tick(clocks.pings.as_mut()), if open => self.ping(&mut clocks),
                () = sleep_until(idle_deadline), if open => {
                    self.conn.close(CloseCode::Away, "idle timeout");
                }
                () = sleep_until(clocks.closing_deadline), if !open => break,
            }
        }

        match (peer.close_frame(), peer_close) {
            (Some(frame), _) => CloseInfo {
                code: frame.code,
                reason: frame.reason.to_string(),
                by_server: true,
            },
            (None, Some(frame)) => CloseInfo {
                code: frame.code,
                reason: frame.reason.to_string(),
                by_server: false,
            },
            (None, None) => CloseInfo {
                code: CloseCode::Abnormal,
                reason: String::new(),
                by_server: false,
            },
        }
    }

    /// Sends a ping, or closes the connection if the previous one went unanswered (nothing at
    /// all was heard from the peer since).
    fn ping(&self, clocks: &mut Clocks) {
        if clocks.pinged.is_some_and(|pinged| clocks.heard < pinged) {
            self.conn.close(CloseCode::Away, "ping timeout");
            return;
        }
        clocks.pinged = Some(Instant::now());
        self.conn.inner.peer.push_ping(WsMessage::Ping(Bytes::new()));
    }

    /// Handles one frame; returns the peer's close frame when it is one.
    async fn on_frame(&self, frame: WsMessage, bucket: Option<&mut TokenBucket>) -> Option<CloseFrame> {
        if self.conn.is_closing() {
            // Closing: the peer's messages are no longer dispatched, only its close reply counts.
            return match frame {
                WsMessage::Close(frame) => frame,
                _ => None,
            };
        }
        let data = matches!(frame, WsMessage::Text(_) | WsMessage::Binary(_));
        if data && bucket.is_some_and(|bucket| !bucket.take(Instant::now())) {
            self.rate_limited().await;
            return None;
        }
        let size = match &frame {
            WsMessage::Text(text) => text.len(),
            WsMessage::Binary(bytes) => bytes.len(),
            _ => 0,
        };
        if size > self.config.max_message_size {
            let error = Error::MessageTooLarge {
                size,
                max: self.config.max_message_size,
            };
            self.report(&error);
            self.reject_frame(error).await;
            return None;
        }
        if let (WsMessage::Binary(bytes), Some(on_binary)) = (&frame, &self.handler.on_binary) {
            self.count_in();
            self.run_handler(on_binary(self.conn.clone(), bytes.clone())).await;
            return None;
        }
        match codec::decode::<C, C::ClientMessage>(frame, C::validate_client) {
            Ok(Inbound::Message(message)) => {
                self.count_in();
                if let Some(on_message) = &self.handler.on_message {
                    self.run_handler(on_message(self.conn.clone(), message)).await;
                }
                None
            }
            Ok(Inbound::Control) => None,
            Ok(Inbound::Close(frame)) => Some(frame.unwrap_or(CloseFrame {
                code: CloseCode::Status,
                reason: "".into(),
            })),
            Err(error) => {
                self.report(&error);
                self.reject_frame(error).await;
                None
            }
        }
    }

    fn count_in(&self) {
        self.conn
            .inner
            .hub
            .counters()
            .messages_in
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A message over the rate limit: close with 1008, or drop it (with the channel's error
    /// reply, if it has one).
    async fn rate_limited(&self) {
        self.conn
            .inner
            .hub
            .counters()
            .rate_limited
            .fetch_add(1, Ordering::Relaxed);
        self.report(&Error::RateLimited);
        let action = self.config.rate_limit.map(|limit| limit.action()).unwrap_or_default();
        match action {
            RateLimitAction::Close => self.conn.close(CloseCode::Policy, "rate limit exceeded"),
            RateLimitAction::Reply => {
                if let Some(reply) = C::on_invalid(&Error::RateLimited) {
                    self.send_reply(&reply).await;
                }
            }
        }
    }

    /// The channel's invalid-input policy: reply with its error message, or close with 1007
    /// (undecodable), 1008 (failed validation) or 1009 (too large).
    async fn reject_frame(&self, error: Error) {
        if let Some(reply) = C::on_invalid(&error) {
            self.send_reply(&reply).await;
            return;
        }
        let code = match error {
            Error::Validation { .. } => CloseCode::Policy,
            Error::MessageTooLarge { .. } => CloseCode::Size,
            _ => CloseCode::Invalid,
        };
        self.conn.close(code, &error.to_string());
    }

    async fn send_reply(&self, reply: &C::ServerMessage) {
        if let Err(send_error) = self.conn.send(reply).await {
            self.report(&send_error);
        }
    }

    /// Runs a handler future; an error or a panic closes this connection with 1011.
    async fn run_handler(&self, handler: futures_util::future::BoxFuture<'static, crate::HandlerResult>) {
        let error = match AssertUnwindSafe(handler).catch_unwind().await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => Error::Handler(error),
            Err(panic) => Error::HandlerPanicked(panic_message(panic.as_ref())),
        };
        self.report(&error);
        self.conn.close(CloseCode::Error, "internal error");
    }

    fn report_lag(&self) {
        let dropped = self.conn.inner.peer.take_lagged();
        if dropped == 0 {
            return;
        }
        let lagged = Lagged {
            dropped,
            policy: C::LAG_POLICY,
        };
        match &self.handler.on_lag {
            Some(on_lag) => {
                if std::panic::catch_unwind(AssertUnwindSafe(|| on_lag(&self.conn, lagged))).is_err() {
                    tracing::warn!(channel = C::NAME, "on_lag panicked");
                }
            }
            None => tracing::debug!(channel = C::NAME, id = self.conn.id().0, dropped, "slow consumer"),
        }
    }

    fn report(&self, error: &Error) {
        match &self.handler.on_error {
            Some(on_error) => {
                if std::panic::catch_unwind(AssertUnwindSafe(|| on_error(&self.conn, error))).is_err() {
                    tracing::warn!(channel = C::NAME, "on_error panicked");
                }
            }
            None => match error {
                Error::Handler(_) | Error::HandlerPanicked(_) => {
                    tracing::warn!(channel = C::NAME, id = self.conn.id().0, %error, "handler failed")
                }
                _ => {
                    tracing::debug!(channel = C::NAME, id = self.conn.id().0, %error, "connection error")
                }
            },
        }
    }
}

/// The next tick of an optional interval (never, without one).
async fn tick(interval: Option<&mut Interval>) -> Instant {
    match interval {
        Some(interval) => interval.tick().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
