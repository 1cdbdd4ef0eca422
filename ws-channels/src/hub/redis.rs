//! The Redis backplane: nodes sharing one Redis server deliver each other's messages (one
//! PUBLISH per message, pipelined), reach each other's connections (a channel per node), and
//! count each other's members (a hash per node that expires with the node).
//!
//! Two tasks per node, each with its own connection: the publisher (the outgoing queue, and
//! this node's member counts) and the subscriber (the topics this node needs, and what
//! arrives on them). Either losing its connection makes the engine down until both are back;
//! each reconnects by itself with backoff and jitter.
//!
//! The hub's changes of the topics it needs do not queue commands: they change the set of
//! channels this node wants ([`Subscriptions`]), and the subscriber brings its connection in
//! line with it in batches, between bursts of messages, the same way after a reconnect (from
//! nothing subscribed) as in steady state. However fast topics churn, the work and memory
//! follow the topics, not the changes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use redis::AsyncConnectionConfig;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Bytes;

use super::backplane::{Backplane, BackplaneError, Destination, EngineHealth, Envelope};
use super::{Hub, Inbound};

/// How a [`RedisBackplane`] connects, names its keys and recovers.
///
/// Redis names, under the [prefix](Self::prefix) `P` (default `ws-channels`):
///
/// | name | what |
/// |---|---|
/// | `P:topic:<channel NAME>:<topic>` | the pub/sub channel of a topic; a node subscribes only while it has local subscribers |
/// | `P:node:<node id, 16 hex digits>` | the pub/sub channel of one node, for direct sends to its connections |
/// | `P:members:<node id>` | a hash: this node's subscriber count per topic, expiring [`node_ttl`](Self::node_ttl) after the node's last write, deleted when its server shuts down gracefully |
/// | `P:nodes` | a set of node ids that wrote counts (a node leaves it when its server shuts down gracefully) |
///
/// Two apps with different prefixes share one Redis without seeing each other.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    url: String,
    prefix: String,
    queue: usize,
    connect_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    count_interval: Duration,
    node_ttl: Duration,
}

