//! A connection's writer: it drains the outbox in batches (one flush, usually one system call,
//! per batch) onto the connection's transport; on the server's own [`Socket`], without
//! tungstenite's per-frame write path.
//!
//! A server's data frame is the same bytes for every connection (servers do not mask, and no
//! extension is negotiated): a two-to-ten-byte header and the payload. tungstenite builds a
//! `Frame` for each message, checks it and formats it into its output buffer, which costs about
//! as much as everything else the server does to deliver a small message. So the writer
//! appends data frames itself to the socket's [`Tap`](super::socket::Tap), under tungstenite;
//! tungstenite still writes control frames (pings, pongs, close) and owns every flush.
//!
//! Order on the wire is the order of the outbox: the tap writes its own bytes before any
//! tungstenite hands it, and the writer flushes tungstenite before appending data frames after
//! anything tungstenite holds (a control frame it was given, a pong it queued). No data frame
//! follows a close frame: the outbox accepts nothing after the server's own close, reading the
//! peer's close ends the outbox (the writer checks at every poll), and the tap is only ever
//! drained by tungstenite (writing its bytes or flushing), which refuses to once it has
//! answered the peer's close.

use std::future::Future;
use std::task::{Context, Poll, ready};

use futures_util::future::poll_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::socket::Socket;
use super::transport::{SharedTransport, Transport};
use crate::codec::FrameKind;
use crate::metrics::{Count, Counters};
use crate::outbox::{Batch, Frame, OutboxReceiver};

/// Writes queued frames in batches (one flush, usually one syscall, per batch), then the close
/// frame once the connection is closing and the queue is drained. If writing fails the
/// connection is closed: later sends fail and the reader stops waiting.
// Not an `async fn`, on purpose: see `task::run`.
#[expect(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice")]
pub(super) fn write_loop<'a>(
    transport: &'a SharedTransport,
    outbox: &'a OutboxReceiver,
    counters: &'a Counters,
    channel: &'static str,
) -> impl Future<Output = ()> + 'a {
    async move {
        let mut batch = Batch::default();
        while outbox.next_batch(&mut batch).await {
            let written = batch.frames.len() as u64;
            // Checked at every poll: the peer's close frame may be read while a batch waits.
            let wrote = poll_fn(|cx| match outbox.is_ended() {
                true => Poll::Ready(Err(WsError::AlreadyClosed)),
                false => transport.poll_write(&mut batch, cx),
            });
            if let Err(error) = wrote.await {
                match error {
                    // The peer closed first (its close frame was read): nothing to report, the
                    // reader records that close.
                    WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Protocol(ProtocolError::SendAfterClosing) => {}
                    _ => {
                        outbox.request_close(CloseCode::Error, "write failed");
                    }
                }
                outbox.end();
                return;
            }
            counters.add(Count::MessagesOut, channel, written);
        }
        // A `let … else`, not an `if let`: the frame looked up is not kept across the write.
        let Some(frame) = outbox.close_frame() else {
            return;
        };
        batch.push_message(WsMessage::Close(Some(frame)));
        if poll_fn(|cx| transport.poll_write(&mut batch, cx)).await.is_ok() {
            counters.add(Count::MessagesOut, channel, 1);
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for Socket<IO> {
    fn poll_write_frames(&mut self, batch: &mut Batch, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        poll_write_frames(self, batch, cx)
    }
}

/// Writes `frames` in order and flushes, in one poll when the socket takes it all; on
/// `Pending`, the frames not yet taken stay in `frames`. Data frames are appended to the
/// [`Tap`](super::socket::Tap) (flushed whenever it holds a write buffer's worth), control frames go through
/// tungstenite and are flushed at once; every flush is tungstenite's, so its wakers see every
/// wait for the socket.
fn poll_write_frames<IO>(socket: &mut Socket<IO>, batch: &mut Batch, cx: &mut Context<'_>) -> Poll<Result<(), WsError>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let limit = socket.config().write_buffer_size.max(1);
    // What tungstenite holds (a pong it queued, a control frame a `Pending` left) goes first.
    ready!(poll_flush(socket, cx))?;
    while let Some(frame) = batch.frames.front() {
        let (data, payload) = match frame {
            Frame::Message(WsMessage::Text(text)) => (Data::Text, text.as_bytes()),
            Frame::Message(WsMessage::Binary(bytes)) => (Data::Binary, &bytes[..]),
            Frame::Encoded { at, len, kind } => {
                let data = match kind {
                    FrameKind::Text => Data::Text,
                    FrameKind::Binary => Data::Binary,
                };
                (data, batch.payload(*at, *len))
            }
            Frame::Message(_) => {
                if let Some(Frame::Message(frame)) = batch.frames.pop_front() {
                    socket.send(frame)?;
                }
                ready!(poll_flush(socket, cx))?;
                continue;
            }
        };
        if socket.tap().out.len() >= limit {
            ready!(poll_flush(socket, cx))?;
        }
        socket.tap_mut().push_data_frame(data, payload);
        batch.frames.pop_front();
    }
    poll_flush(socket, cx)
}

/// tungstenite's flush, which drains the [`Tap`](super::socket::Tap) too. Once tungstenite has answered the peer's
/// close it refuses to flush, and that completes the flush: what the tap still holds then will
/// never be written, which is an error here, so the frames are not counted as sent.
fn poll_flush<IO>(socket: &mut Socket<IO>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    ready!(socket.poll_flush(cx))?;
    match socket.tap().out.is_empty() {
        true => Poll::Ready(Ok(())),
        false => Poll::Ready(Err(WsError::AlreadyClosed)),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::server::socket::RETAIN;

    /// Every payload length class (7-bit, 16-bit, 64-bit), text and binary, interleaved with
    /// control frames, as a tungstenite client reads them; a write buffer of 1 KiB, so the
    /// large frames also test flushing mid-batch.
    #[tokio::test]
    async fn a_client_reads_every_frame_the_writer_appends_in_order() {
        let (server, client) = tokio::io::duplex(4 * 1024);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().write_buffer_size(1024);
        let mut server = Socket::server(server, Vec::new(), config);
        let mut client = tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let sent = vec![
            WsMessage::text(""),
            WsMessage::text("é".repeat(62)),
            WsMessage::Ping("p".into()),
            WsMessage::binary(vec![7; 126]),
            WsMessage::text("x".repeat(70_000)),
            WsMessage::binary(vec![1; 65_535]),
            WsMessage::text("last"),
        ];
        // Every other data frame encoded into the batch's bytes, as a connection's own sends are.
        let mut batch = Batch::default();
        for (i, message) in sent.iter().enumerate() {
            match message {
                WsMessage::Text(text) if i % 2 == 0 => batch.push_payload(FrameKind::Text, text.as_bytes()),
                WsMessage::Binary(bytes) if i % 2 == 0 => batch.push_payload(FrameKind::Binary, bytes),
                _ => batch.push_message(message.clone()),
            }
        }
        let write = futures_util::future::poll_fn(|cx| poll_write_frames(&mut server, &mut batch, cx));
        let read = async {
            let mut got = Vec::new();
            while got.len() < sent.len() {
                got.push(client.next().await.expect("open").expect("a valid frame"));
            }
            got
        };
        let (written, got) = tokio::join!(write, read);
        written.expect("written");
        assert_eq!(got, sent);
        assert!(server.tap().out.capacity() <= RETAIN, "a large buffer is let go");
    }
}
