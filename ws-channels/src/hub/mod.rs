//! Topic membership and fan-out: every connection is subscribed to its own concrete address,
//! may join more topics of its channel, and a [`Hub`] publishes to them, serializing each
//! message once and pushing the shared bytes through each member's outbox sender. The hub
//! knows topics → connection ids → outbox senders, and nothing of connection tasks.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::channel::{Channel, Params};
use crate::codec;
use crate::conn_id::ConnId;
use crate::error::Error;
use crate::metrics::{Counters, Metrics};
use crate::outbox::OutboxSender;

/// A place messages of channel `C` are published to: one of its concrete addresses
/// (`chat/lobby`), or a name of your choosing (`Topic::named("announcements")`).
///
/// Topics are typed by channel, so only `C`'s server messages reach `C`'s subscribers.
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Server, TestServer, Topic, channel};
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
/// hub.publish(&announcements, &Chat { text: "maintenance at noon".into() }).await?;
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

    fn key(&self) -> TopicKey {
        TopicKey::new::<C>(&self.name)
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
}

impl<P: Params> IntoTopic<P::Channel> for &P {
    fn into_topic(self) -> Topic<P::Channel> {
        Topic::address(self)
    }
}

/// A topic's identity: its channel (so types never mix) and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicKey {
    channel: TypeId,
    name: Box<str>,
}

impl TopicKey {
    pub(crate) fn new<C: Channel>(name: &str) -> Self {
        Self {
            channel: TypeId::of::<C>(),
            name: name.into(),
        }
    }
}

/// Publishes to topics and connections from anywhere: handlers, HTTP routes, background
/// tasks. Cheap to clone; get one from [`Server::hub`](crate::Server::hub) or
/// [`Conn::hub`](crate::Conn::hub).
///
/// Each publish serializes (and validates) the message once; every receiver's queue gets the
/// same shared bytes, under its channel's [lag policy](crate::LagPolicy). Publishing never
/// waits for a slow receiver.
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Server, TestServer, channel};
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
/// assert_eq!(hub.publish(&final_, &Score { home: 1, away: 0 }).await?, 1);
/// assert_eq!(rx.next().await.expect("the new score")?.home, 1);
/// assert_eq!(hub.subscribers(&ScoreParams::new("semi")), 0);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    topics: RwLock<HashMap<TopicKey, HashMap<ConnId, OutboxSender>>>,
    members: RwLock<HashMap<ConnId, Member>>,
    counters: Arc<Counters>,
    /// The largest message the hub encodes for sending (`Server::max_outgoing_message_size`):
    /// owned here, because every outgoing message is encoded here.
    max_outgoing: AtomicUsize,
}

impl Default for HubInner {
    fn default() -> Self {
        Self {
            topics: RwLock::default(),
            members: RwLock::default(),
            counters: Arc::default(),
            max_outgoing: AtomicUsize::new(DEFAULT_MAX_OUTGOING),
        }
    }
}

/// A connection as the hub knows it: how to reach it, and the topics it joined (so leaving the
/// server leaves them all).
struct Member {
    outbox: OutboxSender,
    /// Its channel, so typed sends by id cannot reach another channel's client.
    channel: TypeId,
    topics: Vec<TopicKey>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topics = self.inner.topics.read().map(|t| t.len()).unwrap_or_default();
        f.debug_struct("Hub").field("topics", &topics).finish_non_exhaustive()
    }
}

impl Hub {
    /// Sends `message` to every subscriber of `topic`; returns how many queued it.
    ///
    /// `hub.publish(&ChatParams::new("lobby"), &msg)` reaches everyone connected to
    /// `chat/lobby` and everyone who joined it.
    pub async fn publish<C: Channel>(
        &self,
        topic: impl IntoTopic<C>,
        message: &C::ServerMessage,
    ) -> Result<usize, Error> {
        self.publish_to::<C>(&topic.into_topic().key(), message, None)
    }

    /// Like [`publish`](Self::publish), but skips one connection (typically the sender).
    pub async fn publish_except<C: Channel>(
        &self,
        topic: impl IntoTopic<C>,
        except: ConnId,
        message: &C::ServerMessage,
    ) -> Result<usize, Error> {
        self.publish_to::<C>(&topic.into_topic().key(), message, Some(except))
    }

    /// Serializes once and fans out to a topic's subscribers (but `except`).
    pub(crate) fn publish_to<C: Channel>(
        &self,
        key: &TopicKey,
        message: &C::ServerMessage,
        except: Option<ConnId>,
    ) -> Result<usize, Error> {
        let frame = self.encode::<C>(message)?;
        Ok(self.fan_out(key, &frame, except))
    }

