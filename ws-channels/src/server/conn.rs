//! One accepted connection: the [`Conn`] handle handlers get, and the task that runs it.

use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::Instrument;

use super::Config;
use super::handler::Handler;
use crate::channel::{Channel, Params};
use crate::codec::{self, Inbound};
use crate::error::Error;

/// A connection's id, unique within one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

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
    /// Whether the server closed first (a handler's `close`, an error, a shutdown).
    pub by_server: bool,
}

/// The handle a handler gets for its connection: identity, typed params and data, shared
/// state, and typed `send` / `close`. Cheap to clone; every clone is the same connection.
pub struct Conn<C: Channel, S = (), D = ()> {
    inner: Arc<ConnInner<C, S, D>>,
}

struct ConnInner<C: Channel, S, D> {
    id: ConnId,
    params: C::Params,
    data: D,
    state: Arc<S>,
    remote_addr: Option<SocketAddr>,
    outbound: mpsc::Sender<WsMessage>,
    /// The close frame the server wants to send; set once, watched by the reader and writer.
    close: watch::Sender<Option<CloseFrame>>,
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
        self.inner.id
    }

    /// The typed path parameters it connected with.
    pub fn params(&self) -> &C::Params {
        &self.inner.params
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

    /// Sends a server message to this connection.
    ///
    /// The message is validated (for channels declared with `validate`) and serialized here,
    /// then queued for the connection's writer task; this waits while the queue is full.
    /// Fails with [`Error::Closed`] once the connection is closing.
    pub async fn send(&self, message: &C::ServerMessage) -> Result<(), Error> {
        if self.is_closing() {
            return Err(Error::Closed);
        }
        let text = codec::encode::<C, _>(message, C::validate_server)?;
        self.inner
            .outbound
            .send(WsMessage::Text(text))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Closes the connection with a code and reason (truncated to the 123 bytes a close frame
    /// holds). Messages already sent are delivered first; later sends fail. Only the first
    /// close counts.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: truncate_reason(reason).to_owned().into(),
        };
        self.inner.close.send_if_modified(|close| {
            let first = close.is_none();
            if first {
                *close = Some(frame);
            }
            first
        });
    }

    /// Whether `close` has been called (by a handler, an error or a shutdown).
    pub fn is_closing(&self) -> bool {
        self.inner.close.borrow().is_some()
    }
}

impl<C: Channel, S, D: fmt::Debug> fmt::Debug for Conn<C, S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.inner.id)
            .field("channel", &C::NAME)
            .field("params", &self.inner.params)
            .field("data", &self.inner.data)
            .field("remote_addr", &self.inner.remote_addr)
            .finish_non_exhaustive()
    }
}

/// Close reasons are limited to 123 bytes by RFC 6455; cut at a character boundary.
fn truncate_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Everything a connection task needs besides its handler.
pub(crate) struct ConnEnv<S> {
    pub(crate) id: ConnId,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) state: Arc<S>,
    pub(crate) config: Arc<Config>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Runs one upgraded connection to its end: a writer task drains the outbound queue while
/// this task reads, decodes and dispatches.
pub(crate) async fn run<C, S, D, IO>(
    socket: WebSocketStream<IO>,
    handler: Arc<Handler<C, S, D>>,
    params: C::Params,
    data: D,
    env: ConnEnv<S>,
) where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::debug_span!("ws_conn", channel = C::NAME, address = %C::Params::TEMPLATE.address(), id = env.id.0);
    let (outbound, outbound_rx) = mpsc::channel(env.config.outbound_queue);
    let conn = Conn {
        inner: Arc::new(ConnInner {
            id: env.id,
            params,
            data,
            state: env.state,
            remote_addr: env.remote_addr,
            outbound,
            close: watch::Sender::new(None),
        }),
    };
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(
        write_loop(sink, outbound_rx, conn.inner.close.subscribe()).instrument(span.clone()),
    );
    let reader = Reader {
        handler,
        conn: conn.clone(),
        config: env.config,
    };
    let info = reader
        .read_loop(stream, env.shutdown)
        .instrument(span.clone())
        .await;
    let mut writer = writer;
    if conn.is_closing() {
        // Let the writer deliver the server's close frame (it may not have run yet).
        let _ = tokio::time::timeout(reader.config.close_timeout, &mut writer).await;
    }
    // The peer is gone or the close handshake is over: nothing queued can be delivered now.
    writer.abort();
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

