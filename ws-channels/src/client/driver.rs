//! The client connection's background task, and the two handles the application holds:
//! [`Client`] sends, [`Events`] receives. The task alone owns the socket and the connection's
//! state; the handles ask it (a watch of [`ConnectionState`]) and talk to it through bounded
//! queues.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message as WsMessage};

use super::opener::{ClientSocket, Opener};
use super::reconnect::{ConnectionState, End, Reconnect, StateHook};
use crate::channel::{Channel, ClientSends};
use crate::codec::{self, Codec, Inbound};
use crate::error::Error;

/// How long the client waits for the end of the closing handshake (the server's answer to its
/// close frame, or the end of the socket after the server's) before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The sending half of a client connection ([`connect`](crate::connect),
/// [`ClientBuilder::connect`](crate::ClientBuilder::connect)), typed to the channel's client messages. Clones share the
/// connection.
///
/// Sending queues the encoded message for the background task, which writes it; while the
/// connection is reconnecting, up to [`send_queue`](crate::ClientBuilder::send_queue) messages wait
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

/// What the driver keeps of a [`ClientBuilder`](super::ClientBuilder)'s settings (the rest
/// is the [`Opener`]'s).
pub(super) struct Settings {
    pub(super) reconnect: Option<Reconnect>,
    pub(super) on_state: Option<StateHook>,
    pub(super) send_queue: usize,
    pub(super) receive_buffer: usize,
}

impl Default for Settings {
    /// No reconnection, no state hook, 64 messages to send and 256 received.
    fn default() -> Self {
        Self {
            reconnect: None,
            on_state: None,
            send_queue: 64,
            receive_buffer: 256,
        }
    }
}