impl RedisConfig {
    /// Connects to `url` (`redis://127.0.0.1:6379`, `redis://:password@host/0`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "ws-channels".into(),
            queue: 16 * 1024,
            connect_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            count_interval: Duration::from_secs(1),
            node_ttl: Duration::from_secs(15),
        }
    }

    /// The prefix of every Redis name this engine uses. Default: `ws-channels`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many messages may wait to be published; over it a publish reports
    /// [`BackplaneError::Full`]. Default: 16 384.
    ///
    /// The bound is in messages, so the memory it may hold is this times your largest
    /// message (at most [`Server::max_outgoing_message_size`](crate::Server::max_outgoing_message_size),
    /// 1 MiB by default): an app that broadcasts large messages should lower it. The queue
    /// fills only while Redis is slower than the node's publishes; while Redis is down,
    /// publishes are refused at once instead ([`BackplaneError::Down`]).
    ///
    /// # Panics
    ///
    /// If `messages` is zero.
    pub fn queue(mut self, messages: usize) -> Self {
        assert!(
            messages > 0,
            "the backplane's queue needs room for at least one message"
        );
        self.queue = messages;
        self
    }

    /// How long one connection attempt may take. Default: 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Reconnection backoff: the first retry waits up to `min`, each next one up to twice as
    /// long, never more than `max` (each wait is drawn at random below its bound: full
    /// jitter, so restarted nodes do not reconnect in lockstep). Default: 100 ms to 5 s.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// How often this node writes its changed member counts, and so how stale another node's
    /// view of them may be (plus a round trip). Default: 1 s.
    ///
    /// # Panics
    ///
    /// If `interval` is zero.
    pub fn count_interval(mut self, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "the count interval must be longer than zero");
        self.count_interval = interval;
        self
    }

    /// How long a node's member counts outlive its last write: a node that died stops being
    /// counted after this. Must be a few count intervals. Default: 15 s.
    ///
    /// # Panics
    ///
    /// If `ttl` is shorter than a millisecond (Redis expires keys in whole milliseconds, and a
    /// zero expiry deletes the key).
    pub fn node_ttl(mut self, ttl: Duration) -> Self {
        assert!(
            ttl >= Duration::from_millis(1),
            "the node TTL must be at least a millisecond"
        );
        self.node_ttl = ttl;
        self
    }

    fn topic_channel(&self, channel: &str, topic: &str) -> String {
        format!("{}:topic:{channel}:{topic}", self.prefix)
    }

    fn node_channel(&self, node: u64) -> String {
        format!("{}:node:{node:016x}", self.prefix)
    }

    fn members_key(&self, node: u64) -> String {
        format!("{}:members:{node:016x}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
}

/// The field of a topic in a node's members hash: unambiguous whatever the names contain.
fn count_field(channel: &str, topic: &str) -> String {
    format!("{}:{channel}{topic}", channel.len())
}

/// A [`Backplane`] on Redis pub/sub (feature `redis`).
///
/// - Each message is one PUBLISH of the [`Envelope`] (the encoded frame and a small header)
///   to the topic's Redis channel; publishes are pipelined, in order, on one connection, so
///   every node receives one node's messages to a topic in the order it published them.
///   Receivers deliver the bytes without decoding them.
/// - A node SUBSCRIBEs to a topic's channel when the topic gets its first local subscriber and
///   UNSUBSCRIBEs when it loses its last: a topic without subscribers on a node costs that
///   node no traffic. These are batched (up to 512 channels a command) and sent between
///   bursts of incoming messages, so topics coming and going by the thousand neither delay
///   messages nor queue up: a topic that comes and goes before its turn costs nothing. Sends
///   to a connection of another node go to that node's channel.
/// - Member counts: each node writes its counts to a hash of its own every
///   [count interval](RedisConfig::count_interval) (1 s) when they changed, refreshing the
///   hash's expiry; [`Hub::cluster_subscribers`] adds the other nodes' hashes. They are at
///   most a count interval plus a round trip stale, and a dead node is counted until its hash
///   expires ([node TTL](RedisConfig::node_ttl), 15 s). A node whose server shuts down
///   gracefully ([`ServerHandle::shutdown`](crate::ServerHandle::shutdown), or the end of
///   `serve_with_shutdown`) deletes its hash once its connections have closed: the others stop
///   counting it at once.
///
/// **Failures.** [`connect`](Self::connect) fails with a clear error when Redis cannot be
/// reached at start-up (no retry: a misconfigured URL should stop a deploy). Once running, a
/// lost connection makes the engine [down](EngineHealth::Down): local delivery goes on, a
/// publish reports [`BackplaneError::Down`] (counted in
/// [`backplane_refused`](crate::MetricsSnapshot::backplane_refused)), messages taken but not
/// yet written are counted as [lost](crate::MetricsSnapshot::backplane_lost), a `warn` line is
/// logged; the engine reconnects with backoff and jitter, subscribes again to every topic this
/// node needs, rewrites its member counts, and counts the
/// [reconnect](crate::MetricsSnapshot::backplane_reconnects) and the
/// [outage](crate::MetricsSnapshot::backplane_outage_ms). Messages published while it was down
/// are not replayed: pub/sub has no history. A node counts what it could not send; what other
/// nodes published to it while its subscriber was away is lost without a count here (those
/// nodes published successfully): the outage time is the measure of that gap.
///
/// ```no_run
/// use ws_channels::{Channel, RedisBackplane, RedisConfig, Server};
/// # #[ws_channels::channel("chat/<room>")]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Chat;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Chat::register(Server::new(), |h| h);
/// let hub = server.hub();
/// RedisBackplane::connect(&hub, RedisConfig::new("redis://127.0.0.1:6379").prefix("chat")).await?;
/// // Every node running this shares rooms, connection ids and member counts.
/// server.listen("0.0.0.0:8080").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBackplane {
    shared: Arc<Shared>,
}

struct Shared {
    config: Arc<RedisConfig>,
    outgoing: mpsc::Sender<Outgoing>,
    /// What the subscriber task carries out; shared with it.
    subscriptions: Arc<Mutex<Subscriptions>>,
    /// Wakes the subscriber task when `subscriptions` has work. One pending wake is enough
    /// (capacity 1); the channel closing (this engine dropped with its hub) stops the task.
    poke: mpsc::Sender<()>,
    /// Asks the publisher, which writes this node's member counts, to remove them for good;
    /// it answers once they are gone.
    leave: mpsc::Sender<oneshot::Sender<()>>,
    link: Arc<Link>,
    /// The publisher's connection, for member count queries; `None` while down.
    queries: Arc<Mutex<Option<MultiplexedConnection>>>,
    node: u64,
}

/// One message to PUBLISH.
struct Outgoing {
    channel: String,
    wire: Bytes,
}

