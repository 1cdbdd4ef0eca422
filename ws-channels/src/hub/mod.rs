//! Topics and fan-out: every connection is subscribed to its own concrete address, may join
//! more topics of its channel, and a [`Hub`] publishes to them, serializing each message once.
//! Three concepts: the local `registry` (who is subscribed to what, with each member's outbox
//! sender), the `backplane` trait an engine implements to carry encoded messages to other
//! nodes, and the [`Hub`] facade here, which encodes, delivers locally, then hands the bytes to
//! the engine; [`Inbound`], the way back from the engine, is here too, because it delivers into
//! the hub's own state. The Redis engine is in `redis` (feature `redis`).

mod backplane;
#[cfg(feature = "redis")]
mod redis;
mod registry;

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message as WsMessage};

use self::backplane::decode;
pub use self::backplane::{Backplane, BackplaneError, Destination, EngineHealth, Envelope};
#[cfg(feature = "redis")]
pub use self::redis::{RedisBackplane, RedisConfig};
use self::registry::Registry;
use crate::channel::{Channel, Params};
use crate::codec::{self, Json};
use crate::conn_id::{self, ConnId};
use crate::error::Error;
use crate::log::Throttle;
use crate::metrics::{Counters, EngineCount, Metrics};
use crate::outbox::{OutboxSender, Pushed, SlotId, SubscriptionRequest};

/// A place messages of channel `C` are published to: one of its concrete addresses
/// (`chat/lobby`), or a name of your choosing (`Topic::named("announcements")`).
///
/// Topics are typed by channel, so only `C`'s server messages reach `C`'s subscribers.
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Channel, Server, TestServer, Topic, channel};
///
/// #[channel("chat/<room>")]
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Chat { text: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_channels::Error> {
/// let server = Chat::register(Server::new(), |h| {
///     h.on_message(|conn, msg| async move {
///         if msg.text == "/subscribe" {
///             conn.join(Topic::named("announcements"));
///         }
///         conn.send(&msg).await?;
///         Ok(())
///     })
/// });
/// let hub = server.hub();
/// let test = TestServer::new(server);
/// let lobby = ChatParams::new("lobby");
/// let (mut tx, mut rx) = test.connect(&lobby).await?;
/// tx.send(&Chat { text: "/subscribe".into() }).await?;
/// rx.next().await.expect("the echo")?;
///
/// // A connection is subscribed to its address's topic, and to those it joined.
/// assert_eq!(Topic::<Chat>::address(&lobby).name(), "chat/lobby");
/// assert_eq!(hub.subscribers(&lobby), 1);
/// let announcements = Topic::<Chat>::named("announcements");
/// assert_eq!(hub.subscribers(&announcements), 1);
/// let published = hub.publish(&announcements, &Chat { text: "maintenance at noon".into() }).await?;
/// assert_eq!(published.local, 1);
/// assert_eq!(rx.next().await.expect("the announcement")?.text, "maintenance at noon");
/// # Ok(()) }
/// ```
pub struct Topic<C> {
    name: String,
    _channel: PhantomData<fn() -> C>,
}

impl<C: Channel> Topic<C> {
    /// A topic by name. The name of an address topic is the address (`chat/lobby`), so
    /// `Topic::named("chat/lobby")` is the same topic as that address.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            _channel: PhantomData,
        }
    }

    /// The topic of a concrete address: every connection to it is subscribed.
    pub fn address(params: &C::Params) -> Self {
        Self::named(params.to_string())
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<C> Clone for Topic<C> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            _channel: PhantomData,
        }
    }
}

impl<C: Channel> fmt::Debug for Topic<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic")
            .field("channel", &C::NAME)
            .field("name", &self.name)
            .finish()
    }
}

/// Anything that names a topic of channel `C`: a [`Topic`], or `&Params` for an address.
pub trait IntoTopic<C: Channel> {
    /// The topic.
    fn into_topic(self) -> Topic<C>;

    /// Calls `f` with the topic's name, without building a [`Topic`] where there is one.
    #[doc(hidden)]
    fn with_name<R>(self, f: impl FnOnce(&str) -> R) -> R
    where
        Self: Sized,
    {
        f(self.into_topic().name())
    }
}

impl<C: Channel> IntoTopic<C> for Topic<C> {
    fn into_topic(self) -> Topic<C> {
        self
    }
}

impl<C: Channel> IntoTopic<C> for &Topic<C> {
    fn into_topic(self) -> Topic<C> {
        self.clone()
    }

    fn with_name<R>(self, f: impl FnOnce(&str) -> R) -> R {
        f(self.name())
    }
}

impl<P: Params> IntoTopic<P::Channel> for &P {
    fn into_topic(self) -> Topic<P::Channel> {
        Topic::address(self)
    }
}

