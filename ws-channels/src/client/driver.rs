//! The client connection's background task, and the two handles the application holds:
//! [`Client`] sends, [`Events`] receives. The task alone owns the socket and the connection's
//! state; the handles ask it (a watch of [`ConnectionState`]) and talk to it through bounded
//! queues.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message as WsMessage};

use super::builder::{ClientBuilder, ClientSocket, Opener, StateHook};
use super::reconnect::{ConnectionState, End, Reconnect};
use crate::channel::{Channel, ClientSends};
use crate::codec::{self, Codec, Inbound};
use crate::error::Error;

/// How long the client waits for the server to answer its close frame before dropping the
/// socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The sending half of a client connection ([`connect`](crate::connect),
/// [`ClientBuilder::connect`]), typed to the channel's client messages. Clones share the
/// connection.
///
/// Sending queues the encoded message for the background task, which writes it; while the
/// connection is reconnecting, up to [`send_queue`](ClientBuilder::send_queue) messages wait
/// and are sent once it reopens. `send` fails with [`Error::Closed`] (the close code and
/// reason when a close frame gave them) once the connection has ended for good, or when the
/// queue is full while reconnecting. A message handed to a connection that then breaks may be
/// lost: nothing is acknowledged.
///
/// When the server's input ends the connection with an error (a protocol violation), the
/// background task first lets the application run once and writes what it sent, so a reply
/// to the last message still goes out. On a current-thread runtime this holds every time; on
/// a multi-threaded one the application may run elsewhere, later.
pub struct Client<C> {
    frames: mpsc::Sender<WsMessage>,
    close: mpsc::Sender<CloseFrame>,
    state: watch::Receiver<ConnectionState>,
    _channel: PhantomData<fn() -> C>,
}

impl<C> Clone for Client<C> {
    fn clone(&self) -> Self {
        Self {
            frames: self.frames.clone(),
            close: self.close.clone(),
            state: self.state.clone(),
            _channel: PhantomData,
        }
    }
}

impl<C> std::fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("state", &*self.state.borrow()).finish()
    }
}

impl<C: Channel> Client<C> {
    /// Sends one message: validated (for channels declared with `validate`), encoded by the
    /// channel's codec, and queued for the connection. Waits while the queue is full and the
    /// connection open (the socket is slower than the sender).
    pub async fn send(&self, message: &C::ClientMessage) -> Result<(), Error>
    where
        C: ClientSends,
    {
        let frame = codec::encode::<C, _>(message, C::validate_client)?;
        self.push(frame).await
    }

    /// Sends side-band bytes in a binary frame, beside the channel's JSON messages: the
    /// server's `on_binary` receives them. (On a channel whose messages are binary frames,
    /// MessagePack or raw, the server decodes them as a message.)
    pub async fn send_binary(&self, bytes: impl Into<Bytes>) -> Result<(), Error> {
        self.push(WsMessage::Binary(bytes.into())).await
    }

