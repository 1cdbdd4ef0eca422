//! [`Conn`]: the handle handlers get for their connection, and what they learn about it
//! ([`CloseInfo`], [`Lagged`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message as WsMessage, Utf8Bytes};

use crate::channel::{Channel, LagPolicy};
use crate::conn_id::ConnId;
use crate::error::Error;
use crate::hub::{Hub, IntoTopic, Published};
use crate::outbox::{OutboxSender, Pushed, SlotEnd, SlotId};
use crate::session::codes::UnsubscribeCode;
use crate::session::protocol::wrap_pub;

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
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Channel, CloseCode, Server, TestServer, channel};
///
/// #[channel("chat/<room>")]
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Chat { text: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_channels::Error> {
/// let server = Chat::register(Server::new(), |h| {
///     h.on_message(|conn, msg| async move {
///         if msg.text == "/quit" {
///             conn.close(CloseCode::Normal, "bye");
///             return Ok(());
///         }
///         // Everyone on this connection's address (`chat/lobby`), the sender included.
///         let text = format!("[{}] {}", conn.params().room, msg.text);
///         let _published = conn.broadcast(&Chat { text }).await?;
///         Ok(())
///     })
/// });
/// let test = TestServer::new(server);
/// let lobby = ChatParams::new("lobby");
/// let (mut ann, mut ann_rx) = test.connect(&lobby).await?;
/// ann.send(&Chat { text: "hi".into() }).await?;
/// assert_eq!(ann_rx.next().await.expect("a broadcast")?.text, "[lobby] hi");
///
/// let (mut bob, mut bob_rx) = test.connect(&lobby).await?;
/// bob.send(&Chat { text: "hello".into() }).await?;
/// assert_eq!(bob_rx.next().await.expect("a broadcast")?.text, "[lobby] hello");
/// assert_eq!(ann_rx.next().await.expect("a broadcast")?.text, "[lobby] hello");
///
/// bob.send(&Chat { text: "/quit".into() }).await?;
/// assert!(bob_rx.next().await.is_none(), "the server closed the connection");
/// assert_eq!(bob_rx.close_code(), Some(CloseCode::Normal));
/// # Ok(()) }
/// ```
pub struct Conn<C: Channel, S = (), D = ()> {
    /// One shared pointer, so a handle costs one reference count to clone and drop: the
    /// message handler gets a clone for every message.
    handle: Arc<Handle<C, S, D>>,
}

/// What a [`Conn`] points to: the connection, and the data `on_connect` attached to it.
struct Handle<C: Channel, S, D> {
    inner: Arc<ConnInner<C, S>>,
    data: D,
    /// The same connection without its data, for callbacks written before `on_connect`
    /// (see [`Conn::without_data`]): made at their first call, then shared, so such a
    /// callback costs a reference count per message rather than an allocation.
    without_data: OnceLock<Conn<C, S>>,
}

/// Everything about a connection but its data, so callbacks written before `on_connect` can
/// see the same connection without it.
pub(crate) struct ConnInner<C: Channel, S> {
    pub(crate) core: Core,
    pub(crate) params: C::Params,
    pub(crate) state: Arc<S>,
}

/// The part of a connection that does not depend on its channel's types: what the connection
/// task, compiled once for every channel, reads of it (see `bound`).
pub(crate) struct Core {
    pub(crate) id: ConnId,
    /// The concrete address, the name of the topic every connection is subscribed to.
    pub(crate) address: Arc<str>,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) outbox: OutboxSender,
    pub(crate) hub: Hub,
    /// Set when this is a session's subscription: then `outbox` is the session's, `address`
    /// the channel string the client subscribed with, and `id` the session's.
    pub(crate) subscription: Option<Box<SubscriptionScope>>,
}

/// Where a subscription's own messages go in its session's outbox.
pub(crate) struct SubscriptionScope {
    /// Its slot, under its channel's lag policy.
    pub(crate) slot: SlotId,
    /// `{"push":{"channel":<its channel string>,"pub":{"data":`, made once.
    pub(crate) push_prefix: Box<str>,
}

impl Core {
    /// Asks the connection to close (see [`Conn::close`]); a subscription ends instead, with
    /// the `unsubscribe` push that stands for `code` (see `UnsubscribeCode::for_close`).
    pub(crate) fn close(&self, code: CloseCode, reason: &str) {
        let Some(scope) = &self.subscription else {
            self.outbox.request_close(code, reason);
            return;
        };
        let unsubscribe = UnsubscribeCode::for_close(code.into());
        let reason = match reason.is_empty() {
            true => unsubscribe.reason(),
            false => reason,
        };
        let end = SlotEnd {
            code: unsubscribe.code(),
            reason: reason.to_owned(),
        };
        self.outbox.end_slot(scope.slot, end);
    }

    /// Whether the connection is closing; for a subscription, whether it is ending.
    pub(crate) fn is_closing(&self) -> bool {
        match &self.subscription {
            None => self.outbox.is_closing(),
            Some(scope) => self.outbox.is_slot_ended(scope.slot),
        }
    }

    /// Queues an encoded frame under the lag policy: as it is for a connection, as a `pub`
    /// push on its channel string for a subscription (only JSON text travels in a session).
    pub(crate) fn push(&self, frame: WsMessage) -> Result<Pushed, Error> {
        let Some(scope) = &self.subscription else {
            return Ok(self.outbox.push(frame));
        };
        let WsMessage::Text(text) = frame else {
            return Err(Error::BinaryInSession);
        };
        let push = Bytes::from(wrap_pub(&scope.push_prefix, text.as_bytes()));
        let push = Utf8Bytes::try_from(push).map_err(|_| Error::BinaryInSession)?;
        Ok(self.outbox.push_slot(scope.slot, WsMessage::Text(push)))
    }
}

impl<C: Channel, S, D> Clone for Conn<C, S, D> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
        }
    }
}