/// What a publish did: how many connections of this node queued the message, and whether the
/// engine took it for the other nodes.
///
/// Only an encoding failure (or a message over the outgoing limit) makes a publish an `Err`:
/// an engine outage is reported here instead, so that `conn.broadcast(&msg).await?` in a
/// handler never closes the sender's connection because Redis is away.
///
/// ```
/// # use ws_channels::{Published, BackplaneError};
/// fn log(published: Published) {
///     if let Err(error) = &published.engine {
///         tracing::warn!(%error, local = published.local, "not forwarded to the other nodes");
///     }
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
#[must_use = "a publish may reach this node only: check `engine`"]
pub struct Published {
    /// How many connections of this node queued the message.
    pub local: usize,
    /// `Ok` when every node that needs it will get it, as far as this node can tell: no
    /// engine is attached (one node), or the engine took the message. `Err` when the engine
    /// did not take it ([`BackplaneError::Down`], [`BackplaneError::Full`]): it reached this
    /// node's subscribers only.
    pub engine: Result<(), BackplaneError>,
}

/// What [`Hub::send`] did with a message for one connection.
#[derive(Debug)]
#[non_exhaustive]
#[must_use = "a send may have reached no connection"]
pub enum Sent {
    /// The connection is on this node and queued it.
    Delivered,
    /// The connection's id names another node: the engine took the message for it. Whether
    /// that node still has the connection is not known here.
    Forwarded,
    /// No such connection: none of this channel on this node with that id (or it is closing,
    /// or its lag policy dropped the message), or the id names another node and no engine
    /// is attached.
    NoConnection,
    /// The id names another node, and the engine did not take the message.
    NotForwarded(BackplaneError),
}