    async fn push(&self, frame: WsMessage) -> Result<(), Error> {
        match self.frames.try_send(frame) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(frame)) if self.state.borrow().is_open() => match self.frames.send(frame).await {
                Ok(()) => Ok(()),
                Err(_) => Err(self.closed_error().await),
            },
            Err(_) => Err(self.closed_error().await),
        }
    }

    /// The error for a send that cannot be queued: the close that ended the connection, or
    /// the one being recovered from.
    async fn closed_error(&self) -> Error {
        let mut state = self.state.clone();
        let closed = match self.frames.is_closed() {
            // The task closes the queue just before it publishes the final state.
            true => state.wait_for(ConnectionState::is_closed).await.ok().map(|s| s.clone()),
            false => Some(state.borrow().clone()),
        };
        match closed {
            Some(ConnectionState::Closed { code, reason, .. }) => Error::Closed { code, reason },
            Some(ConnectionState::Reconnecting { error, .. }) => match &*error {
                Error::Closed { code, reason } => Error::Closed {
                    code: *code,
                    reason: reason.clone(),
                },
                _ => Error::closed(None),
            },
            _ => Error::closed(None),
        }
    }

    /// The connection's current state.
    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// Waits until the connection has ended for good, and returns its final state.
    pub async fn closed(&self) -> ConnectionState {
        let mut state = self.state.clone();
        let closed = state.wait_for(ConnectionState::is_closed).await.map(|s| s.clone());
        // The task publishes the final state before it ends, so the watch is never dropped
        // first; a panic would be the only way, and then "closed" with no frame is the truth.
        closed.unwrap_or(ConnectionState::Closed {
            code: None,
            reason: String::new(),
            error: None,
        })
    }

    /// Closes the connection with 1000 (normal) and waits until it has ended; stops any
    /// reconnection.
    pub async fn close(&self) -> ConnectionState {
        self.close_with(CloseCode::Normal, "").await
    }

    /// Closes the connection with a code and reason (cut to the 123 bytes a close frame holds)
    /// and waits until it has ended; stops any reconnection.
    pub async fn close_with(&self, code: CloseCode, reason: &str) -> ConnectionState {
        // One close request is enough: a second one while the first is pending changes nothing.
        let _ = self.close.try_send(crate::transport::close_frame(code, reason));
        self.closed().await
    }
}

/// What the [`Events`] of a client connection yield.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event<M> {
    /// A message of the channel, decoded and validated.
    Message(M),
    /// Side-band bytes: a binary frame on a channel whose messages are text (JSON), as the
    /// server's `Conn::send_binary` sends them.
    Binary(Bytes),
    /// The connection was lost and is open again, after `attempt` attempts. Messages sent by
    /// the server meanwhile are not recovered: the application may have missed some.
    Reconnected {
        /// How many attempts it took.
        attempt: u32,
    },
}

impl<M> Event<M> {
    /// The message, if this is one.
    pub fn into_message(self) -> Option<M> {
        match self {
            Self::Message(message) => Some(message),
            _ => None,
        }
    }
}

/// The receiving half of a client connection: a stream of [`Event`]s — the channel's server
/// messages, side-band bytes and reconnect markers.
///
/// A frame that does not decode or validate is one `Err` item and the stream goes on. It
/// continues across reconnects (with an [`Event::Reconnected`] at each) and ends when the
/// connection ends for good: [`state`](Self::state) then says how, with the close code.
#[must_use = "events do nothing unless polled"]
pub struct Events<C> {
    deliveries: mpsc::Receiver<Delivery>,
    state: watch::Receiver<ConnectionState>,
    _channel: PhantomData<fn() -> C>,
}

impl<C> std::fmt::Debug for Events<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("state", &*self.state.borrow()).finish()
    }
}

impl<C> Events<C> {
    /// The connection's current state (once the stream has ended: how it ended).
    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// The close code the connection ended with, once it has ended with one.
    pub fn close_code(&self) -> Option<CloseCode> {
        match &*self.state.borrow() {
            ConnectionState::Closed { code, .. } => *code,
            _ => None,
        }
    }
}