    /// Sends `message` to one connection of channel `C`; `false` when no such connection is open.
    pub async fn send<C: Channel>(&self, to: ConnId, message: &C::ServerMessage) -> Result<bool, Error> {
        let frame = self.encode::<C>(message)?;
        let outbox = {
            let members = self.inner.members.read().unwrap_or_else(PoisonError::into_inner);
            members
                .get(&to)
                .filter(|member| member.channel == TypeId::of::<C>())
                .map(|member| member.outbox.clone())
        };
        Ok(outbox.is_some_and(|outbox| outbox.push(frame).delivered()))
    }

    /// How many connections are subscribed to `topic`.
    pub fn subscribers<C: Channel>(&self, topic: impl IntoTopic<C>) -> usize {
        let topics = self.inner.topics.read().unwrap_or_else(PoisonError::into_inner);
        topics.get(&topic.into_topic().key()).map_or(0, HashMap::len)
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

    /// Serializes and validates a server message once, into a frame every receiver shares;
    /// refuses one larger than the outgoing limit.
    pub(crate) fn encode<C: Channel>(&self, message: &C::ServerMessage) -> Result<WsMessage, Error> {
        self.check_outgoing(codec::encode::<C, _>(message, C::validate_server)?)
    }

    /// Refuses a frame larger than the outgoing limit.
    pub(crate) fn check_outgoing(&self, frame: WsMessage) -> Result<WsMessage, Error> {
        let (size, max) = (codec::payload_len(&frame), self.max_outgoing());
        match size > max {
            true => Err(Error::OutgoingTooLarge { size, max }),
            false => Ok(frame),
        }
    }

    /// The largest message this hub sends, in bytes.
    pub(crate) fn max_outgoing(&self) -> usize {
        self.inner.max_outgoing.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max_outgoing(&self, bytes: usize) {
        self.inner.max_outgoing.store(bytes, Ordering::Relaxed);
    }

    fn fan_out(&self, key: &TopicKey, frame: &WsMessage, except: Option<ConnId>) -> usize {
        let topics = self.inner.topics.read().unwrap_or_else(PoisonError::into_inner);
        let Some(members) = topics.get(key) else {
            return 0;
        };
        members
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .filter(|(_, outbox)| outbox.push(frame.clone()).delivered())
            .count()
    }

    /// Registers a connection of channel `C` (for sends by id).
    pub(crate) fn attach<C: Channel>(&self, id: ConnId, outbox: OutboxSender) {
        let mut members = self.inner.members.write().unwrap_or_else(PoisonError::into_inner);
        members.insert(
            id,
            Member {
                outbox,
                channel: TypeId::of::<C>(),
                topics: Vec::new(),
            },
        );
    }

    /// Subscribes a connection to a topic; `false` if it already was (or is not attached).
    pub(crate) fn join(&self, id: ConnId, key: TopicKey) -> bool {
        let mut members = self.inner.members.write().unwrap_or_else(PoisonError::into_inner);
        let Some(member) = members.get_mut(&id) else {
            return false;
        };
        if member.topics.contains(&key) {
            return false;
        }
        member.topics.push(key.clone());
        let outbox = member.outbox.clone();
        let mut topics = self.inner.topics.write().unwrap_or_else(PoisonError::into_inner);
        topics.entry(key).or_default().insert(id, outbox);
        true
    }

    /// Unsubscribes a connection from a topic; `false` if it was not subscribed.
    pub(crate) fn leave(&self, id: ConnId, key: &TopicKey) -> bool {
        let mut members = self.inner.members.write().unwrap_or_else(PoisonError::into_inner);
        let Some(Member { topics: joined, .. }) = members.get_mut(&id) else {
            return false;
        };
        let before = joined.len();
        joined.retain(|k| k != key);
        if joined.len() == before {
            return false;
        }
        self.remove_member(key, id);
        true
    }

    /// Forgets a connection and every subscription it had.
    pub(crate) fn detach(&self, id: ConnId) {
        let removed = {
            let mut members = self.inner.members.write().unwrap_or_else(PoisonError::into_inner);
            members.remove(&id)
        };
        if let Some(member) = removed {
            for key in &member.topics {
                self.remove_member(key, id);
            }
        }
    }

    fn remove_member(&self, key: &TopicKey, id: ConnId) {
        let mut topics = self.inner.topics.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(members) = topics.get_mut(key) {
            members.remove(&id);
            if members.is_empty() {
                topics.remove(key);
            }
        }
    }
}

/// The default largest outgoing message: 1 MiB.
pub(crate) const DEFAULT_MAX_OUTGOING: usize = 1024 * 1024;