impl RedisBackplane {
    /// Connects to Redis and attaches the engine to `hub`, subscribing to the topics it
    /// already has. Fails if Redis cannot be reached (within the
    /// [connect timeout](RedisConfig::connect_timeout)) or the hub already has an engine.
    pub async fn connect(hub: &Hub, config: RedisConfig) -> Result<Self, BackplaneError> {
        let config = Arc::new(config);
        let client = redis::Client::open(config.url.as_str()).map_err(engine_error)?;
        let inbound = hub.inbound();
        let node = inbound.node_id();
        let publisher = connect_publisher(&client, &config).await?;
        // Its own channel first, for direct sends; the hub's topics once attached.
        let mut wanted = Subscriptions::default();
        wanted.want(config.node_channel(node));
        let subscriptions = Arc::new(Mutex::new(wanted));
        let subscriber = connect_subscriber(&client, &config, &subscriptions).await?;
        let (outgoing, outgoing_rx) = mpsc::channel(config.queue);
        let (poke, pokes) = mpsc::channel(1);
        let (leave, leaving) = mpsc::channel(1);
        let link = Arc::new(Link::default());
        let queries = Arc::new(Mutex::new(Some(publisher.clone())));
        // Before the subscriber runs: the publisher sees every loss of its connection.
        let subscriber_losses = link.subscriber_losses.subscribe();
        let engine = Self {
            shared: Arc::new(Shared {
                config: config.clone(),
                outgoing,
                subscriptions: subscriptions.clone(),
                poke,
                leave,
                link: link.clone(),
                queries: queries.clone(),
                node,
            }),
        };
        hub.attach_backplane(Arc::new(engine.clone()))?;
        tokio::spawn(
            Publisher {
                client: client.clone(),
                config: config.clone(),
                inbound: inbound.clone(),
                link: link.clone(),
                queries,
                written: HashMap::new(),
                left: false,
            }
            .run(publisher, outgoing_rx, subscriber_losses, leaving),
        );
        tokio::spawn(
            Subscriber {
                client,
                config: config.clone(),
                inbound,
                link,
                subscriptions,
            }
            .run(subscriber, pokes),
        );
        tracing::info!(node = %format_args!("{node:016x}"), prefix = %config.prefix, "redis backplane connected");
        Ok(engine)
    }

    /// Applies a change of the channels this node wants, and wakes the subscriber task if it
    /// left work for it.
    fn change(&self, change: impl FnOnce(&mut Subscriptions) -> bool) {
        if change(&mut lock(&self.shared.subscriptions)) {
            // Full: a wake is already pending, and one is enough. Closed: the subscriber task
            // has stopped, once nothing needs topics anymore.
            let _ = self.shared.poke.try_send(());
        }
    }
}

impl Backplane for RedisBackplane {
    fn forward(&self, envelope: Envelope) -> Result<(), BackplaneError> {
        if !self.shared.link.is_up() {
            return Err(BackplaneError::Down);
        }
        let config = &self.shared.config;
        let channel = match envelope.destination() {
            Destination::Topic { channel, topic } => config.topic_channel(channel, topic),
            Destination::Connection(target) => config.node_channel(target.node()),
        };
        let outgoing = Outgoing {
            channel,
            wire: envelope.wire().clone(),
        };
        self.shared.outgoing.try_send(outgoing).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => BackplaneError::Full,
            mpsc::error::TrySendError::Closed(_) => BackplaneError::Down,
        })
    }

    fn subscribe(&self, channel: &'static str, topic: &str) {
        self.change(|wanted| wanted.want(self.shared.config.topic_channel(channel, topic)));
    }

    fn unsubscribe(&self, channel: &'static str, topic: &str) {
        self.change(|wanted| wanted.unwant(&self.shared.config.topic_channel(channel, topic)));
    }

    fn remote_subscribers<'a>(
        &'a self,
        channel: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<usize, BackplaneError>> {
        Box::pin(async move {
            let connection = self
                .shared
                .queries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let mut connection = connection.ok_or(BackplaneError::Down)?;
            let config = &self.shared.config;
            let nodes: Vec<String> = redis::cmd("SMEMBERS")
                .arg(config.nodes_key())
                .query_async(&mut connection)
                .await
                .map_err(engine_error)?;
            let own = format!("{:016x}", self.shared.node);
            let others: Vec<&String> = nodes.iter().filter(|node| **node != own).collect();
            let field = count_field(channel, topic);
            let mut pipe = redis::pipe();
            for node in &others {
                let key = format!("{}:members:{node}", config.prefix);
                pipe.cmd("HGET").arg(&key).arg(&field).cmd("EXISTS").arg(&key);
            }
            let answers: Vec<(Option<usize>, bool)> = match others.is_empty() {
                true => Vec::new(),
                false => pipe.query_async(&mut connection).await.map_err(engine_error)?,
            };
            // A node whose hash expired is gone: forget it.
            let gone: Vec<&&String> = others
                .iter()
                .zip(&answers)
                .filter(|(_, (_, exists))| !exists)
                .map(|(node, _)| node)
                .collect();
            if !gone.is_empty() {
                let _: Result<(), _> = redis::cmd("SREM")
                    .arg(config.nodes_key())
                    .arg(gone)
                    .query_async(&mut connection)
                    .await;
            }
            Ok(answers.iter().filter_map(|(count, _)| *count).sum())
        })
    }

    fn health(&self) -> EngineHealth {
        self.shared.link.health()
    }

    /// Deletes this node's member counts and takes it out of the node set, through the
    /// publisher (the one writer of both, so no count write can land after the deletion), and
    /// stops writing them. Messages are still carried.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, removed) = oneshot::channel();
            // Fails only once the publisher has stopped, its hub gone.
            if self.shared.leave.send(done).await.is_ok() {
                let _ = removed.await;
            }
        })
    }
}

impl fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("prefix", &self.shared.config.prefix)
            .field("node", &format_args!("{:016x}", self.shared.node))
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

