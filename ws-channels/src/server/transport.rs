//! A connection's transport with its type erased, and shared by the task's reader and writer.

use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::{SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message as WsMessage, Utf8Bytes};

use crate::codec::FrameKind;
use crate::outbox::{Batch, Frame};
use crate::transport::{MessageSink, MessageStream};

/// A connection's transport, boxed so one type-erased session serves every front end (TCP,
/// TLS, an axum upgrade, an in-memory pipe, a WebSocket of the application's own): the
/// server's own socket (whose writer appends data frames itself, see `writer`), or any
/// `Sink`/`Stream` of messages (see [`Upgraded`]).
pub(crate) trait Transport: MessageStream + Send + 'static {
    /// Writes the batch's frames in order and flushes; on `Pending`, the frames not yet
    /// taken stay in the batch.
    fn poll_write_frames(&mut self, batch: &mut Batch, cx: &mut Context<'_>) -> Poll<Result<(), WsError>>;
}

/// A boxed [`Transport`].
pub(crate) struct BoxedTransport(Box<dyn Transport>);

impl BoxedTransport {
    pub(crate) fn new(transport: impl Transport) -> Self {
        Self(Box::new(transport))
    }
}

impl Stream for BoxedTransport {
    type Item = Result<WsMessage, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next_unpin(cx)
    }
}

/// One transport, shared by the reader and the writer of its connection task:
/// `&SharedTransport` is the reader's stream, and the writer takes it for each poll of a batch.
/// Both are polled by that one task, one at a time, never across an `await`, so the lock is
/// never contended; it only lets both borrow the transport. (`StreamExt::split` would allocate
/// a shared lock, take it for every frame written, and keep room for a message in its sink
/// half, in every connection's task.)
pub(super) struct SharedTransport(Mutex<BoxedTransport>);

impl SharedTransport {
    pub(super) fn new(transport: BoxedTransport) -> Self {
        Self(Mutex::new(transport))
    }

    fn lock(&self) -> MutexGuard<'_, BoxedTransport> {
        // A panic while polling the transport ends the task that holds it anyway.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `frames` in order and flushes, the transport taken for this one poll.
    pub(super) fn poll_write(&self, batch: &mut Batch, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.lock().0.poll_write_frames(batch, cx)
    }
}

impl Stream for &SharedTransport {
    type Item = Result<WsMessage, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.lock().poll_next_unpin(cx)
    }
}

/// A WebSocket the application accepted itself (any `Sink` and `Stream` of tungstenite
/// messages, such as a tokio-tungstenite `WebSocketStream`), as a connection's transport: each
/// frame is sent as a message of its own, through the sink's own framing. (The server's own
/// socket writes the frames' bytes directly instead; that is the fast path, this the open one.)
pub(super) struct Upgraded<T>(pub(super) T);

impl<T: MessageStream> Stream for Upgraded<T> {
    type Item = Result<WsMessage, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next_unpin(cx)
    }
}

impl<T: MessageSink + MessageStream + Send + 'static> Transport for Upgraded<T> {
    fn poll_write_frames(&mut self, batch: &mut Batch, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        while !batch.frames.is_empty() {
            std::task::ready!(self.0.poll_ready_unpin(cx))?;
            let message = match batch.frames.pop_front() {
                Some(Frame::Message(message)) => message,
                Some(Frame::Encoded { at, len, kind }) => {
                    let payload = Bytes::copy_from_slice(batch.payload(at, len));
                    match kind {
                        // A codec's text payload is UTF-8 (a `Format`'s contract, checked in
                        // debug builds where it is encoded); one that breaks it fails the write.
                        FrameKind::Text => WsMessage::Text(
                            Utf8Bytes::try_from(payload)
                                .map_err(|_| WsError::Utf8("a text payload that is not UTF-8".to_owned()))?,
                        ),
                        FrameKind::Binary => WsMessage::Binary(payload),
                    }
                }
                None => break,
            };
            self.0.start_send_unpin(message)?;
        }
        self.0.poll_flush_unpin(cx)
    }
}