impl<C: Channel> Stream for Events<C> {
    type Item = Result<Event<C::ServerMessage>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let frame = match std::task::ready!(this.deliveries.poll_recv(cx)) {
                None => return Poll::Ready(None),
                Some(Delivery::Reconnected { attempt }) => {
                    return Poll::Ready(Some(Ok(Event::Reconnected { attempt })));
                }
                Some(Delivery::Frame(WsMessage::Binary(bytes))) if !<C::Codec as Codec>::BINARY => {
                    return Poll::Ready(Some(Ok(Event::Binary(bytes))));
                }
                Some(Delivery::Frame(frame)) => frame,
            };
            match codec::decode::<C, C::ServerMessage>(frame, C::validate_server) {
                Ok(Inbound::Message(message)) => return Poll::Ready(Some(Ok(Event::Message(message)))),
                // The task forwards data frames only.
                Ok(Inbound::Control | Inbound::Close(_)) => continue,
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}

/// What the task hands to [`Events`].
enum Delivery {
    Frame(WsMessage),
    Reconnected { attempt: u32 },
}

/// Starts the task for an opened socket.
pub(super) fn start<C: Channel>(
    builder: ClientBuilder<C>,
    opener: Opener,
    on_state: Option<StateHook>,
    socket: ClientSocket,
) -> (Client<C>, Events<C>) {
    let (frames_tx, frames) = mpsc::channel(builder.send_queue);
    let (close_tx, close) = mpsc::channel(1);
    let (deliveries_tx, deliveries) = mpsc::channel(builder.receive_buffer);
    let (state_tx, state) = watch::channel(ConnectionState::Open);
    let task = Task {
        opener,
        reconnect: builder.reconnect,
        on_state,
        frames,
        close,
        deliveries: deliveries_tx,
        state: state_tx,
    };
    task.observe(&ConnectionState::Open);
    tokio::spawn(task.run(socket));
    let client = Client {
        frames: frames_tx,
        close: close_tx,
        state: state.clone(),
        _channel: PhantomData,
    };
    let events = Events {
        deliveries,
        state,
        _channel: PhantomData,
    };
    (client, events)
}

/// The background task: the one owner of the socket and of the connection's state.
struct Task {
    opener: Opener,
    reconnect: Option<Reconnect>,
    on_state: Option<StateHook>,
    frames: mpsc::Receiver<WsMessage>,
    close: mpsc::Receiver<CloseFrame>,
    deliveries: mpsc::Sender<Delivery>,
    state: watch::Sender<ConnectionState>,
}

impl Task {
    async fn run(mut self, mut socket: ClientSocket) {
        loop {
            let end = self.session(socket).await;
            let policy = match &self.reconnect {
                Some(policy) if !end.is_final() => policy.clone(),
                _ => return self.finish(end),
            };
            match self.reopen(&policy, end).await {
                Ok(reopened) => socket = reopened,
                Err(end) => return self.finish(end),
            }
        }
    }