fn engine_error(error: impl Into<crate::error::BoxError>) -> BackplaneError {
    BackplaneError::Engine(error.into())
}

async fn connect_publisher(
    client: &redis::Client,
    config: &RedisConfig,
) -> Result<MultiplexedConnection, BackplaneError> {
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.connect_timeout));
    client
        .get_multiplexed_async_connection_with_config(&settings)
        .await
        .map_err(engine_error)
}

/// A pub/sub connection, subscribed to every channel this node wanted when it was made (what
/// changed meanwhile is the subscriber task's next rounds).
async fn connect_subscriber(
    client: &redis::Client,
    config: &RedisConfig,
    subscriptions: &Mutex<Subscriptions>,
) -> Result<(PubSubSink, PubSubStream), BackplaneError> {
    let connecting = async {
        let (mut sink, stream) = client.get_async_pubsub().await.map_err(engine_error)?.split();
        // A new connection has no subscriptions: the same rounds as in steady state send them
        // all. As many rounds as that takes, not until nothing is pending, so that churn
        // meanwhile cannot keep the node down.
        let rounds = {
            let mut subscriptions = lock(subscriptions);
            subscriptions.reset();
            subscriptions.pending.len().div_ceil(BATCH)
        };
        for _ in 0..rounds {
            reconcile(&mut sink, subscriptions, config.connect_timeout).await?;
        }
        Ok((sink, stream))
    };
    match tokio::time::timeout(config.connect_timeout, connecting).await {
        Ok(connected) => connected,
        Err(_) => Err(engine_error("timed out connecting to redis")),
    }
}

/// How many channels one SUBSCRIBE or UNSUBSCRIBE names at most. One command per channel (a
/// round trip each) would keep the subscriber from its messages while topics churn; one per
/// batch is a round trip per few hundred changes, and small enough not to hold messages back.
const BATCH: usize = 512;

/// How many messages the subscriber delivers between two rounds of (un)subscriptions when both
/// are waiting: neither holds the other back for long.
const BURST: usize = 256;

