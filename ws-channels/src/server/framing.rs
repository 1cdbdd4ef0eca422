//! Writing a connection's data frames without tungstenite's per-frame write path.
//!
//! A server's data frame is the same bytes for every connection (servers do not mask, and no
//! extension is negotiated): a two-to-ten-byte header and the payload. tungstenite builds a
//! `Frame` for each message, checks it and formats it into its output buffer, which costs about
//! as much as everything else the server does to deliver a small message. So the connection's
//! writer appends data frames itself to a buffer under tungstenite, in [`Tap`], the I/O object
//! the connection's [`Socket`] wraps; tungstenite still writes control frames (pings, pongs,
//! close) and owns every flush.
//!
//! Order on the wire is the order of the outbox: [`Tap`] writes its own bytes before any
//! tungstenite hands it, and the writer flushes tungstenite before appending data frames after
//! anything tungstenite holds (a control frame it was given, a pong it queued). No data frame
//! follows a close frame: the outbox accepts nothing after the server's own close, reading the
//! peer's close ends the outbox (the writer checks at every poll), and the [`Tap`] is only
//! ever drained by tungstenite (writing its bytes or flushing), which refuses to once it has
//! answered the peer's close.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::socket::Socket;
use crate::codec::FrameKind;
use crate::outbox::{Batch, Frame};

/// A buffer grown past this (by a large message, or a burst) is let go once written, rather
/// than kept for the connection's life: twice the default flush threshold.
const RETAIN: usize = 16 * 1024;

/// A connection's I/O object with a buffer of data frames in front of its writes.
#[derive(Debug)]
pub(crate) struct Tap<IO> {
    io: IO,
    /// Data frames appended by the writer, not yet written.
    out: Vec<u8>,
    /// How much of `out` is written.
    written: usize,
}

impl<IO> Tap<IO> {
    pub(crate) fn new(io: IO) -> Self {
        Self {
            io,
            out: Vec::new(),
            written: 0,
        }
    }

    /// Appends one unmasked data frame (final, no extension bits) carrying `payload`.
    pub(super) fn push_data_frame(&mut self, opcode: u8, payload: &[u8]) {
        const FIN: u8 = 0x80;
        let len = payload.len();
        self.out.reserve(10 + len);
        self.out.push(FIN | opcode);
        match len {
            0..=125 => self.out.push(len as u8),
            126..=0xFFFF => {
                self.out.push(126);
                self.out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                self.out.push(127);
                self.out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        self.out.extend_from_slice(payload);
    }
}

impl<IO: AsyncWrite + Unpin> Tap<IO> {
    /// Writes what the writer appended.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.written += n,
            }
        }
        self.written = 0;
        if self.out.capacity() > RETAIN {
            self.out = Vec::new();
        } else {
            self.out.clear();
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tap<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tap<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Writes `frames` in order and flushes, in one poll when the socket takes it all; on
/// `Pending`, the frames not yet taken stay in `frames`. Data frames are appended to the
/// [`Tap`] (flushed whenever it holds a write buffer's worth), control frames go through
/// tungstenite and are flushed at once; every flush is tungstenite's, so its wakers see every
/// wait for the socket.
pub(crate) fn poll_write_frames<IO>(
    socket: &mut Socket<IO>,
    batch: &mut Batch,
    cx: &mut Context<'_>,
) -> Poll<Result<(), WsError>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    const TEXT: u8 = 0x1;
    const BINARY: u8 = 0x2;
    let limit = socket.config().write_buffer_size.max(1);
    // What tungstenite holds (a pong it queued, a control frame a `Pending` left) goes first.
    ready!(poll_flush(socket, cx))?;
    while let Some(frame) = batch.frames.front() {
        let (opcode, payload) = match frame {
            Frame::Message(WsMessage::Text(text)) => (TEXT, text.as_bytes()),
            Frame::Message(WsMessage::Binary(bytes)) => (BINARY, &bytes[..]),
            Frame::Encoded { at, len, kind } => {
                let opcode = match kind {
                    FrameKind::Text => TEXT,
                    FrameKind::Binary => BINARY,
                };
                (opcode, batch.payload(*at, *len))
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
        socket.tap_mut().push_data_frame(opcode, payload);
        batch.frames.pop_front();
    }
    poll_flush(socket, cx)
}

/// tungstenite's flush, which drains the [`Tap`] too. Once tungstenite has answered the peer's
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

    /// RFC 6455 §5.2: the shortest length encoding, at each boundary.
    #[test]
    fn headers_use_the_shortest_length_encoding() {
        for (len, header) in [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65_535, vec![0x81, 126, 0xFF, 0xFF]),
            (65_536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut tap = Tap::new(());
            tap.push_data_frame(0x1, &vec![b'x'; len]);
            assert_eq!(tap.out[..header.len()], header, "length {len}");
            assert_eq!(tap.out.len(), header.len() + len);
        }
    }

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
