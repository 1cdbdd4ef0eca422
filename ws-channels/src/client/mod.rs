//! The client side: a connection driven in the background ([`connect`], [`ClientBuilder`]:
//! credentials, TLS, reconnection), and typed publish and subscribe over any WebSocket
//! ([`publish`], [`subscribe`]).

mod builder;
mod driver;
mod opener;
mod reconnect;

pub use builder::{ClientBuilder, connect};
pub use driver::{Client, Event, Events};
pub use opener::ClientSocket;
pub use reconnect::{ConnectionState, Reconnect};

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::channel::{Channel, ClientSends};
use crate::codec::{self, Inbound};
use crate::error::Error;
use crate::transport::{MessageSink, MessageStream};

/// Sends one client message on an already-connected WebSocket.
///
/// The message is validated (for channels declared with `validate`), encoded by the channel's
/// codec (a JSON text frame by default) and flushed. Only channels clients may publish on are accepted, so publishing on a
/// `server_only` channel does not compile.
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Channel, Server, TestServer, channel, publish, subscribe};
///
/// #[channel("echo/<room>")]
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Echo { text: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_channels::Error> {
/// let server = Echo::register(Server::new(), |h| {
///     h.on_message(|conn, msg| async move {
///         conn.send(&msg).await?;
///         Ok(())
///     })
/// });
/// let test = TestServer::new(server);
/// // Any WebSocket's two halves will do; here, the test server's in-memory socket.
/// let (tx, rx) = test.connect(&EchoParams::new("r")).await?;
/// let (mut sink, stream) = (tx.into_inner(), rx.into_inner());
///
/// publish::<Echo, _>(&mut sink, &Echo { text: "hi".into() }).await?;
/// let mut replies = subscribe::<Echo, _>(stream);
/// assert_eq!(replies.next().await.expect("a reply")?, Echo { text: "hi".into() });
/// # Ok(()) }
/// ```
///
/// The message is validated and encoded when `publish` is called; the future sends the frame.
pub fn publish<'a, C, W>(sink: &'a mut W, message: &C::ClientMessage) -> Publish<'a, W>
where
    C: ClientSends,
    W: MessageSink + ?Sized,
{
    Publish {
        sending: codec::encode::<C, _>(message, C::validate_client)
            .map(|frame| sink.send(frame))
            .map_err(Some),
    }
}

/// The future [`publish`] (and every channel's `publish`) returns: a frame on its way into a
/// sink. Named rather than an `impl Future`, which costs the compiler more for every channel.
#[must_use = "futures do nothing unless polled"]
pub struct Publish<'a, W: MessageSink + ?Sized> {
    /// Sending the encoded frame, or why there is none (taken when reported).
    sending: Result<futures_util::sink::Send<'a, W, WsMessage>, Option<Error>>,
}

impl<W: MessageSink + ?Sized> std::future::Future for Publish<'_, W> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().sending {
            Ok(send) => send.poll_unpin(cx).map_err(Error::from),
            // Reported once; polled again after that, it has nothing more to say.
            Err(error) => error.take().map_or(Poll::Pending, |error| Poll::Ready(Err(error))),
        }
    }
}

impl<W: MessageSink + ?Sized> std::fmt::Debug for Publish<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("encoded", &self.sending.is_ok())
            .finish_non_exhaustive()
    }
}