fn lock(subscriptions: &Mutex<Subscriptions>) -> MutexGuard<'_, Subscriptions> {
    subscriptions.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The Redis channels this node wants, those its subscriber connection is subscribed to (as
/// far as the commands sent on it go), and the difference, what is left to do: kept up to date
/// by every change, so that a round finds its channels without comparing the two sets.
///
/// The hub's changes only touch this (a few hash operations, under the registry's lock); the
/// subscriber task carries out the difference in rounds of at most [`BATCH`] channels, and a
/// new connection starts from nothing subscribed ([`reset`](Self::reset)). Memory follows the
/// topics, not the changes: a topic subscribed and unsubscribed any number of times before
/// the task gets to it leaves nothing behind, and each set holds at most the channels this node
/// wants plus those still to unsubscribe.
#[derive(Debug, Default)]
struct Subscriptions {
    wanted: HashSet<Arc<str>>,
    subscribed: HashSet<Arc<str>>,
    /// `wanted` Δ `subscribed`: to subscribe if wanted, else to unsubscribe.
    pending: HashSet<Arc<str>>,
}

/// One round: the channels to SUBSCRIBE, and those to UNSUBSCRIBE.
#[derive(Debug, Default, PartialEq, Eq)]
struct Round {
    subscribe: Vec<Arc<str>>,
    unsubscribe: Vec<Arc<str>>,
}

impl Subscriptions {
    /// This node needs `channel`; `true` if that left work for the subscriber task.
    fn want(&mut self, channel: String) -> bool {
        if self.wanted.contains(channel.as_str()) {
            return false;
        }
        let channel: Arc<str> = channel.into();
        self.wanted.insert(channel.clone());
        self.flip(channel)
    }

    /// This node no longer needs `channel`; `true` if that left work for the subscriber task.
    fn unwant(&mut self, channel: &str) -> bool {
        match self.wanted.take(channel) {
            Some(channel) => self.flip(channel),
            None => false,
        }
    }

    /// `channel` entered or left `wanted`, so it entered or left the difference; `true` if it
    /// is pending now.
    fn flip(&mut self, channel: Arc<str>) -> bool {
        if self.pending.remove(&channel) {
            return false;
        }
        self.pending.insert(channel);
        true
    }

    /// Takes up to `max` pending channels as one round, and counts them as done: the caller
    /// sends the round, or gives its connection up (and the next one starts with `reset`).
    fn next_round(&mut self, max: usize) -> Round {
        let taken: Vec<Arc<str>> = self.pending.iter().take(max).cloned().collect();
        let mut round = Round::default();
        for channel in taken {
            self.pending.remove(&channel);
            if self.wanted.contains(&channel) {
                self.subscribed.insert(channel.clone());
                round.subscribe.push(channel);
            } else {
                self.subscribed.remove(&channel);
                round.unsubscribe.push(channel);
            }
        }
        // A burst of churn may have grown the sets far beyond what they hold now.
        for set in [&mut self.wanted, &mut self.subscribed, &mut self.pending] {
            if set.capacity() > 64 && set.len() < set.capacity() / 4 {
                set.shrink_to(set.len() * 2);
            }
        }
        round
    }

    /// A new connection, subscribed to nothing: everything wanted is pending.
    fn reset(&mut self) {
        self.subscribed.clear();
        self.pending.clone_from(&self.wanted);
    }
}

/// Sends one round of pending (un)subscriptions; `Ok(true)` if more are pending. Each command
/// is bounded like the ping: a Redis that stopped answering (a partition) must not stall the
/// subscriber while the engine is still reported up.
async fn reconcile(
    sink: &mut PubSubSink,
    subscriptions: &Mutex<Subscriptions>,
    limit: Duration,
) -> Result<bool, BackplaneError> {
    let (round, more) = {
        let mut subscriptions = lock(subscriptions);
        let round = subscriptions.next_round(BATCH);
        (round, !subscriptions.pending.is_empty())
    };
    // Never with an empty list: a bare UNSUBSCRIBE would leave every channel.
    if !round.subscribe.is_empty() {
        let channels: Vec<&str> = round.subscribe.iter().map(|channel| &**channel).collect();
        answered(limit, sink.subscribe(channels), "a subscribe").await?;
    }
    if !round.unsubscribe.is_empty() {
        let channels: Vec<&str> = round.unsubscribe.iter().map(|channel| &**channel).collect();
        answered(limit, sink.unsubscribe(channels), "an unsubscribe").await?;
    }
    Ok(more)
}

/// Awaits a command's answer for at most `limit`.
async fn answered<T>(
    limit: Duration,
    command: impl Future<Output = redis::RedisResult<T>>,
    what: &str,
) -> Result<T, BackplaneError> {
    match tokio::time::timeout(limit, command).await {
        Ok(answer) => answer.map_err(engine_error),
        Err(_) => Err(engine_error(format!("redis did not answer {what}"))),
    }
}

/// Whether each of the engine's two connections is up: the one owner of the engine's health.
/// Publishes read it on every call (one atomic load); changes are rare, and the one that takes
/// the engine down or brings it back up is logged and counted.
#[derive(Default)]
struct Link {
    /// Bits of the connections that are down (`PUBLISHER`, `SUBSCRIBER`).
    down: AtomicU8,
    /// Since when the engine is down.
    outage: Mutex<Option<Instant>>,
    /// How many times the subscriber's connection was lost. The subscriber, always reading,
    /// sees Redis go away at once; a request on the publisher's connection to the same server
    /// may instead wait for its response timeout, and the engine would look up again (the
    /// subscriber back) while the publisher still holds the dead connection and the messages
    /// queued behind it. So the publisher watches this and reconnects too.
    subscriber_losses: watch::Sender<u64>,
}

const PUBLISHER: u8 = 1;
const SUBSCRIBER: u8 = 2;

impl Link {
    fn is_up(&self) -> bool {
        self.down.load(Ordering::Acquire) == 0
    }

    fn health(&self) -> EngineHealth {
        match *self.outage.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(since) if !self.is_up() => EngineHealth::Down {
                since: since.into_std(),
            },
            _ => EngineHealth::Up,
        }
    }

    fn went_down(&self, side: u8, error: &dyn fmt::Display) {
        // The subscriber's loss takes the publisher down with it (it gives its connection up
        // too, see `subscriber_losses`): the engine is up again only once both reconnected,
        // whichever of their tasks runs first.
        let sides = match side {
            SUBSCRIBER => {
                self.subscriber_losses.send_modify(|losses| *losses += 1);
                SUBSCRIBER | PUBLISHER
            }
            side => side,
        };
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self.down.fetch_or(sides, Ordering::AcqRel);
        if before == 0 {
            *outage = Some(Instant::now());
            tracing::warn!(%error, "redis backplane down: delivering on this node only, reconnecting");
        }
    }

    fn came_up(&self, side: u8, inbound: &Inbound) {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self.down.fetch_and(!side, Ordering::AcqRel);
        if before == side {
            let lasted = outage.take().map(|since| since.elapsed()).unwrap_or_default();
            inbound.reconnected(lasted);
            tracing::warn!(outage_ms = lasted.as_millis(), "redis backplane reconnected");
        }
    }
}

