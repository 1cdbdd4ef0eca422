//! A server connection's WebSocket, everything under and in tungstenite: tungstenite's
//! protocol over the connection's I/O, polled by the connection's one task; the [`Inbox`] the
//! socket is read into; and the [`Tap`], where the writer appends data frames.
//!
//! Why not tokio-tungstenite's `WebSocketStream`, which the client keeps using: its halves may
//! be polled from two tasks, so every poll registers the caller's waker in two shared slots
//! (four atomic read-modify-writes for every frame read) and the I/O is polled with a proxy
//! waker that, woken, wakes both. Here one task polls both the reading and the writing, so
//! the socket keeps each side's waker as a plain field, replaced only when a poll brings
//! another (a pointer comparison), and the I/O is polled with it directly.
//!
//! The protocol is tungstenite's: what is read, the pongs and close replies reading queues,
//! the errors, and `Pending` where tungstenite sees `WouldBlock`, as tokio-tungstenite does.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, WebSocket};

/// A server's WebSocket over `IO`.
pub(crate) struct Socket<IO> {
    ws: WebSocket<Io<IO>>,
    /// The stream ended (the connection closed, or reading failed once): it yields nothing
    /// more, as a fused stream.
    ended: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Socket<IO> {
    /// The server side of an upgraded connection; `read` is what was read past the upgrade
    /// request (the client's first frames, if it did not wait for the 101).
    ///
    /// `config.read_buffer_size` is how much one read of the socket asks for (into the
    /// [`Inbox`]); tungstenite itself takes [`PROTOCOL_CHUNK`] bytes at a time from there.
    pub(crate) fn server(io: IO, read: Vec<u8>, config: WebSocketConfig) -> Self {
        let io = Io {
            tap: Tap::new(io),
            wakers: [Waker::noop().clone(), Waker::noop().clone()],
            side: Side::Read,
            inbox: Inbox::new(config.read_buffer_size),
        };
        let protocol = config.read_buffer_size(PROTOCOL_CHUNK);
        Self {
            ws: WebSocket::from_partially_read(io, read, Role::Server, Some(protocol)),
            ended: false,
        }
    }

    /// tungstenite's configuration.
    pub(crate) fn config(&self) -> &WebSocketConfig {
        self.ws.get_config()
    }

    /// The I/O under tungstenite, where the writer appends data frames.
    pub(crate) fn tap(&self) -> &Tap<IO> {
        &self.ws.get_ref().tap
    }

    /// See [`tap`](Self::tap).
    pub(crate) fn tap_mut(&mut self) -> &mut Tap<IO> {
        &mut self.ws.get_mut().tap
    }

    /// Queues a frame for tungstenite to write (the writer's control frames), to be sent by
    /// the next [`poll_flush`](Self::poll_flush).
    pub(crate) fn send(&mut self, message: WsMessage) -> Result<(), WsError> {
        match self.ws.write(message) {
            // Queued: the flush that follows waits for the socket.
            Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => Ok(()),
            written => written,
        }
    }

    /// Writes what tungstenite holds (which drains the [`Tap`] first). Once the connection
    /// has closed there is nothing more to flush: that completes the flush, as in
    /// tokio-tungstenite.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.ws.get_mut().poll_as(Side::Write, cx);
        match would_block(self.ws.flush()) {
            Poll::Ready(Err(WsError::ConnectionClosed)) => Poll::Ready(Ok(())),
            flushed => flushed,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Stream for Socket<IO> {
    type Item = Result<WsMessage, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        this.ws.get_mut().poll_as(Side::Read, cx);
        match std::task::ready!(would_block(this.ws.read())) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(error) => {
                this.ended = true;
                match error {
                    WsError::ConnectionClosed | WsError::AlreadyClosed => Poll::Ready(None),
                    error => Poll::Ready(Some(Err(error))),
                }
            }
        }
    }
}

/// tungstenite's `WouldBlock` is a `Pending` (the I/O registered the waker it was polled with).
fn would_block<T>(result: Result<T, WsError>) -> Poll<Result<T, WsError>> {
    match result {
        Err(WsError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        result => Poll::Ready(result),
    }
}

/// Which of the task's polls is running: reading (the reader polls with its own gate's waker)
/// or writing (the writer polls with the task's). Each keeps its waker; whatever I/O tungstenite
/// does meanwhile (a read's pong reply is a write) wakes the side that asked for it.
#[derive(Clone, Copy)]
enum Side {
    Read = 0,
    Write = 1,
}

/// The bytes tungstenite takes from the I/O at a time. tungstenite keeps a frame buffer of its
/// read size for the connection's whole life, and reads the socket no more than that at a
/// time: at the server's read buffer size (4 KiB), most of an idle connection's memory. So
/// the socket is read into the connection's [`Inbox`] instead, which holds memory only while
/// the connection is reading, and tungstenite's own buffer stays this small (a larger frame
/// grows it, and it keeps that room afterwards, as before).
const PROTOCOL_CHUNK: usize = 512;

/// The I/O as tungstenite sees it: `std::io` reads and writes, each a poll of the async I/O
/// with the waker of the side running, and `WouldBlock` for `Pending`.
struct Io<IO> {
    tap: Tap<IO>,
    /// The last waker each side polled with.
    wakers: [Waker; 2],
    side: Side,
    inbox: Inbox,
}

/// What one read of the socket brought and tungstenite has not taken yet. Its buffer is
/// allocated by a read and let go when a read finds nothing to read: a busy connection
/// reuses one buffer read after read, an idle one holds none.
struct Inbox {
    /// `size` bytes once allocated (zeroed once, then overwritten by each read), or none.
    bytes: Vec<u8>,
    /// How many of `bytes` the last read filled.
    filled: usize,
    /// How many of those tungstenite has taken.
    taken: usize,
    /// How much one read asks for: the server's read buffer size.
    size: usize,
}

impl Inbox {
    fn new(size: usize) -> Self {
        Self {
            bytes: Vec::new(),
            filled: 0,
            taken: 0,
            size: size.max(1),
        }
    }
}

impl<IO> Io<IO> {
    /// Sets the side now running, keeping its waker unless this poll brings another.
    fn poll_as(&mut self, side: Side, cx: &Context<'_>) {
        let waker = &mut self.wakers[side as usize];
        if !waker.will_wake(cx.waker()) {
            waker.clone_from(cx.waker());
        }
        self.side = side;
    }

    /// Polls the I/O with the running side's waker.
    fn poll<T>(
        &mut self,
        poll: impl FnOnce(Pin<&mut Tap<IO>>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T>
    where
        IO: Unpin,
    {
        let mut cx = Context::from_waker(&self.wakers[self.side as usize]);
        match poll(Pin::new(&mut self.tap), &mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<IO: AsyncRead + Unpin> Read for Io<IO> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.inbox.taken == self.inbox.filled {
            // Taken out while the socket is polled (which borrows `self`).
            let mut bytes = std::mem::take(&mut self.inbox.bytes);
            if bytes.is_empty() {
                // Zeroed by the allocator: a large buffer's pages are only touched as read into.
                bytes = vec![0; self.inbox.size];
            }
            let mut read = ReadBuf::new(&mut bytes);
            // Nothing to read (`WouldBlock`) or an error: the buffer is dropped here.
            self.poll(|tap, cx| tap.poll_read(cx, &mut read))?;
            let filled = read.filled().len();
            if filled == 0 {
                return Ok(0);
            }
            self.inbox.bytes = bytes;
            self.inbox.filled = filled;
            self.inbox.taken = 0;
        }
        let inbox = &mut self.inbox;
        let available = &inbox.bytes[inbox.taken..inbox.filled];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        inbox.taken += n;
        Ok(n)
    }
}

impl<IO: AsyncWrite + Unpin> Write for Io<IO> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.poll(|tap, cx| tap.poll_write(cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.poll(|tap, cx| tap.poll_flush(cx))
    }
}

/// A buffer grown past this (by a large message, or a burst) is let go once written, rather
/// than kept for the connection's life: twice the default flush threshold.
pub(super) const RETAIN: usize = 16 * 1024;

/// The longest header of an unmasked frame: two bytes and a 64-bit length.
const MAX_HEADER: usize = 10;

/// A connection's I/O object with a buffer of data frames in front of its writes: the
/// connection's writer appends data frames here itself (see `writer`), tungstenite writes the
/// control frames through it and owns every flush, which drains this buffer first.
#[derive(Debug)]
pub(crate) struct Tap<IO> {
    io: IO,
    /// Data frames appended by the writer, not yet written.
    pub(super) out: Vec<u8>,
    /// How much of `out` is written.
    written: usize,
}

impl<IO> Tap<IO> {
    fn new(io: IO) -> Self {
        Self {
            io,
            out: Vec::new(),
            written: 0,
        }
    }

    /// Appends one unmasked data frame (final, no extension bits) carrying `payload`, its
    /// header formatted by tungstenite (as every other frame header in the crate and its tests).
    pub(super) fn push_data_frame(&mut self, data: Data, payload: &[u8]) {
        let header = FrameHeader {
            opcode: OpCode::Data(data),
            ..FrameHeader::default()
        };
        self.out.reserve(MAX_HEADER + payload.len());
        // Formatting into a `Vec` cannot fail.
        let _ = header.format(payload.len() as u64, &mut self.out);
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

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::WebSocketStream;

    use super::*;
    use crate::wake_count::WakeCount;

    fn pair(capacity: usize) -> (Socket<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(capacity);
        (Socket::server(server, Vec::new(), WebSocketConfig::default()), client)
    }

    #[tokio::test]
    async fn reads_what_was_read_past_the_upgrade_then_the_socket_and_answers_pings() {
        let (server, client) = tokio::io::duplex(1024);
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        // A client's first frame, read with the upgrade request: "hi", masked with zeros.
        let early = vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
        let mut socket = Socket::server(server, early, WebSocketConfig::default());
        assert_eq!(
            socket.next().await.expect("a frame").expect("valid"),
            WsMessage::text("hi")
        );
        client.send(WsMessage::Ping("p".into())).await.expect("sends");
        client.send(WsMessage::text("next")).await.expect("sends");
        assert_eq!(
            socket.next().await.expect("a frame").expect("valid"),
            WsMessage::Ping("p".into())
        );
        assert_eq!(
            socket.next().await.expect("a frame").expect("valid"),
            WsMessage::text("next")
        );
        // The pong reading queued is written by the next flush.
        futures_util::future::poll_fn(|cx| socket.poll_flush(cx))
            .await
            .expect("flushes");
        assert_eq!(
            client.next().await.expect("a frame").expect("valid"),
            WsMessage::Pong("p".into())
        );
        // The close handshake: the peer's close is read, answered, and the stream ends.
        client.close(None).await.expect("closes");
        assert_eq!(
            socket.next().await.expect("a frame").expect("valid"),
            WsMessage::Close(None)
        );
        futures_util::future::poll_fn(|cx| socket.poll_flush(cx))
            .await
            .expect("flushes");
        assert!(socket.next().await.is_none(), "ended");
        assert!(socket.next().await.is_none(), "and stays ended");
    }

    #[tokio::test]
    async fn each_side_is_woken_by_its_own_waker_and_a_waker_is_kept_until_another_comes() {
        let (mut socket, mut client) = pair(64);
        let ((reader, read_waker), (writer, write_waker)) = (WakeCount::new(), WakeCount::new());
        assert!(
            socket
                .poll_next_unpin(&mut Context::from_waker(&read_waker))
                .is_pending()
        );
        // More than the pipe holds: the flush waits for the peer to read.
        socket.tap_mut().push_data_frame(Data::Binary, &[0; 100]);
        assert!(socket.poll_flush(&mut Context::from_waker(&write_waker)).is_pending());
        client.write_all(&[0x81, 0x80, 0, 0, 0, 0]).await.expect("writes");
        assert_eq!((reader.get(), writer.get()), (1, 0));
        let mut drained = vec![0; 128];
        tokio::io::AsyncReadExt::read(&mut client, &mut drained)
            .await
            .expect("reads");
        assert_eq!(writer.get(), 1, "the writer's waker");
        // Polled with the same waker again: still woken (it was kept, not dropped).
        assert!(socket.poll_next_unpin(&mut Context::from_waker(&read_waker)).is_ready());
        assert!(
            socket
                .poll_next_unpin(&mut Context::from_waker(&read_waker))
                .is_pending()
        );
        client.write_all(&[0x81, 0x80, 0, 0, 0, 0]).await.expect("writes");
        assert_eq!(reader.get(), 2);
    }

    /// A masked client frame (mask zero: the payload as is), framed by tungstenite.
    fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            opcode,
            mask: Some([0; 4]),
            ..FrameHeader::default()
        };
        let mut frame = Vec::new();
        header.format(payload.len() as u64, &mut frame).expect("a Vec takes it");
        frame.extend_from_slice(payload);
        frame
    }

    #[tokio::test]
    async fn frames_across_reads_of_the_socket_and_of_tungstenite_arrive_whole_and_in_order() {
        let (server, mut client) = tokio::io::duplex(1 << 20);
        // A 1 000-byte read buffer: frames straddle the socket's reads and tungstenite's
        // 512-byte takes; one frame is larger than both.
        let config = WebSocketConfig::default().read_buffer_size(1000);
        let mut socket = Socket::server(server, Vec::new(), config);
        let payloads: Vec<Vec<u8>> = (0..200_u32)
            .map(|i| {
                let len = if i == 77 { 20_000 } else { (i as usize * 37) % 300 };
                (0..len).map(|b| (b as u32 + i) as u8).collect()
            })
            .collect();
        let wire: Vec<u8> = payloads
            .iter()
            .flat_map(|p| client_frame(OpCode::Data(Data::Binary), p))
            .collect();
        client.write_all(&wire).await.expect("writes");
        for (i, payload) in payloads.iter().enumerate() {
            assert_eq!(
                socket.next().await.expect("a frame").expect("valid"),
                WsMessage::binary(payload.clone()),
                "frame {i}"
            );
        }
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_read_buffer() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        // Reads of 64 bytes: three 40-byte frames take two reads and a bit.
        let config = WebSocketConfig::default().read_buffer_size(64);
        let mut socket = Socket::server(server, Vec::new(), config);
        let (_, waker) = WakeCount::new();
        let mut cx = Context::from_waker(&waker);
        let inbox = |socket: &Socket<tokio::io::DuplexStream>| socket.ws.get_ref().inbox.bytes.capacity();
        assert!(socket.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(inbox(&socket), 0, "nothing read yet, nothing held");

        let frames: Vec<u8> = (0..3)
            .flat_map(|_| client_frame(OpCode::Data(Data::Text), &[b'x'; 34]))
            .collect();
        client.write_all(&frames).await.expect("writes");
        for _ in 0..3 {
            assert!(matches!(socket.poll_next_unpin(&mut cx), Poll::Ready(Some(Ok(_)))));
            assert!(inbox(&socket) >= 64, "held while reading");
        }
        // Everything taken, and a read finds nothing: let go.
        assert!(socket.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(inbox(&socket), 0, "idle again, nothing held");
    }

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
            tap.push_data_frame(Data::Text, &vec![b'x'; len]);
            assert_eq!(tap.out[..header.len()], header, "length {len}");
            assert_eq!(tap.out.len(), header.len() + len);
        }
    }
}