    /// Drives one open connection until it ends.
    async fn session(&mut self, socket: ClientSocket) -> End {
        let (mut sink, mut stream) = socket.split();
        let mut local: Option<(CloseFrame, Instant)> = None;
        let mut peer: Option<CloseFrame> = None;
        // Whether any `Client` is left to send or close.
        let mut senders = true;
        loop {
            let closing = local.is_some() || peer.is_some();
            let give_up = local.as_ref().map(|(_, deadline)| *deadline);
            tokio::select! {
                read = stream.next() => match read {
                    Some(Ok(WsMessage::Close(frame))) => {
                        // Keep reading: tungstenite answers the close, then the stream ends.
                        peer = Some(frame.unwrap_or(CloseFrame { code: CloseCode::Status, reason: "".into() }));
                    }
                    Some(Ok(frame @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => {
                        // Waits while the application's buffer is full; nobody listening
                        // (`Events` dropped) discards it.
                        if self.deliveries.send(Delivery::Frame(frame)).await.is_err() {
                            // Nobody left at either end: close.
                            if !senders && !closing {
                                local = Some(send_close(&mut sink, normal()).await);
                            }
                        }
                    }
                    // Pings are answered by tungstenite as it reads.
                    Some(Ok(_)) => {}
                    Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => break,
                    Some(Err(error)) if peer.is_none() && local.is_none() => {
                        // Before the connection fails, let an application that answers at once
                        // send its replies to what was delivered, as a client reading and
                        // answering in turn would have (best effort: one turn).
                        if senders {
                            tokio::task::yield_now().await;
                            let _ = send_queued(&mut self.frames, &mut sink, false).await;
                        }
                        return End::Failed(Arc::new(error.into()));
                    }
                    Some(Err(_)) => break,
                },
                frame = self.frames.recv(), if senders && !closing => match frame {
                    Some(frame) => {
                        // With what else is queued, in one flush.
                        let sent = match sink.feed(frame).await {
                            Ok(()) => send_queued(&mut self.frames, &mut sink, true).await,
                            Err(error) => Err(error),
                        };
                        if let Err(error) = sent {
                            return End::Failed(Arc::new(error.into()));
                        }
                    }
                    None => {
                        senders = false;
                        if self.deliveries.is_closed() {
                            local = Some(send_close(&mut sink, normal()).await);
                        }
                    }
                },
                // `None`: every `Client` is gone, which the frames branch handles.
                Some(frame) = self.close.recv(), if senders && local.is_none() => {
                    local = Some(send_close(&mut sink, frame).await);
                }
                // The `Events` dropped after the last `Client`: nobody is left at either end.
                () = self.deliveries.closed(), if !senders && !closing => {
                    local = Some(send_close(&mut sink, normal()).await);
                }
                () = sleep_until(give_up) => break,
            }
        }
        match (local, peer) {
            (Some((frame, _)), _) => End::Local(frame),
            (None, Some(frame)) => End::Closed(frame),
            (None, None) => End::Failed(Arc::new(Error::WebSocket(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake,
            )))),
        }
    }

    /// Waits and attempts until a connection opens, or the end is final.
    async fn reopen(&mut self, policy: &Reconnect, end: End) -> Result<ClientSocket, End> {
        let mut error = end.into_error();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Nobody holds a `Client` or the `Events` any more: nothing to reconnect for.
            if self.frames.is_closed() && self.deliveries.is_closed() {
                return Err(End::Local(normal()));
            }
            if !policy.allows(attempt) {
                return Err(End::Failed(error));
            }
            let delay = policy.delay(attempt);
            self.set_state(ConnectionState::Reconnecting {
                attempt,
                delay,
                error: error.clone(),
            });
            let opened = tokio::select! {
                opened = async {
                    tokio::time::sleep(delay).await;
                    self.opener.open().await
                } => opened,
                Some(frame) = self.close.recv() => return Err(End::Local(frame)),
            };
            match opened {
                Ok(socket) => {
                    self.set_state(ConnectionState::Open);
                    let _ = self.deliveries.send(Delivery::Reconnected { attempt }).await;
                    return Ok(socket);
                }
                Err(failed) => {
                    let end = End::Failed(Arc::new(failed));
                    if end.is_final() {
                        return Err(end);
                    }
                    error = end.into_error();
                }
            }
        }
    }

    /// Ends for good: no more sends are queued, and the state says why.
    fn finish(mut self, end: End) {
        // Closed before the state is published, so a `send` that finds the queue closed
        // finds the final state once it looks.
        self.frames.close();
        self.set_state(end.into_state());
    }

    fn set_state(&self, state: ConnectionState) {
        self.observe(&state);
        self.state.send_replace(state);
    }

    fn observe(&self, state: &ConnectionState) {
        if let Some(observe) = &self.on_state {
            observe(state);
        }
    }
}

fn normal() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }
}

/// Starts the closing handshake; returns the frame and the deadline for the peer's answer.
async fn send_close<S: futures_util::Sink<WsMessage> + Unpin>(
    sink: &mut S,
    frame: CloseFrame,
) -> (CloseFrame, Instant) {
    let _ = sink.send(WsMessage::Close(Some(frame.clone()))).await;
    (frame, Instant::now() + CLOSE_TIMEOUT)
}

/// Writes the frames already queued, without waiting for more, in one flush (also when `fed`
/// says a frame was fed before).
async fn send_queued<S>(frames: &mut mpsc::Receiver<WsMessage>, sink: &mut S, mut fed: bool) -> Result<(), WsError>
where
    S: futures_util::Sink<WsMessage, Error = WsError> + Unpin,
{
    while let Ok(frame) = frames.try_recv() {
        sink.feed(frame).await?;
        fed = true;
    }
    match fed {
        true => sink.flush().await,
        false => Ok(()),
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