/// Starts the task for an opened socket.
pub(super) fn start<C: Channel>(settings: Settings, opener: Opener, socket: ClientSocket) -> (Client<C>, Events<C>) {
    let (frames_tx, frames) = mpsc::channel(settings.send_queue);
    let (close_tx, close) = mpsc::channel(1);
    let (deliveries_tx, deliveries) = mpsc::channel(settings.receive_buffer);
    let (state_tx, state) = watch::channel(ConnectionState::Open);
    let task = Task {
        opener,
        reconnect: settings.reconnect,
        on_state: settings.on_state,
        frames,
        close,
        deliveries: deliveries_tx,
        pending: VecDeque::new(),
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
    /// What the application had no room for when it arrived, oldest first: while it is not
    /// empty the socket is not read (so at most one frame waits here, and a reconnect marker).
    pending: VecDeque<Delivery>,
    state: watch::Sender<ConnectionState>,
}

impl Task {
    async fn run(mut self, mut socket: ClientSocket) {
        // Attempts made since the last connection that stayed open long enough to count.
        let mut attempts = 0;
        loop {
            let opened = Instant::now();
            let end = self.session(socket).await;
            let policy = match &self.reconnect {
                Some(policy) if !end.is_final() => policy.clone(),
                _ => return self.finish(end).await,
            };
            // A server that accepts and closes at once must not reset the count, or it would
            // be hammered at the initial delay forever and `max_attempts` would never apply.
            if opened.elapsed() >= policy.stable() {
                attempts = 0;
            }
            match self.reopen(&policy, end, attempts).await {
                Ok((reopened, attempt)) => (socket, attempts) = (reopened, attempt),
                Err(end) => return self.finish(end).await,
            }
        }
    }

    /// Hands a delivery to the application, or keeps it while the application's buffer is
    /// full (the session then stops reading until there is room). Returns `false` when
    /// nobody listens any more (`Events` dropped): the delivery is discarded.
    /// (The two fields apart: the session's `select!` borrows `deliveries` meanwhile.)
    fn deliver(deliveries: &mpsc::Sender<Delivery>, pending: &mut VecDeque<Delivery>, delivery: Delivery) -> bool {
        if pending.is_empty() {
            match deliveries.try_send(delivery) {
                Ok(()) => return true,
                Err(TrySendError::Closed(_)) => return false,
                Err(TrySendError::Full(delivery)) => pending.push_back(delivery),
            }
        } else if let (Some(Delivery::Reconnected { attempt }), Delivery::Reconnected { attempt: next }) =
            (pending.back_mut(), &delivery)
        {
            // Reconnected again before the application read the first marker: one says it.
            *attempt = *next;
        } else {
            pending.push_back(delivery);
        }
        true
    }

    /// Drives one open connection until it ends.
    async fn session(&mut self, socket: ClientSocket) -> End {
        let (sink, mut stream) = socket.split();
        // Apart from the session: a permit the `select!` yields borrows it, not the session.
        let deliveries = &self.deliveries;
        let mut session = Session {
            sink,
            frames: &mut self.frames,
            deliveries,
            pending: &mut self.pending,
            local: None,
            peer: None,
            senders: true,
        };
        loop {
            let closing = session.closing();
            let give_up = session.give_up();
            // While the application's buffer is full the socket is not read, so the server
            // feels the back-pressure (and applies its lag policy); sends, close requests and
            // deadlines are still served. Once closing, the socket is read to the end.
            let reading = session.pending.is_empty() || closing;
            let turn = tokio::select! {
                read = stream.next(), if reading => session.on_read(read).await,
                frame = session.frames.recv(), if session.senders && !closing => session.on_send(frame).await,
                permit = deliveries.reserve(), if !session.pending.is_empty() => session.on_room(permit).await,
                // `None`: every `Client` is gone, which the frames branch handles.
                Some(frame) = self.close.recv(), if session.senders && session.local.is_none() => {
                    session.close(frame).await;
                    Turn::Continue
                }
                // The `Events` dropped after the last `Client`: nobody is left at either end.
                () = deliveries.closed(), if !session.senders && !closing => {
                    session.close(normal()).await;
                    Turn::Continue
                }
                () = sleep_until(give_up) => Turn::Over,
            };
            match turn {
                Turn::Continue => {}
                Turn::Over => return session.end(),
                Turn::End(end) => return end,
            }
        }
    }

    /// Waits and attempts until a connection opens, or the end is final; `attempt` attempts
    /// were made since the last connection that counted as open. Returns the socket and the
    /// attempt that opened it.
    async fn reopen(&mut self, policy: &Reconnect, end: End, mut attempt: u32) -> Result<(ClientSocket, u32), End> {
        let mut error = end.into_error();
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
                    Self::deliver(&self.deliveries, &mut self.pending, Delivery::Reconnected { attempt });
                    return Ok((socket, attempt));
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

    /// Ends for good: no more sends are queued, and the state says why; what waited for room
    /// in the application's buffer is still handed over (as the application reads).
    async fn finish(mut self, end: End) {
        // Closed before the state is published, so a `send` that finds the queue closed
        // finds the final state once it looks.
        self.frames.close();
        self.set_state(end.into_state());
        for delivery in std::mem::take(&mut self.pending) {
            if self.deliveries.send(delivery).await.is_err() {
                break;
            }
        }
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

/// One open connection, as `Task::session`'s loop keeps it from turn to turn, outside every
/// branch of its `select!`: the socket's sending half, the task's queues it serves, and how
/// far the closing handshake got. Each branch's work is a method.
struct Session<'t> {
    sink: SplitSink<ClientSocket, WsMessage>,
    frames: &'t mut mpsc::Receiver<WsMessage>,
    deliveries: &'t mpsc::Sender<Delivery>,
    pending: &'t mut VecDeque<Delivery>,
    /// The close frame this side sent, and when to stop waiting for the server's answer.
    local: Option<(CloseFrame, Instant)>,
    /// The server's close frame, and when to stop waiting for the end of the socket.
    peer: Option<(CloseFrame, Instant)>,
    /// Whether any `Client` is left to send or close.
    senders: bool,
}

/// What a branch of the session's loop leaves it to do.
enum Turn {
    /// Go round again.
    Continue,
    /// The socket is done: the session ends as far as its closing handshake got.
    Over,
    /// The session ends with this.
    End(End),
}

impl Session<'_> {
    fn closing(&self) -> bool {
        self.local.is_some() || self.peer.is_some()
    }

    /// When to stop waiting for the closing handshake, once it started.
    fn give_up(&self) -> Option<Instant> {
        [&self.local, &self.peer]
            .into_iter()
            .flatten()
            .map(|(_, deadline)| *deadline)
            .min()
    }

    /// What the socket yielded: the server's close frame, a message for the application, or
    /// the end of the socket.
    async fn on_read(&mut self, read: Option<Result<WsMessage, WsError>>) -> Turn {
        let closing = self.closing();
        match read {
            Some(Ok(WsMessage::Close(frame))) => {
                // Keep reading: tungstenite answers the close, then the stream ends.
                let frame = frame.unwrap_or(CloseFrame {
                    code: CloseCode::Status,
                    reason: "".into(),
                });
                self.peer = Some((frame, Instant::now() + CLOSE_TIMEOUT));
            }
            Some(Ok(frame @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => {
                let listened = match closing {
                    // The connection is ending: what finds no room is dropped.
                    true => !matches!(
                        self.deliveries.try_send(Delivery::Frame(frame)),
                        Err(TrySendError::Closed(_))
                    ),
                    false => Task::deliver(self.deliveries, self.pending, Delivery::Frame(frame)),
                };
                // Nobody left at either end: close.
                if !listened && !self.senders && !closing {
                    self.close(normal()).await;
                }
            }
            // Pings are answered by tungstenite as it reads.
            Some(Ok(_)) => {}
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => return Turn::Over,
            Some(Err(error)) if !closing => {
                // Before the connection fails, let an application that answers at once send
                // its replies to what was delivered, as a client reading and answering in turn
                // would have (best effort: one turn).
                if self.senders {
                    tokio::task::yield_now().await;
                    let _ = send_queued(self.frames, &mut self.sink, false).await;
                }
                return Turn::End(End::Failed(Arc::new(error.into())));
            }
            Some(Err(_)) => return Turn::Over,
        }
        Turn::Continue
    }

    /// A frame the application sent, written with what else is queued; or `None`: no
    /// `Client` is left, and with nobody listening either the connection is closed.
    async fn on_send(&mut self, frame: Option<WsMessage>) -> Turn {
        match frame {
            Some(frame) => {
                // With what else is queued, in one flush.
                let sent = match self.sink.feed(frame).await {
                    Ok(()) => send_queued(self.frames, &mut self.sink, true).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = sent {
                    return Turn::End(End::Failed(Arc::new(error.into())));
                }
            }
            None => {
                self.senders = false;
                if self.deliveries.is_closed() {
                    self.close(normal()).await;
                }
            }
        }
        Turn::Continue
    }

    /// Room in the application's buffer (`Err`: nobody listens any more): what waited
    /// longest goes in.
    async fn on_room(&mut self, permit: Result<mpsc::Permit<'_, Delivery>, SendError<()>>) -> Turn {
        match (permit, self.pending.pop_front()) {
            (Ok(permit), Some(delivery)) => permit.send(delivery),
            (Ok(_), None) => {}
            // Nobody listens any more: what waited is discarded.
            (Err(_), _) => {
                self.pending.clear();
                if !self.senders && !self.closing() {
                    self.close(normal()).await;
                }
            }
        }
        Turn::Continue
    }

    /// Starts the closing handshake: sends `frame`, and waits `CLOSE_TIMEOUT` at most for the
    /// server's answer.
    async fn close(&mut self, frame: CloseFrame) {
        let _ = self.sink.send(WsMessage::Close(Some(frame.clone()))).await;
        self.local = Some((frame, Instant::now() + CLOSE_TIMEOUT));
    }

    /// How the connection ended, once the socket is done: by the close this side sent, or
    /// the server's, or without either.
    fn end(self) -> End {
        match (self.local, self.peer) {
            (Some((frame, _)), _) => End::Local(frame),
            (None, Some((frame, _))) => End::Closed(frame),
            (None, None) => End::Failed(Arc::new(Error::WebSocket(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake,
            )))),
        }
    }
}

fn normal() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }
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