/// Writes queued messages, flushing whenever the queue runs dry (so bursts share a syscall),
/// then the close frame once one is requested.
async fn write_loop<W>(
    mut sink: W,
    mut queue: mpsc::Receiver<WsMessage>,
    mut close: watch::Receiver<Option<CloseFrame>>,
) where
    W: futures_util::Sink<WsMessage, Error = WsError> + Unpin,
{
    loop {
        tokio::select! {
            biased;
            message = queue.recv() => {
                let Some(message) = message else { return };
                if sink.feed(message).await.is_err() {
                    return;
                }
                if queue.is_empty() && sink.flush().await.is_err() {
                    return;
                }
            }
            Ok(()) = close.changed() => {
                // Deliver what was queued before the close, then the close frame itself.
                while let Ok(message) = queue.try_recv() {
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                }
                let frame = close.borrow_and_update().clone();
                let _ = sink.send(WsMessage::Close(frame)).await;
                return;
            }
        }
    }
}

struct Reader<C: Channel, S, D> {
    handler: Arc<Handler<C, S, D>>,
    conn: Conn<C, S, D>,
    config: Arc<Config>,
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
        let mut closing = self.conn.inner.close.subscribe();
        let mut peer_close: Option<CloseFrame> = None;
        let mut deadline: Option<Instant> = None;

        if let Some(on_open) = &self.handler.on_open {
            self.run_handler(on_open(self.conn.clone())).await;
        }

        loop {
            if deadline.is_none() && self.conn.is_closing() {
                deadline = Some(Instant::now() + self.config.close_timeout);
            }
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
                        self.report(&Error::WebSocket(error));
                        break;
                    }
                    Some(Ok(frame)) => {
                        if let Some(frame) = self.on_frame(frame).await {
                            peer_close = Some(frame);
                        }
                    }
                },
                Ok(()) = closing.changed(), if deadline.is_none() => {}
                Ok(()) = shutdown.changed(), if deadline.is_none() => {
                    self.conn.close(CloseCode::Away, "server shutting down");
                }
                () = sleep_until(deadline), if deadline.is_some() => break,
            }
        }

        let by_server = self.conn.inner.close.borrow().clone();
        match (by_server, peer_close) {
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

    /// Handles one frame; returns the peer's close frame when it is one.
    async fn on_frame(&self, frame: WsMessage) -> Option<CloseFrame> {
        if self.conn.is_closing() {
            // Closing: the peer's messages are no longer dispatched, only its close reply counts.
            return match frame {
                WsMessage::Close(frame) => frame,
                _ => None,
            };
        }
        match codec::decode::<C, C::ClientMessage>(frame, C::validate_client) {
            Ok(Inbound::Message(message)) => {
                if let Some(on_message) = &self.handler.on_message {
                    self.run_handler(on_message(self.conn.clone(), message))
                        .await;
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

    /// The channel's invalid-input policy: reply with its error message, or close with 1007
    /// (undecodable) / 1008 (failed validation).
    async fn reject_frame(&self, error: Error) {
        if let Some(reply) = C::on_invalid(&error) {
            if let Err(send_error) = self.conn.send(&reply).await {
                self.report(&send_error);
            }
            return;
        }
        let code = match error {
            Error::Validation { .. } => CloseCode::Policy,
            _ => CloseCode::Invalid,
        };
        self.conn.close(code, &error.to_string());
    }

    /// Runs a handler future; an error or a panic closes this connection with 1011.
    async fn run_handler(
        &self,
        handler: futures_util::future::BoxFuture<'static, crate::HandlerResult>,
    ) {
        let error = match AssertUnwindSafe(handler).catch_unwind().await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => Error::Handler(error),
            Err(panic) => Error::HandlerPanicked(panic_message(panic.as_ref())),
        };
        self.report(&error);
        self.conn.close(CloseCode::Error, "internal error");
    }

    fn report(&self, error: &Error) {
        match &self.handler.on_error {
            Some(on_error) => {
                if std::panic::catch_unwind(AssertUnwindSafe(|| on_error(&self.conn, error)))
                    .is_err()
                {
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

#[cfg(test)]
mod tests {
    use super::truncate_reason;

    #[test]
    fn reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123 && cut.len() >= 121);
        assert_eq!(truncate_reason("short"), "short");
    }
}