impl<C: Channel, S, D> Conn<C, S, D> {
    pub(crate) fn new(inner: ConnInner<C, S>, data: D) -> Self {
        Self {
            handle: Arc::new(Handle {
                inner: Arc::new(inner),
                data,
                without_data: OnceLock::new(),
            }),
        }
    }

    /// The same connection, seen by a callback that does not know its data: one handle per
    /// connection, made at the first call.
    pub(crate) fn without_data(&self) -> Conn<C, S> {
        self.handle
            .without_data
            .get_or_init(|| Conn {
                handle: Arc::new(Handle {
                    inner: self.handle.inner.clone(),
                    data: (),
                    without_data: OnceLock::new(),
                }),
            })
            .clone()
    }

    fn inner(&self) -> &ConnInner<C, S> {
        &self.handle.inner
    }

    /// What the connection task reads of the connection.
    pub(crate) fn core(&self) -> &Core {
        &self.handle.inner.core
    }
}

impl<C: Channel, S, D> Conn<C, S, D> {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.core().id
    }

    /// The typed path parameters it connected with.
    pub fn params(&self) -> &C::Params {
        &self.inner().params
    }

    /// The concrete address it connected to (`chat/lobby`), percent-encoded.
    pub fn address(&self) -> &str {
        &self.core().address
    }

    /// The data `on_connect` returned.
    pub fn data(&self) -> &D {
        &self.handle.data
    }

    /// The server's shared state.
    pub fn state(&self) -> &S {
        &self.inner().state
    }

    /// The peer's socket address, when the transport has one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.core().remote_addr
    }

    /// The server's hub, to publish anywhere.
    pub fn hub(&self) -> &Hub {
        &self.core().hub
    }

    /// Sends a server message to this connection.
    ///
    /// The message is validated (for channels declared with `validate`) and serialized here,
    /// then queued for the connection's writer under the channel's
    /// [lag policy](crate::LagPolicy); this never waits for the client. Fails with
    /// [`Error::Closed`] once the connection is closing.
    ///
    /// It is serialized straight into the connection's outgoing buffer, and only once the lag
    /// policy lets it in: on a full queue a `DropNew` channel drops it unserialized (`Ok`),
    /// and a `Disconnect` channel closes the connection (`Err(Closed)`) whatever the message.
    pub async fn send(&self, message: &C::ServerMessage) -> Result<(), Error> {
        let core = self.core();
        let pushed = match &core.subscription {
            None => core.hub.send_to_outbox::<C>(&core.outbox, message)?,
            Some(_) => core.push(core.hub.encode::<C>(message)?)?,
        };
        sent(pushed)
    }

    /// Sends side-band bytes to this connection as one binary frame (an image, a file chunk),
    /// beside the channel's typed messages. Bounded by the server's
    /// [`max_outgoing_message_size`](crate::Server::max_outgoing_message_size); queued under
    /// the channel's lag policy like any message. On a MessagePack or raw channel, typed
    /// messages are binary frames too: the client tells them apart only by content.
    ///
    /// In a session's subscription this fails with [`Error::BinaryInSession`]: the session's
    /// JSON format carries no binary frames.
    pub async fn send_binary(&self, bytes: impl Into<Bytes>) -> Result<(), Error> {
        let core = self.core();
        sent(core.push(core.hub.check_outgoing(WsMessage::Binary(bytes.into()))?)?)
    }

    /// Sends a message to everyone on this connection's address, this connection included,
    /// on every node (see [`Hub::publish`]). Serialized once; says how many connections of
    /// this node queued it and whether the engine took it for the others. Only an encoding
    /// failure is an `Err`, so `?` here never closes the sender because the engine is away.
    pub async fn broadcast(&self, message: &C::ServerMessage) -> Result<Published, Error> {
        self.core().hub.publish_to::<C>(&self.core().address, message, None)
    }

    /// Sends a message to everyone on this connection's address except this connection, on
    /// every node.
    pub async fn broadcast_others(&self, message: &C::ServerMessage) -> Result<Published, Error> {
        let core = self.core();
        core.hub.publish_to::<C>(&core.address, message, Some(core.id))
    }

    /// Subscribes this connection to another topic of its channel (another room, a named
    /// topic); `false` if it already was. Subscriptions end with the connection.
    ///
    /// A session's subscription joins nothing (`false`): a session hears a topic by
    /// subscribing to it, and a Centrifugo SDK drops pushes for channels it did not subscribe
    /// to.
    pub fn join(&self, topic: impl IntoTopic<C>) -> bool {
        topic.with_name(|name| self.core().hub.join(self.id(), name))
    }

    /// Unsubscribes this connection from a topic; `false` if it was not subscribed. A
    /// connection can leave even its own address.
    ///
    /// A session's subscription leaves nothing (`false`): it ends with
    /// [`close`](Self::close).
    pub fn leave(&self, topic: impl IntoTopic<C>) -> bool {
        topic.with_name(|name| self.core().hub.leave(self.id(), name))
    }

    /// Closes the connection with a code and reason (truncated to the 123 bytes a close frame
    /// holds). Messages already queued are delivered first; later sends fail. Only the first
    /// close counts.
    ///
    /// In a session's subscription it ends the subscription, not the session: the client gets
    /// an `unsubscribe` push with the reason and code 2500 (the SDK resubscribes) for the
    /// closes a direct client would retry (1001, 1011, 1012, 1013, 1014), 2501 for expired
    /// credentials (4001), 2000 (final) for every other.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.core().close(code, reason);
    }

    /// Whether the connection is closing (a handler's `close`, an error, a limit, a shutdown);
    /// in a session's subscription, whether the subscription is ending.
    pub fn is_closing(&self) -> bool {
        self.core().is_closing()
    }

    /// Whether this is a session's subscription to the channel (see
    /// [`Sessions`](crate::Sessions)) rather than a connection of its own.
    pub fn is_subscription(&self) -> bool {
        self.core().subscription.is_some()
    }
}

impl<C: Channel, S, D: fmt::Debug> fmt::Debug for Conn<C, S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id())
            .field("channel", &C::NAME)
            .field("address", &self.core().address)
            .field("data", &self.handle.data)
            .field("remote_addr", &self.core().remote_addr)
            .finish_non_exhaustive()
    }
}

/// A send's outcome: an error once the connection is closing (or closed for lagging); a message
/// the lag policy dropped is not an error of the sender's.
fn sent(pushed: Pushed) -> Result<(), Error> {
    match pushed {
        Pushed::Closed | Pushed::Disconnected => Err(Error::closed(None)),
        Pushed::Queued | Pushed::DroppedOldest | Pushed::DroppedNew => Ok(()),
    }
}