/// Waits before reconnection attempt `attempt` (0 for the first): full jitter below an
/// exponentially growing bound.
async fn backoff(config: &RedisConfig, attempt: u32) {
    let bound = config
        .reconnect_min
        .saturating_mul(1 << attempt.min(16))
        .min(config.reconnect_max);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let fraction = (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64;
    tokio::time::sleep(bound.mul_f64(fraction)).await;
}

/// Publishes the outgoing queue, in order, and writes this node's member counts.
struct Publisher {
    client: redis::Client,
    config: Arc<RedisConfig>,
    inbound: Inbound,
    link: Arc<Link>,
    queries: Arc<Mutex<Option<MultiplexedConnection>>>,
    /// The counts as last written to Redis: only changes are written.
    written: HashMap<String, usize>,
    /// Set when the node left the cluster (its server shut down): its counts are removed, and
    /// no longer written.
    left: bool,
}

impl Publisher {
    /// `subscriber_losses`: the losses of the subscriber's connection since `connection` was
    /// made (see `Link::subscriber_losses`). `leaving`: requests to remove this node's counts
    /// (see `Shared::leave`).
    async fn run(
        mut self,
        mut connection: MultiplexedConnection,
        mut queue: mpsc::Receiver<Outgoing>,
        mut subscriber_losses: watch::Receiver<u64>,
        mut leaving: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut batch = Vec::with_capacity(256);
        loop {
            let served = tokio::select! {
                served = self.serve(&mut connection, &mut queue, &mut batch, &mut leaving) => served.map_err(|error| error.to_string()),
                Ok(()) = subscriber_losses.changed() => Err("the subscriber lost its connection to redis".to_owned()),
            };
            if let Err(error) = served {
                *self.queries.lock().unwrap_or_else(PoisonError::into_inner) = None;
                self.link.went_down(PUBLISHER, &error);
                // What was taken and not confirmed, and what queued before the link was seen
                // down, is lost: pub/sub has no history to replay it from.
                let mut lost = batch.len() as u64;
                batch.clear();
                while queue.try_recv().is_ok() {
                    lost += 1;
                }
                self.inbound.disconnected(lost);
                let Some(reconnected) = self.reconnect().await else {
                    return;
                };
                connection = reconnected;
                // A loss of the subscriber's during this outage is not one of this connection's.
                subscriber_losses.borrow_and_update();
                // The hash may have expired while down: write it all again.
                self.written.clear();
                *self.queries.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
                self.link.came_up(PUBLISHER, &self.inbound);
            } else {
                return;
            }
        }
    }

    /// Publishes until the connection fails (`Err`) or the engine is dropped (`Ok`).
    async fn serve(
        &mut self,
        connection: &mut MultiplexedConnection,
        queue: &mut mpsc::Receiver<Outgoing>,
        batch: &mut Vec<Outgoing>,
        leaving: &mut mpsc::Receiver<oneshot::Sender<()>>,
    ) -> Result<(), redis::RedisError> {
        // A removal the last connection failed to make (this one is new).
        if self.left {
            self.remove_counts(connection).await?;
        }
        let mut counts = tokio::time::interval(self.config.count_interval);
        counts.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(done) = leaving.recv() => {
                    self.left = true;
                    self.remove_counts(connection).await?;
                    let _ = done.send(());
                }
                taken = queue.recv_many(batch, 1024) => {
                    if taken == 0 {
                        return Ok(());
                    }
                    let mut pipe = redis::pipe();
                    for message in batch.iter() {
                        pipe.cmd("PUBLISH").arg(&message.channel).arg(&message.wire[..]).ignore();
                    }
                    pipe.query_async::<()>(connection).await?;
                    batch.clear();
                }
                _ = counts.tick(), if !self.left => {
                    if !self.inbound.is_open() {
                        return Ok(());
                    }
                    self.write_counts(connection).await?;
                }
            }
        }
    }

    /// Writes the counts that changed since the last write, and refreshes the hash's expiry
    /// and this node's entry in the node set.
    async fn write_counts(&mut self, connection: &mut MultiplexedConnection) -> Result<(), redis::RedisError> {
        let now: HashMap<String, usize> = self
            .inbound
            .subscriber_counts()
            .into_iter()
            .map(|(channel, topic, count)| (count_field(channel, &topic), count))
            .collect();
        let node = self.inbound.node_id();
        let key = self.config.members_key(node);
        let mut pipe = redis::pipe();
        pipe.atomic();
        let changed: Vec<(&String, &usize)> = now
            .iter()
            .filter(|(field, count)| self.written.get(*field) != Some(count))
            .collect();
        if !changed.is_empty() {
            pipe.cmd("HSET").arg(&key).arg(changed).ignore();
        }
        let gone: Vec<&String> = self.written.keys().filter(|field| !now.contains_key(*field)).collect();
        if !gone.is_empty() {
            pipe.cmd("HDEL").arg(&key).arg(gone).ignore();
        }
        // A hash with no topics does not exist in Redis; this field keeps the node's key alive
        // so others can tell a quiet node from a dead one.
        pipe.cmd("HSET").arg(&key).arg("alive").arg(1).ignore();
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(u64::try_from(self.config.node_ttl.as_millis()).unwrap_or(u64::MAX))
            .ignore();
        pipe.cmd("SADD")
            .arg(self.config.nodes_key())
            .arg(format!("{node:016x}"))
            .ignore();
        pipe.query_async::<()>(connection).await?;
        self.written = now;
        Ok(())
    }

    /// Deletes this node's counts and takes it out of the node set: the other nodes stop
    /// counting its members at once instead of when the hash expires.
    async fn remove_counts(&mut self, connection: &mut MultiplexedConnection) -> Result<(), redis::RedisError> {
        let node = self.inbound.node_id();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(self.config.members_key(node))
            .ignore()
            .cmd("SREM")
            .arg(self.config.nodes_key())
            .arg(format!("{node:016x}"))
            .ignore();
        pipe.query_async::<()>(connection).await?;
        self.written.clear();
        Ok(())
    }

    /// Reconnects with backoff; `None` once the hub is gone.
    async fn reconnect(&self) -> Option<MultiplexedConnection> {
        for attempt in 0.. {
            backoff(&self.config, attempt).await;
            if !self.inbound.is_open() {
                return None;
            }
            match connect_publisher(&self.client, &self.config).await {
                Ok(connection) => return Some(connection),
                Err(error) => tracing::debug!(%error, attempt, "redis backplane: publisher reconnect failed"),
            }
        }
        None
    }
}