/// Publishes to topics and connections from anywhere: handlers, HTTP routes, background
/// tasks. Cheap to clone; get one from [`Server::hub`](crate::Server::hub) or
/// [`Conn::hub`](crate::Conn::hub).
///
/// Each publish serializes (and validates) the message once; every receiver's queue gets the
/// same shared bytes, under its channel's [lag policy](crate::LagPolicy). Publishing never
/// waits, neither for a slow receiver nor for an engine: the publishing methods are `async`
/// so that an engine may one day apply backpressure without an API change, but today they
/// complete on their first poll.
///
/// A hub is one node of a cluster: its id is the first half of every [`ConnId`] it assigns.
/// With a [`Backplane`] attached ([`attach_backplane`](Self::attach_backplane); the `redis`
/// feature has one), a publish reaches the subscribers of every node, in the order each node
/// published, and [`send`](Self::send) reaches a connection on any node.
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Channel, Server, TestServer, channel};
///
/// /// Scores, pushed by the server.
/// #[channel("scores/<game>", server_only)]
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Score { home: u32, away: u32 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_channels::Error> {
/// let server = Score::register(Server::new(), |h| {
///     h.on_open(|conn| async move {
///         conn.send(&Score { home: 0, away: 0 }).await?;
///         Ok(())
///     })
/// });
/// let hub = server.hub(); // take it before serving; it stays valid
/// let test = TestServer::new(server);
/// let final_ = ScoreParams::new("final");
/// let (_tx, mut rx) = test.connect(&final_).await?;
/// assert_eq!(rx.next().await.expect("the opening score")?.home, 0);
///
/// // From anywhere (an HTTP route, a background task): everyone on `scores/final`.
/// let published = hub.publish(&final_, &Score { home: 1, away: 0 }).await?;
/// assert_eq!(published.local, 1);
/// assert!(published.engine.is_ok(), "no engine: one node, and it got it");
/// assert_eq!(rx.next().await.expect("the new score")?.home, 1);
/// assert_eq!(hub.subscribers(&ScoreParams::new("semi")), 0);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

pub(crate) struct HubInner {
    /// This node's id, the first half of every `ConnId` it assigns.
    node: u64,
    /// The last connection number assigned.
    last_seq: AtomicU64,
    registry: Registry,
    counters: Arc<Counters>,
    /// The largest message the hub encodes for sending (`Server::max_outgoing_message_size`):
    /// owned here, because every outgoing message is encoded here.
    max_outgoing: AtomicUsize,
    /// Held, once an engine is attached, from a publish's local fan-out to its hand-off to
    /// the engine: two publishes racing on this node then reach every other node in the order
    /// they reached this one.
    publish_order: Mutex<()>,
    /// Envelopes this node could not read are logged at most once per 10 s: a rolling deploy
    /// that changes their version would otherwise log one line per message.
    skipped_warnings: Mutex<Throttle>,
}

impl Default for HubInner {
    fn default() -> Self {
        Self {
            node: conn_id::random_node_id(),
            last_seq: AtomicU64::new(0),
            registry: Registry::default(),
            counters: Arc::default(),
            max_outgoing: AtomicUsize::new(DEFAULT_MAX_OUTGOING),
            publish_order: Mutex::new(()),
            skipped_warnings: Mutex::new(Throttle::new(Duration::from_secs(10))),
        }
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("node", &format_args!("{:016x}", self.inner.node))
            .field("topics", &self.inner.registry.topic_count())
            .field("engine", &self.engine_health())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Sends `message` to every subscriber of `topic`, on this node and (with an engine) on
    /// every other; says how many of this node's connections queued it, and whether the
    /// engine took it.
    ///
    /// `hub.publish(&ChatParams::new("lobby"), &msg)` reaches everyone connected to
    /// `chat/lobby` and everyone who joined it.
    pub async fn publish<C: Channel>(
        &self,
        topic: impl IntoTopic<C>,
        message: &C::ServerMessage,
    ) -> Result<Published, Error> {
        topic.with_name(|name| self.publish_to::<C>(name, message, None))
    }

    /// Like [`publish`](Self::publish), but skips one connection (typically the sender),
    /// whichever node it is on.
    pub async fn publish_except<C: Channel>(
        &self,
        topic: impl IntoTopic<C>,
        except: ConnId,
        message: &C::ServerMessage,
    ) -> Result<Published, Error> {
        topic.with_name(|name| self.publish_to::<C>(name, message, Some(except)))
    }

    /// Serializes once, fans out to this node's subscribers of a topic (but `except`), then
    /// hands the bytes to the engine, if any.
    pub(crate) fn publish_to<C: Channel>(
        &self,
        topic: &str,
        message: &C::ServerMessage,
        except: Option<ConnId>,
    ) -> Result<Published, Error> {
        let frame = self.encode::<C>(message)?;
        let Some(engine) = self.inner.registry.engine() else {
            let local = self.inner.registry.fan_out(C::NAME, topic, &frame, except);
            return Ok(Published { local, engine: Ok(()) });
        };
        let envelope = Envelope::topic(self.inner.node, C::NAME, topic, except, &frame);
        let _order = self.inner.publish_order.lock().unwrap_or_else(PoisonError::into_inner);
        let local = self.inner.registry.fan_out(C::NAME, topic, &frame, except);
        let engine = self.forward(&**engine, envelope);
        Ok(Published { local, engine })
    }

    /// Sends `message` to one connection of channel `C`, on this node or (with an engine)
    /// another; says which.
    pub async fn send<C: Channel>(&self, to: ConnId, message: &C::ServerMessage) -> Result<Sent, Error> {
        let frame = self.encode::<C>(message)?;
        if to.node() == self.inner.node {
            return Ok(match self.inner.registry.send_to(to, C::NAME, frame) {
                true => Sent::Delivered,
                false => Sent::NoConnection,
            });
        }
        Ok(match self.inner.registry.engine() {
            None => Sent::NoConnection,
            Some(engine) => match self.forward(&**engine, Envelope::direct(self.inner.node, C::NAME, to, &frame)) {
                Ok(()) => Sent::Forwarded,
                Err(error) => Sent::NotForwarded(error),
            },
        })
    }

    fn forward(&self, engine: &dyn Backplane, envelope: Envelope) -> Result<(), BackplaneError> {
        let result = engine.forward(envelope);
        let count = match result {
            Ok(()) => EngineCount::Out,
            Err(_) => EngineCount::Refused,
        };
        self.inner.counters.engine(count, 1);
        result
    }

    /// Subscribes a session of this node to channel `C` at `params`, as a server-side
    /// subscription made now (see [`Identity::subscribe`](crate::Identity::subscribe) for one
    /// made at connect): the channel decides on it as on the client's own `subscribe`, and the
    /// client is told with a `subscribe` push, after which its publications follow (a
    /// Centrifugo SDK delivers them with no `subscribe` call: centrifuge-js emits the client's
    /// `subscribed` and `publication` events). One the channel refuses is logged; one the
    /// session has already is left as it is.
    ///
    /// Returns `false` if `session` is no session of this node (a direct connection, another
    /// node's session, one that has ended), it is closing, or it already has 1 024 such
    /// requests waiting; `true` once its task has the request, which it carries out in turn
    /// with its commands.
    pub fn subscribe_session<C: Channel<Codec = Json>>(&self, session: ConnId, params: &C::Params) -> bool {
        let request = SubscriptionRequest::Subscribe(params.to_string());
        self.inner.registry.request(session, request)
    }

    /// Ends a session's subscription to channel `C` at `params` (made by either side): the
    /// client gets an `unsubscribe` push with 2000 "server unsubscribe" (final: the SDK does
    /// not subscribe again). Returns what [`subscribe_session`](Self::subscribe_session) does;
    /// a channel the session is not subscribed to is no error.
    pub fn unsubscribe_session<C: Channel>(&self, session: ConnId, params: &C::Params) -> bool {
        let request = SubscriptionRequest::Unsubscribe(params.to_string());
        self.inner.registry.request(session, request)
    }

    /// How many connections of this node are subscribed to `topic`.
    pub fn subscribers<C: Channel>(&self, topic: impl IntoTopic<C>) -> usize {
        topic.with_name(|name| self.inner.registry.count(C::NAME, name))
    }

    /// How many connections of every node are subscribed to `topic`: this node's count, plus
    /// the other nodes' as the engine knows them (see the engine for how stale that may be).
    /// Without an engine, the same as [`subscribers`](Self::subscribers).
    pub async fn cluster_subscribers<C: Channel>(&self, topic: impl IntoTopic<C>) -> Result<usize, BackplaneError> {
        let topic = topic.into_topic();
        let local = self.inner.registry.count(C::NAME, topic.name());
        match self.inner.registry.engine() {
            None => Ok(local),
            Some(engine) => Ok(local + engine.remote_subscribers(C::NAME, topic.name()).await?),
        }
    }

    /// Attaches the engine that carries messages to the other nodes, and tells it the topics
    /// this node already needs. A hub has at most one. Engines call this themselves (such as
    /// `RedisBackplane::connect`); it is public for engines of your own.
    pub fn attach_backplane(&self, engine: Arc<dyn Backplane>) -> Result<(), BackplaneError> {
        self.inner.registry.attach_engine(engine)
    }

    /// The handle an engine delivers envelopes from other nodes through (holding this hub
    /// weakly: an engine's tasks do not keep a hub alive).
    pub fn inbound(&self) -> Inbound {
        Inbound {
            hub: Arc::downgrade(&self.inner),
            node: self.inner.node,
        }
    }

    /// Whether the engine is connected: [`EngineHealth::InProcess`] without one. Serve it on
    /// a readiness route.
    pub fn engine_health(&self) -> EngineHealth {
        self.inner
            .registry
            .engine()
            .map_or(EngineHealth::InProcess, |engine| engine.health())
    }

    /// This node's id: the first half of every [`ConnId`] this hub assigns.
    pub fn node_id(&self) -> u64 {
        self.inner.node
    }

    /// The server's counters.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            counters: self.inner.counters.clone(),
        }
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.inner.counters
    }

    /// A new connection id of this node.
    pub(crate) fn next_conn_id(&self) -> ConnId {
        ConnId::new(self.inner.node, self.inner.last_seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Serializes and validates a server message once, into a frame every receiver shares;
    /// refuses one larger than the outgoing limit.
    pub(crate) fn encode<C: Channel>(&self, message: &C::ServerMessage) -> Result<WsMessage, Error> {
        self.check_outgoing(codec::encode::<C, _>(message, C::validate_server)?)
    }

    /// Validates `message` and queues it in one connection's outbox, encoded into the outbox's
    /// own bytes (under its lock, only if the lag policy lets it in).
    pub(crate) fn send_to_outbox<C: Channel>(
        &self,
        outbox: &OutboxSender,
        message: &C::ServerMessage,
    ) -> Result<Pushed, Error> {
        codec::validated::<C, _>(message, C::validate_server)?;
        outbox
            .push_encoded(|queueing| crate::outbox::encode_to::<C, _>(message, queueing, |size| self.check_size(size)))
    }

    /// Refuses a frame larger than the outgoing limit.
    pub(crate) fn check_outgoing(&self, frame: WsMessage) -> Result<WsMessage, Error> {
        self.check_size(codec::payload_len(&frame))?;
        Ok(frame)
    }

    /// Refuses a payload of `size` bytes if it is over the outgoing limit.
    fn check_size(&self, size: usize) -> Result<(), Error> {
        let max = self.max_outgoing();
        match size > max {
            true => Err(Error::OutgoingTooLarge { size, max }),
            false => Ok(()),
        }
    }

    /// The largest message this hub sends, in bytes.
    pub(crate) fn max_outgoing(&self) -> usize {
        self.inner.max_outgoing.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max_outgoing(&self, bytes: usize) {
        self.inner.max_outgoing.store(bytes, Ordering::Relaxed);
    }

    /// Registers a connection of channel `C` (for sends by id).
    pub(crate) fn attach<C: Channel>(&self, id: ConnId, outbox: OutboxSender) {
        self.inner.registry.attach(id, C::NAME, outbox);
    }

    /// Subscribes a connection to a topic of its channel; `false` if it already was (or is
    /// not attached).
    pub(crate) fn join(&self, id: ConnId, topic: &str) -> bool {
        self.inner.registry.join(id, topic)
    }

    /// Unsubscribes a connection from a topic; `false` if it was not subscribed.
    pub(crate) fn leave(&self, id: ConnId, topic: &str) -> bool {
        self.inner.registry.leave(id, topic)
    }

    /// Registers a session (for sends by id); its subscriptions join with
    /// [`join_slot`](Self::join_slot).
    pub(crate) fn attach_session(&self, id: ConnId, outbox: OutboxSender) {
        self.inner.registry.attach_session(id, outbox);
    }

    /// Subscribes a session to a topic of the channel named `channel` (its `NAME`: the
    /// session task is not generic over channels), its pushes routed to `slot` of its outbox;
    /// `false` if it already was (or is not attached as a session).
    pub(crate) fn join_slot(&self, id: ConnId, channel: &'static str, topic: &str, slot: SlotId) -> bool {
        self.inner.registry.join_slot(id, channel, topic, slot)
    }

    /// Unsubscribes a session from a topic of the channel named `channel`; `false` if it was
    /// not subscribed. Once this returns, no push reaches the subscription's slot.
    pub(crate) fn leave_slot(&self, id: ConnId, channel: &'static str, topic: &str) -> bool {
        self.inner.registry.leave_slot(id, channel, topic)
    }

    /// Forgets a connection and every subscription it had.
    pub(crate) fn detach(&self, id: ConnId) {
        self.inner.registry.detach(id);
    }

    /// Asks every connection of this node to close (a server shutdown).
    pub(crate) fn close_all(&self, code: CloseCode, reason: &str) {
        self.inner.registry.close_all(code, reason);
    }

    /// The server's graceful shutdown is over: tells the engine, if any, that this node leaves
    /// the cluster ([`Backplane::shutdown`]), and waits for it at most [`ENGINE_SHUTDOWN`].
    pub(crate) async fn server_stopped(&self) {
        let Some(engine) = self.inner.registry.engine() else {
            return;
        };
        if tokio::time::timeout(ENGINE_SHUTDOWN, engine.shutdown()).await.is_err() {
            // Whatever it keeps for this node expires there by itself.
            tracing::warn!(
                timeout_ms = ENGINE_SHUTDOWN.as_millis(),
                "the backplane did not finish its shutdown in time"
            );
        }
    }
}

/// How an engine reaches the hub it serves: hands it envelopes from other nodes, and reports
/// what happened to the link (for the hub's [counters](crate::MetricsSnapshot)). Holds the hub
/// weakly: once every handle to the hub is gone, [`is_open`](Self::is_open) turns false and
/// the engine should stop.
#[derive(Clone)]
pub struct Inbound {
    hub: Weak<HubInner>,
    node: u64,
}

impl Inbound {
    /// This node's id: the engine subscribes to the direct sends for it, and skips its own
    /// envelopes if they come back.
    pub fn node_id(&self) -> u64 {
        self.node
    }

    /// Whether the hub is still alive.
    pub fn is_open(&self) -> bool {
        self.hub.strong_count() > 0
    }

    /// Delivers an envelope (its wire form) that arrived from the engine to this node's
    /// subscribers, or its target connection, without decoding the message. Returns how many
    /// connections queued it. An envelope this node sent itself is ignored; one of an unknown
    /// version, or malformed, is skipped, counted and logged.
    pub fn deliver(&self, wire: &Bytes) -> usize {
        let Some(hub) = self.hub.upgrade() else {
            return 0;
        };
        let received = match decode(wire) {
            Ok(received) => received,
            Err(error) => {
                hub.counters.engine(EngineCount::Skipped, 1);
                let now = tokio::time::Instant::now();
                let allowed = hub
                    .skipped_warnings
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .allow(now);
                if let Some(suppressed) = allowed {
                    tracing::warn!(%error, bytes = wire.len(), suppressed, "skipped an envelope from the backplane");
                }
                return 0;
            }
        };
        if received.origin == self.node {
            return 0;
        }
        hub.counters.engine(EngineCount::In, 1);
        let registry = &hub.registry;
        match received.target {
            Some(target) => usize::from(registry.send_to(target, received.channel, received.frame)),
            None => registry.fan_out(received.channel, received.topic, &received.frame, received.except),
        }
    }

    /// Every topic with subscribers on this node: `(channel NAME, topic, local subscribers)`,
    /// what an engine publishes as this node's member counts.
    pub fn subscriber_counts(&self) -> Vec<(&'static str, Box<str>, usize)> {
        self.hub.upgrade().map(|hub| hub.registry.counts()).unwrap_or_default()
    }

    /// The engine lost its connection; `lost` messages it had taken were not delivered to
    /// the other nodes.
    pub fn disconnected(&self, lost: u64) {
        if let Some(hub) = self.hub.upgrade() {
            hub.counters.engine(EngineCount::Lost, lost);
        }
    }

    /// The engine reconnected after being down for `outage`.
    pub fn reconnected(&self, outage: Duration) {
        if let Some(hub) = self.hub.upgrade() {
            hub.counters.engine(EngineCount::Reconnects, 1);
            let ms = u64::try_from(outage.as_millis()).unwrap_or(u64::MAX);
            hub.counters.engine(EngineCount::OutageMs, ms);
        }
    }
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("node", &format_args!("{:016x}", self.node))
            .field("open", &self.is_open())
            .finish()
    }
}

/// How long a server's shutdown waits for its engine's [`Backplane::shutdown`]: long enough for
/// a round trip to a store under load, short enough not to hold a deploy up.
const ENGINE_SHUTDOWN: Duration = Duration::from_secs(2);

/// The default largest outgoing message: 1 MiB.
pub(crate) const DEFAULT_MAX_OUTGOING: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;
    use tokio_tungstenite::tungstenite::Bytes;

    use super::*;
    use crate::channel::LagPolicy;
    use crate::outbox::{Batch, Frame, OutboxReceiver, SessionLimits, outbox, session_outbox};
    use crate::session::protocol::{Publication, PushBody, Reply};

    #[crate::channel("room/<name>")]
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Room {
        text: String,
    }

    /// An engine that records what the hub asks of it, and refuses publishes when told to.
    #[derive(Default)]
    struct Recording {
        calls: Mutex<Vec<String>>,
        envelopes: Mutex<Vec<Envelope>>,
        refuse: std::sync::atomic::AtomicBool,
    }

    impl Backplane for Recording {
        fn forward(&self, envelope: Envelope) -> Result<(), BackplaneError> {
            if self.refuse.load(Ordering::Relaxed) {
                return Err(BackplaneError::Full);
            }
            self.envelopes.lock().unwrap().push(envelope);
            Ok(())
        }

        fn subscribe(&self, channel: &'static str, topic: &str) {
            self.calls.lock().unwrap().push(format!("+{channel} {topic}"));
        }

        fn unsubscribe(&self, channel: &'static str, topic: &str) {
            self.calls.lock().unwrap().push(format!("-{channel} {topic}"));
        }

        fn remote_subscribers<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<usize, BackplaneError>> {
            Box::pin(async { Ok(5) })
        }

        fn health(&self) -> EngineHealth {
            EngineHealth::Up
        }
    }

    fn member(hub: &Hub) -> (ConnId, OutboxReceiver) {
        let id = hub.next_conn_id();
        let (tx, rx) = outbox(Room::NAME, 8, LagPolicy::DropNew, hub.counters().clone());
        hub.attach::<Room>(id, tx);
        (id, rx)
    }

    async fn texts(rx: &OutboxReceiver) -> Vec<String> {
        let mut batch = crate::outbox::Batch::default();
        rx.next_batch(&mut batch).await;
        batch.texts()
    }

    fn said(text: &str) -> Room {
        Room { text: text.into() }
    }

    /// Two publishers racing on one node: every other node must see their messages in the
    /// order this node's subscribers did.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_publishers_reach_the_engine_in_the_order_they_reached_this_node() {
        const EACH: usize = 10_000;
        let hub = Hub::default();
        let id = hub.next_conn_id();
        let (tx, rx) = outbox(Room::NAME, 2 * EACH, LagPolicy::DropNew, hub.counters().clone());
        hub.attach::<Room>(id, tx);
        assert!(hub.join(id, "room/x"));
        let engine = Arc::new(Recording::default());
        hub.attach_backplane(engine.clone()).unwrap();
        let topic = Topic::<Room>::named("room/x");
        let publishers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let (hub, topic) = (hub.clone(), topic.clone());
                tokio::spawn(async move {
                    for n in 0..EACH {
                        let published = hub.publish(&topic, &said(&format!("{who}{n}"))).await.unwrap();
                        assert_eq!(published.local, 1);
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.await.unwrap();
        }
        let mut local = Vec::new();
        while local.len() < 2 * EACH {
            local.extend(texts(&rx).await);
        }
        let forwarded: Vec<String> = engine
            .envelopes
            .lock()
            .unwrap()
            .iter()
            .map(|envelope| {
                let received = backplane::decode(envelope.wire()).unwrap();
                let room: Room = serde_json::from_str(received.frame.to_text().unwrap()).unwrap();
                format!(r#"{{"text":"{}"}}"#, room.text)
            })
            .collect();
        assert_eq!(forwarded.len(), 2 * EACH);
        assert!(
            local == forwarded,
            "the engine got the publishes in another order than this node"
        );
    }

    #[tokio::test]
    async fn the_engine_hears_of_first_and_last_subscribers_in_order_and_gets_each_publish_once() {
        let hub = Hub::default();
        let (a, _a_rx) = member(&hub);
        assert!(hub.join(a, "room/x"));
        let engine = Arc::new(Recording::default());
        hub.attach_backplane(engine.clone()).unwrap();
        assert!(matches!(
            hub.attach_backplane(engine.clone()),
            Err(BackplaneError::AlreadyAttached)
        ));
        let (b, _b_rx) = member(&hub);
        assert!(hub.join(b, "room/x"), "a second subscriber: nothing to tell");
        assert!(hub.join(b, "room/y"));
        assert!(hub.leave(a, "room/x"));
        hub.detach(b);
        assert_eq!(
            *engine.calls.lock().unwrap(),
            ["+Room room/x", "+Room room/y", "-Room room/x", "-Room room/y"],
            "the topic it already had, then each change"
        );

        let published = hub.publish(Topic::<Room>::named("room/z"), &said("hi")).await.unwrap();
        assert_eq!(published.local, 0);
        published.engine.unwrap();
        let envelopes = engine.envelopes.lock().unwrap().clone();
        assert_eq!(envelopes.len(), 1);
        assert_eq!(
            envelopes[0].destination(),
            Destination::Topic {
                channel: "Room",
                topic: "room/z"
            }
        );
        assert_eq!(
            hub.cluster_subscribers(Topic::<Room>::named("room/z")).await.unwrap(),
            5
        );
        assert_eq!(hub.metrics().snapshot().backplane_out, 1);

        engine.refuse.store(true, Ordering::Relaxed);
        let refused = hub.publish(Topic::<Room>::named("room/z"), &said("no")).await.unwrap();
        assert!(matches!(refused.engine, Err(BackplaneError::Full)));
        assert_eq!(hub.metrics().snapshot().backplane_refused, 1);
    }

    #[tokio::test]
    async fn sends_by_id_say_where_they_went() {
        let hub = Hub::default();
        let (a, a_rx) = member(&hub);
        let elsewhere = ConnId::new(hub.node_id().wrapping_add(1), 1);
        assert!(matches!(
            hub.send::<Room>(a, &said("one")).await.unwrap(),
            Sent::Delivered
        ));
        assert!(matches!(
            hub.send::<Room>(elsewhere, &said("x")).await.unwrap(),
            Sent::NoConnection
        ));
        let engine = Arc::new(Recording::default());
        hub.attach_backplane(engine.clone()).unwrap();
        assert!(matches!(
            hub.send::<Room>(elsewhere, &said("x")).await.unwrap(),
            Sent::Forwarded
        ));
        assert_eq!(
            engine.envelopes.lock().unwrap()[0].destination(),
            Destination::Connection(elsewhere)
        );
        engine.refuse.store(true, Ordering::Relaxed);
        assert!(matches!(
            hub.send::<Room>(elsewhere, &said("x")).await.unwrap(),
            Sent::NotForwarded(BackplaneError::Full)
        ));
        assert_eq!(texts(&a_rx).await, [r#"{"text":"one"}"#]);
    }

    #[tokio::test]
    async fn envelopes_from_other_nodes_reach_local_subscribers_and_own_ones_are_ignored() {
        let (here, there) = (Hub::default(), Hub::default());
        let (a, a_rx) = member(&here);
        let (b, b_rx) = member(&here);
        here.join(a, "room/x");
        here.join(b, "room/x");
        let frame = there.encode::<Room>(&said("from there")).unwrap();
        let inbound = here.inbound();
        let from_there = Envelope::topic(there.node_id(), Room::NAME, "room/x", Some(b), &frame);
        assert_eq!(
            inbound.deliver(from_there.wire()),
            1,
            "everyone but the excepted connection"
        );
        let direct = Envelope::direct(there.node_id(), Room::NAME, b, &frame);
        assert_eq!(inbound.deliver(direct.wire()), 1);
        let echo = Envelope::topic(here.node_id(), Room::NAME, "room/x", None, &frame);
        assert_eq!(inbound.deliver(echo.wire()), 0, "this node delivered its own already");
        assert_eq!(inbound.deliver(&Bytes::from_static(&[9, 0, 0])), 0);
        let counts = here.metrics().snapshot();
        assert_eq!((counts.backplane_in, counts.backplane_skipped), (2, 1));
        assert_eq!(texts(&a_rx).await, [r#"{"text":"from there"}"#]);
        assert_eq!(texts(&b_rx).await, [r#"{"text":"from there"}"#]);
    }

    // -- Sessions' subscriptions.

    #[crate::channel("desk/<name>")]
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Desk {
        text: String,
    }

    /// A session on `hub`, attached as the session task attaches one.
    fn session_member(hub: &Hub) -> (ConnId, OutboxReceiver) {
        let id = hub.next_conn_id();
        let limits = SessionLimits {
            per_slot: 8,
            max_queued_bytes: 1 << 20,
            max_frame: 1 << 16,
        };
        let (tx, rx) = session_outbox(limits, hub.counters().clone());
        hub.attach_session(id, tx);
        (id, rx)
    }

    /// Subscribes a session to a topic, live at once (its `subscribe` reply written).
    fn subscribe(hub: &Hub, (id, rx): &(ConnId, OutboxReceiver), channel: &'static str, topic: &str) -> SlotId {
        let slot = rx.open_slot(channel, LagPolicy::DropNew);
        assert!(hub.join_slot(*id, channel, topic, slot));
        let released = rx.release_slots(&[slot], |reply| {
            reply.extend_from_slice(b"{}");
            Ok::<_, std::convert::Infallible>(())
        });
        assert_eq!(released, Ok(true));
        assert_eq!(taken(rx).texts(), ["{}"]);
        slot
    }

    /// What the writer would take now.
    fn taken(rx: &OutboxReceiver) -> Batch {
        let mut batch = Batch::default();
        {
            let next = std::pin::pin!(rx.next_batch(&mut batch));
            let _ = std::future::Future::poll(next, &mut std::task::Context::from_waker(std::task::Waker::noop()));
        }
        batch
    }

    /// The one frame the writer would take now: its text, and where its bytes are.
    fn only_frame(rx: &OutboxReceiver) -> (String, *const u8) {
        let batch = taken(rx);
        match batch.frames.iter().collect::<Vec<_>>()[..] {
            [Frame::Message(WsMessage::Text(text))] => (text.to_string(), text.as_str().as_ptr()),
            _ => panic!("not one shared text frame: {:?}", batch.texts()),
        }
    }

    /// The `pub` push of `data` on `channel`, as serde encodes it.
    fn pub_push(channel: &str, data: &str) -> String {
        let publication = Publication {
            data: Some(serde_json::value::RawValue::from_string(data.to_owned()).unwrap()),
            ..Default::default()
        };
        Reply::push(channel, PushBody::Pub(publication)).encode().unwrap()
    }

    #[tokio::test]
    async fn a_publish_gives_direct_members_its_frame_and_session_members_one_shared_pub_push() {
        let hub = Hub::default();
        let (d1, d1_rx) = member(&hub);
        let (d2, d2_rx) = member(&hub);
        assert!(hub.join(d1, "room/x") && hub.join(d2, "room/x"));
        let s1 = session_member(&hub);
        let s2 = session_member(&hub);
        subscribe(&hub, &s1, Room::NAME, "room/x");
        subscribe(&hub, &s1, Room::NAME, "room/y");
        subscribe(&hub, &s2, Room::NAME, "room/x");
        let x = Topic::<Room>::named("room/x");
        assert_eq!(hub.subscribers(&x), 4, "members of either kind");
        assert_eq!(hub.publish(&x, &said("hi")).await.unwrap().local, 4);

        let plain = r#"{"text":"hi"}"#;
        let (d1_text, d1_bytes) = only_frame(&d1_rx);
        let (d2_text, d2_bytes) = only_frame(&d2_rx);
        assert_eq!((d1_text.as_str(), d2_text.as_str()), (plain, plain));
        assert_eq!(d1_bytes, d2_bytes, "direct members share the frame, as before");
        let (s1_text, s1_bytes) = only_frame(&s1.1);
        let (s2_text, s2_bytes) = only_frame(&s2.1);
        let serde = pub_push("room/x", plain);
        assert_eq!((s1_text.as_str(), s2_text.as_str()), (serde.as_str(), serde.as_str()));
        assert_eq!(s1_bytes, s2_bytes, "session members share one push");
        assert_ne!(s1_bytes, d1_bytes);

        let published = hub.publish_except(&x, s2.0, &said("bye")).await.unwrap();
        assert_eq!(published.local, 3);
        assert_eq!(only_frame(&s1.1).0, pub_push("room/x", r#"{"text":"bye"}"#));
        assert!(taken(&s2.1).frames.is_empty(), "the excepted session");
    }

    #[tokio::test]
    async fn a_send_by_id_to_a_session_reaches_each_of_its_subscriptions_of_the_channel() {
        let hub = Hub::default();
        let session = session_member(&hub);
        subscribe(&hub, &session, Room::NAME, "room/a");
        subscribe(&hub, &session, Desk::NAME, "desk/c");
        subscribe(&hub, &session, Room::NAME, "room/b");
        let sent = hub.send::<Room>(session.0, &said("one")).await.unwrap();
        assert!(matches!(sent, Sent::Delivered));
        let one = r#"{"text":"one"}"#;
        assert_eq!(
            taken(&session.1).texts(),
            [pub_push("room/a", one), pub_push("room/b", one)],
            "each on its own channel string, none on the other channel's"
        );
        let desk = hub.send::<Desk>(session.0, &Desk { text: "two".into() }).await.unwrap();
        assert!(matches!(desk, Sent::Delivered));
        assert_eq!(taken(&session.1).texts(), [pub_push("desk/c", r#"{"text":"two"}"#)]);

        let (bare, _bare_rx) = session_member(&hub);
        let none = hub.send::<Room>(bare, &said("x")).await.unwrap();
        assert!(
            matches!(none, Sent::NoConnection),
            "a session without a subscription of it"
        );
        let (direct, _direct_rx) = member(&hub);
        let other = hub.send::<Desk>(direct, &Desk { text: "x".into() }).await.unwrap();
        assert!(
            matches!(other, Sent::NoConnection),
            "a direct connection of another channel"
        );
    }

    #[tokio::test]
    async fn the_engine_hears_of_a_topics_first_and_last_member_of_either_kind() {
        let hub = Hub::default();
        let engine = Arc::new(Recording::default());
        hub.attach_backplane(engine.clone()).unwrap();
        let (direct, _direct_rx) = member(&hub);
        let session = session_member(&hub);
        assert!(hub.join(direct, "room/x"));
        let slot = subscribe(&hub, &session, Room::NAME, "room/x");
        subscribe(&hub, &session, Room::NAME, "room/y");
        assert!(
            !hub.join_slot(session.0, Room::NAME, "room/x", slot),
            "one subscription per channel string"
        );
        assert!(!hub.join(session.0, "room/z"), "a session joins by subscribing");
        assert!(
            !hub.join_slot(direct, Room::NAME, "room/z", slot),
            "a direct connection has no slots"
        );
        assert!(hub.leave(direct, "room/x"));
        assert_eq!(hub.subscribers(Topic::<Room>::named("room/x")), 1);
        assert!(hub.leave_slot(session.0, Room::NAME, "room/x"));
        assert!(!hub.leave_slot(session.0, Room::NAME, "room/x"));
        hub.detach(session.0);
        assert_eq!(
            *engine.calls.lock().unwrap(),
            ["+Room room/x", "+Room room/y", "-Room room/x", "-Room room/y"]
        );
        assert_eq!(hub.inner.registry.topic_count(), 0);
        let gone = hub.send::<Room>(session.0, &said("x")).await.unwrap();
        assert!(matches!(gone, Sent::NoConnection), "detached");
    }

    #[tokio::test]
    async fn envelopes_from_other_nodes_reach_session_members_as_pub_pushes() {
        let (here, there) = (Hub::default(), Hub::default());
        let session = session_member(&here);
        subscribe(&here, &session, Room::NAME, "room/x");
        let frame = there.encode::<Room>(&said("from there")).unwrap();
        let inbound = here.inbound();
        let published = Envelope::topic(there.node_id(), Room::NAME, "room/x", None, &frame);
        assert_eq!(inbound.deliver(published.wire()), 1);
        let direct = Envelope::direct(there.node_id(), Room::NAME, session.0, &frame);
        assert_eq!(inbound.deliver(direct.wire()), 1);
        let push = pub_push("room/x", r#"{"text":"from there"}"#);
        assert_eq!(taken(&session.1).texts(), [push.clone(), push]);
    }

    #[test]
    fn a_shutdown_closes_sessions_with_their_protocols_code() {
        let hub = Hub::default();
        let (_direct, direct_rx) = member(&hub);
        let (_session, session_rx) = session_member(&hub);
        hub.close_all(CloseCode::Away, "server shutting down");
        assert_eq!(direct_rx.close_frame().unwrap().code, CloseCode::Away);
        let close = session_rx.close_frame().unwrap();
        assert_eq!((u16::from(close.code), close.reason.as_str()), (3001, "shutdown"));
    }
}
