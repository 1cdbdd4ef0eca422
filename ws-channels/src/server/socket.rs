//! A server connection's WebSocket: tungstenite's protocol over the connection's I/O (a
//! [`Tap`]), polled by the connection's one task.
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
use std::task::{Context, Poll, Waker};

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, WebSocket};

use super::framing::Tap;

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
    pub(crate) fn server(io: IO, read: Vec<u8>, config: WebSocketConfig) -> Self {
        let io = Io {
            tap: Tap::new(io),
            wakers: [Waker::noop().clone(), Waker::noop().clone()],
            side: Side::Read,
        };
        Self {
            ws: WebSocket::from_partially_read(io, read, Role::Server, Some(config)),
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

/// The I/O as tungstenite sees it: `std::io` reads and writes, each a poll of the async I/O
/// with the waker of the side running, and `WouldBlock` for `Pending`.
struct Io<IO> {
    tap: Tap<IO>,
    /// The last waker each side polled with.
    wakers: [Waker; 2],
    side: Side,
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
        let mut buf = ReadBuf::new(buf);
        self.poll(|tap, cx| tap.poll_read(cx, &mut buf))?;
        Ok(buf.filled().len())
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
        socket.tap_mut().push_data_frame(0x2, &[0; 100]);
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
}