/// How often the subscriber pings Redis.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Keeps the subscriptions this node needs, and delivers what arrives on them.
struct Subscriber {
    client: redis::Client,
    config: Arc<RedisConfig>,
    inbound: Inbound,
    link: Arc<Link>,
    /// The channels this node wants, and where this task's connection stands.
    subscriptions: Arc<Mutex<Subscriptions>>,
}

impl Subscriber {
    async fn run(self, connected: (PubSubSink, PubSubStream), mut pokes: mpsc::Receiver<()>) {
        let (mut sink, mut stream) = connected;
        loop {
            match self.serve(&mut sink, &mut stream, &mut pokes).await {
                Ok(()) => return,
                Err(error) => self.link.went_down(SUBSCRIBER, &error),
            }
            let mut attempt = 0;
            (sink, stream) = loop {
                backoff(&self.config, attempt).await;
                attempt += 1;
                if !self.inbound.is_open() {
                    return;
                }
                // Changes made while down are in `subscriptions` already.
                match connect_subscriber(&self.client, &self.config, &self.subscriptions).await {
                    Ok(connected) => break connected,
                    Err(error) => tracing::debug!(%error, attempt, "redis backplane: subscriber reconnect failed"),
                }
            };
            self.link.came_up(SUBSCRIBER, &self.inbound);
        }
    }