/// Turns an already-connected WebSocket's incoming side into a stream of typed server messages.
///
/// A frame that does not decode or validate becomes one `Err` item and the stream goes on with
/// the next frame. Ping and pong frames are skipped (the protocol layer answers pings). The
/// stream ends when the connection does: after the server's close frame (see
/// [`Subscription::close_frame`]) and the closing handshake, or at a transport error, which is
/// yielded once.
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::tungstenite::{Error as WsError, Message};
/// use ws_channels::{Error, channel, subscribe};
///
/// #[channel("ticks/<feed>", server_only)]
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Tick { n: u32 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Any stream of WebSocket messages: here, three frames as a server might send them.
/// let frames = futures_util::stream::iter([
///     Ok::<_, WsError>(Message::text(r#"{"n":1}"#)),
///     Ok(Message::text("not a tick")),
///     Ok(Message::text(r#"{"n":2}"#)),
/// ]);
/// let ticks: Vec<Result<Tick, Error>> = subscribe::<Tick, _>(frames).collect().await;
/// assert_eq!(ticks.len(), 3);
/// assert_eq!(ticks[0].as_ref().ok(), Some(&Tick { n: 1 }));
/// assert!(matches!(ticks[1], Err(Error::Decode { .. })), "a bad frame is one error");
/// assert_eq!(ticks[2].as_ref().ok(), Some(&Tick { n: 2 }), "and the stream goes on");
/// # }
/// ```
pub fn subscribe<C: Channel, R: MessageStream>(stream: R) -> Subscription<C, R> {
    Subscription {
        stream,
        close: None,
        done: false,
        _channel: PhantomData,
    }
}

/// A stream of typed server messages; see [`subscribe`].
#[must_use = "a subscription does nothing unless polled"]
pub struct Subscription<C, R> {
    stream: R,
    close: Option<CloseFrame>,
    done: bool,
    _channel: PhantomData<fn() -> C>,
}

impl<C, R> Subscription<C, R> {
    /// The server's close frame (code and reason), once the stream has ended with one.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.close.as_ref()
    }

    /// The server's close code, once the stream has ended with a close frame.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.close.as_ref().map(|f| f.code)
    }

    /// Gives back the underlying stream.
    pub fn into_inner(self) -> R {
        self.stream
    }
}

impl<C: Channel, R: MessageStream> Stream for Subscription<C, R> {
    type Item = Result<C::ServerMessage, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match ready!(this.stream.poll_next_unpin(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(Err(error)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
            };
            match codec::decode::<C, C::ServerMessage>(frame, C::validate_server) {
                Ok(Inbound::Message(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(Inbound::Control) => continue,
                Ok(Inbound::Close(frame)) => {
                    // Keep reading to the end: reading is what sends tungstenite's close reply
                    // and completes the closing handshake.
                    this.close = frame;
                    continue;
                }
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}

/// A typed sending half over any message sink (the low-level counterpart of [`Client`]).
#[must_use = "a publisher does nothing unless used to send"]
pub struct Publisher<C, W> {
    sink: W,
    _channel: PhantomData<fn() -> C>,
}

impl<C: Channel, W: MessageSink> Publisher<C, W> {
    /// Wraps any message sink.
    pub fn new(sink: W) -> Self {
        Self {
            sink,
            _channel: PhantomData,
        }
    }

    /// Sends one message; see [`publish`].
    pub async fn send(&mut self, message: &C::ClientMessage) -> Result<(), Error>
    where
        C: ClientSends,
    {
        publish::<C, W>(&mut self.sink, message).await
    }

    /// Starts the closing handshake with a normal (1000) close.
    pub async fn close(&mut self) -> Result<(), Error> {
        self.close_with(CloseCode::Normal, "").await
    }

    /// Starts the closing handshake with a code and reason (cut to the 123 bytes a close frame
    /// holds).
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let frame = crate::transport::close_frame(code, reason);
        match self.sink.send(WsMessage::Close(Some(frame))).await {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Gives back the underlying sink.
    pub fn into_inner(self) -> W {
        self.sink
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Validate, ValidationError, channel};

    #[channel("checked", validate)]
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    struct Checked {
        n: u32,
    }

    impl Validate for Checked {
        fn validate(&self) -> Result<(), ValidationError> {
            match self.n {
                0..10 => Ok(()),
                _ => Err(ValidationError::new("too big")),
            }
        }
    }

    #[tokio::test]
    async fn publish_sends_the_encoded_frame_or_reports_why_not_once() {
        let mut sent = Vec::new();
        let mut sink = futures_util::sink::unfold(&mut sent, |sent, frame: WsMessage| {
            sent.push(frame);
            std::future::ready(Ok::<_, WsError>(sent))
        });
        Checked::publish(&mut sink, &Checked { n: 1 }).await.expect("sent");
        // Encoded when called: the message may go before the future is polled.
        let mut publishing = Checked::publish(&mut sink, &Checked { n: 12 });
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(matches!(
            Pin::new(&mut publishing).poll(&mut cx),
            Poll::Ready(Err(Error::Validation { .. }))
        ));
        assert!(Pin::new(&mut publishing).poll(&mut cx).is_pending(), "reported once");
        drop(publishing);
        drop(sink);
        assert_eq!(sent, [WsMessage::text(r#"{"n":1}"#)], "only the valid message went out");
    }
}