    /// Delivers and (un)subscribes until the connection fails (`Err`) or the engine is
    /// dropped (`Ok`).
    async fn serve(
        &self,
        sink: &mut PubSubSink,
        stream: &mut PubSubStream,
        pokes: &mut mpsc::Receiver<()>,
    ) -> Result<(), BackplaneError> {
        // A pub/sub connection only reads: without a ping now and then, a Redis that vanished
        // without closing the socket (a network partition) would never be noticed.
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A round of (un)subscriptions, if any is pending, after each burst of messages:
            // under churn messages are still read between rounds, and under a flood of
            // messages a new topic's SUBSCRIBE still goes out after at most a burst. Messages
            // still in flight for a topic just unsubscribed find no local subscriber, which is
            // harmless.
            let more = reconcile(sink, &self.subscriptions, self.config.connect_timeout).await?;
            tokio::select! {
                // Biased, the keepalive first: a steady flood of messages must not hold back
                // the ping that notices a dead Redis.
                biased;
                _ = keepalive.tick() => {
                    answered(self.config.connect_timeout, sink.ping::<redis::Value>(), "a ping").await?;
                }
                message = stream.next() => {
                    self.deliver(message)?;
                    for _ in 1..BURST {
                        match stream.next().now_or_never() {
                            Some(message) => self.deliver(message)?,
                            None => break,
                        }
                    }
                }
                poked = pokes.recv(), if !more => {
                    if poked.is_none() {
                        return Ok(());
                    }
                }
                () = std::future::ready(()), if more => {}
            }
        }
    }

    /// Delivers a message from the stream; `Err` if the stream ended (the connection closed).
    fn deliver(&self, message: Option<redis::Msg>) -> Result<(), BackplaneError> {
        let Some(message) = message else {
            return Err(engine_error("redis closed the pub/sub connection"));
        };
        self.inbound
            .deliver(&Bytes::copy_from_slice(message.get_payload_bytes()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Server;

    fn names(channels: &[Arc<str>]) -> Vec<&str> {
        let mut names: Vec<&str> = channels.iter().map(|channel| &**channel).collect();
        names.sort_unstable();
        names
    }

    /// Takes rounds until nothing is pending: (subscribed, unsubscribed), sorted.
    fn settle(subscriptions: &mut Subscriptions, max: usize) -> (Vec<String>, Vec<String>) {
        let (mut subscribed, mut unsubscribed) = (Vec::new(), Vec::new());
        while !subscriptions.pending.is_empty() {
            let round = subscriptions.next_round(max);
            assert!(round.subscribe.len() + round.unsubscribe.len() <= max, "{round:?}");
            subscribed.extend(round.subscribe.iter().map(|channel| channel.to_string()));
            unsubscribed.extend(round.unsubscribe.iter().map(|channel| channel.to_string()));
        }
        subscribed.sort_unstable();
        unsubscribed.sort_unstable();
        (subscribed, unsubscribed)
    }

    #[test]
    fn a_round_subscribes_what_is_wanted_and_unsubscribes_what_no_longer_is() {
        let mut subscriptions = Subscriptions::default();
        assert!(subscriptions.want("a".into()), "work for the task");
        assert!(subscriptions.want("b".into()));
        assert!(!subscriptions.want("a".into()), "already wanted: nothing to do");
        let round = subscriptions.next_round(BATCH);
        assert_eq!(
            (names(&round.subscribe), names(&round.unsubscribe)),
            (vec!["a", "b"], vec![])
        );
        assert_eq!(subscriptions.next_round(BATCH), Round::default(), "nothing pending");

        assert!(subscriptions.unwant("a"));
        assert!(!subscriptions.unwant("never"), "not wanted: nothing to do");
        assert!(subscriptions.want("c".into()));
        let round = subscriptions.next_round(BATCH);
        assert_eq!(
            (names(&round.subscribe), names(&round.unsubscribe)),
            (vec!["c"], vec!["a"])
        );
        let subscribed: HashSet<&str> = subscriptions.subscribed.iter().map(|channel| &**channel).collect();
        assert_eq!(subscribed, HashSet::from(["b", "c"]));
    }

    #[test]
    fn churn_before_a_round_costs_nothing_and_leaves_nothing_behind() {
        let mut subscriptions = Subscriptions::default();
        subscriptions.want("kept".into());
        subscriptions.next_round(BATCH);
        for _ in 0..1000 {
            for n in 0..100 {
                subscriptions.want(format!("churn/{n}"));
            }
            for n in 0..100 {
                subscriptions.unwant(&format!("churn/{n}"));
            }
            // The one subscribed channel leaving and coming back is no change either.
            subscriptions.unwant("kept");
            subscriptions.want("kept".into());
        }
        assert!(subscriptions.pending.is_empty(), "{subscriptions:?}");
        assert_eq!(subscriptions.next_round(BATCH), Round::default());
        assert_eq!((subscriptions.wanted.len(), subscriptions.subscribed.len()), (1, 1));
        assert!(
            subscriptions.pending.capacity() <= 2 * 64,
            "the churn's memory is given back: {}",
            subscriptions.pending.capacity()
        );
    }

    #[test]
    fn a_change_after_its_channel_was_sent_is_sent_in_the_next_round() {
        let mut subscriptions = Subscriptions::default();
        subscriptions.want("a".into());
        assert_eq!(names(&subscriptions.next_round(BATCH).subscribe), ["a"]);
        // Unwanted while its SUBSCRIBE was in flight, then wanted again while the UNSUBSCRIBE was.
        assert!(subscriptions.unwant("a"));
        assert_eq!(names(&subscriptions.next_round(BATCH).unsubscribe), ["a"]);
        assert!(subscriptions.want("a".into()));
        assert_eq!(names(&subscriptions.next_round(BATCH).subscribe), ["a"]);
    }

    #[test]
    fn rounds_are_bounded_and_a_new_connection_gets_everything_wanted_in_the_same_rounds() {
        let mut subscriptions = Subscriptions::default();
        let wanted: Vec<String> = (0..1300).map(|n| format!("t/{n:04}")).collect();
        for channel in &wanted {
            subscriptions.want(channel.clone());
        }
        let (subscribed, unsubscribed) = settle(&mut subscriptions, 512);
        assert_eq!((subscribed.len(), unsubscribed.len()), (1300, 0));
        assert_eq!(subscribed, wanted);
        // Half leave while the connection is down; the new connection has nothing.
        for channel in wanted.iter().step_by(2) {
            subscriptions.unwant(channel);
        }
        subscriptions.reset();
        let (subscribed, unsubscribed) = settle(&mut subscriptions, 512);
        let left: Vec<String> = wanted.iter().skip(1).step_by(2).cloned().collect();
        assert_eq!((subscribed, unsubscribed), (left, vec![]));
    }

    #[test]
    fn the_engine_is_up_again_only_once_both_connections_reconnected_after_the_subscriber_lost_its() {
        let hub = Server::new().hub();
        let inbound = hub.inbound();
        let link = Link::default();
        let losses = link.subscriber_losses.subscribe();
        link.went_down(SUBSCRIBER, &"reset");
        assert!(losses.has_changed().unwrap_or(false), "the publisher is told");
        // The subscriber reconnects before the publisher's task has even run.
        link.came_up(SUBSCRIBER, &inbound);
        assert!(!link.is_up(), "the publisher still holds its old connection");
        link.went_down(PUBLISHER, &"the subscriber lost its connection");
        link.came_up(PUBLISHER, &inbound);
        assert!(link.is_up());
        assert_eq!(
            hub.metrics().snapshot().backplane_reconnects,
            1,
            "one outage, one reconnection"
        );
    }
}
