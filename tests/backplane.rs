//! The Redis backplane: several nodes (servers with their own listeners and hubs) in this one
//! process, sharing a `redis-server` each test starts for itself on a free loopback port.
//! Needs `redis-server` on `PATH` (skipped with a notice otherwise, failed under CI).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use ws_channels::tungstenite::Message;
use ws_channels::{
    BackplaneError, Channel, ConnId, EngineHealth, Event, Events, Hub, RedisBackplane, RedisConfig, Sent, Server,
    Sessions, Topic, channel,
};
use ws_channels_tests::{Component, FaultyProxy, RedisServer, Served, next_text, raw_connect, require, within};

/// What a client says in a room.
#[channel("room/<name>", server = RoomEvent)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RoomCommand {
    Say {
        text: String,
    },
    SayOthers {
        text: String,
    },
    Whisper {
        to: ConnId,
        text: String,
    },
    /// Joins `topics` topics (`churn/<round>/<n>`) and leaves them again, for each of
    /// `rounds` rounds; the last round leaves only the odd ones. Answered with `Churned`.
    Churn {
        rounds: u32,
        topics: u32,
    },
}

/// What the room tells its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RoomEvent {
    Welcome {
        id: ConnId,
    },
    Said {
        from: ConnId,
        text: String,
    },
    Seq {
        node: usize,
        seq: u64,
    },
    /// Sent at `micros` (see `micros`), to measure how long it took to arrive.
    Stamped {
        seq: u64,
        micros: u64,
    },
    Churned,
}

/// Microseconds since the test process first asked: a clock every node of a test shares.
fn micros() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_micros()).expect("in range")
}

/// The rooms, for direct connections and for sessions (at `/connection/websocket`).
fn rooms() -> Server {
    let server = RoomCommand::register(Server::new(), |h| {
        h.on_open(|conn| async move {
            conn.send(&RoomEvent::Welcome { id: conn.id() }).await?;
            Ok(())
        })
        .on_message(|conn, command| async move {
            let from = conn.id();
            match command {
                RoomCommand::Say { text } => {
                    let published = conn.broadcast(&RoomEvent::Said { from, text }).await?;
                    published.engine?;
                }
                RoomCommand::SayOthers { text } => {
                    conn.broadcast_others(&RoomEvent::Said { from, text }).await?.engine?;
                }
                RoomCommand::Whisper { to, text } => {
                    match conn
                        .hub()
                        .send::<RoomCommand>(to, &RoomEvent::Said { from, text })
                        .await?
                    {
                        Sent::Delivered | Sent::Forwarded => {}
                        other => return Err(format!("whisper to {to}: {other:?}").into()),
                    }
                }
                RoomCommand::Churn { rounds, topics } => {
                    for round in 0..rounds {
                        let topic = |n: u32| Topic::<RoomCommand>::named(format!("churn/{round}/{n}"));
                        for n in 0..topics {
                            conn.join(topic(n));
                            // As a busy server would run its other connections meanwhile.
                            if n % 100 == 0 {
                                tokio::task::yield_now().await;
                            }
                        }
                        for n in (0..topics).filter(|n| round + 1 < rounds || n % 2 == 1) {
                            conn.leave(topic(n));
                            if n % 100 == 0 {
                                tokio::task::yield_now().await;
                            }
                        }
                    }
                    conn.send(&RoomEvent::Churned).await?;
                }
            }
            Ok(())
        })
    });
    server.sessions(Sessions::new())
}

/// The suite's backplane settings: quick counts and reconnections.
fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig::new(url)
        .prefix(prefix)
        .count_interval(Duration::from_millis(50))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// One node: a server on its own loopback port, its hub attached to Redis.
struct Node {
    hub: Hub,
    served: Served,
}

impl Node {
    async fn start(redis: &RedisServer, prefix: &str) -> Self {
        Self::attached(config(&redis.url(), prefix)).await
    }

    async fn attached(config: RedisConfig) -> Self {
        let server = rooms();
        let hub = server.hub();
        within("attach the backplane", RedisBackplane::connect(&hub, config))
            .await
            .expect("redis reachable");
        let served = Served::start(server).await;
        Self { hub, served }
    }

    async fn join(&self, room: &str) -> Client {
        let (tx, mut rx) = within(
            "connect",
            ws_channels::connect(&self.served.base(), &RoomCommandParams::new(room)),
        )
        .await
        .expect("connect");
        let id = match within("the welcome", rx.next()).await {
            Some(Ok(Event::Message(RoomEvent::Welcome { id }))) => id,
            other => panic!("expected a welcome, got {other:?}"),
        };
        Client { id, tx, rx }
    }
}

struct Client {
    id: ConnId,
    tx: ws_channels::Client<RoomCommand>,
    rx: Events<RoomCommand>,
}

impl Client {
    async fn next(&mut self) -> RoomEvent {
        match within("a message", self.rx.next()).await {
            Some(Ok(Event::Message(event))) => event,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    async fn say(&mut self, command: RoomCommand) {
        within("send", self.tx.send(&command)).await.expect("send");
    }
}

fn said(from: ConnId, text: &str) -> RoomEvent {
    RoomEvent::Said {
        from,
        text: text.into(),
    }
}

async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).expect("url");
    within("connect to redis", client.get_multiplexed_async_connection())
        .await
        .expect("redis")
}

/// How many subscribers Redis counts for a pub/sub channel.
async fn numsub(redis: &mut redis::aio::MultiplexedConnection, channel: &str) -> usize {
    let answer: Vec<(String, usize)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(redis)
        .await
        .expect("PUBSUB NUMSUB");
    answer.first().map_or(0, |(_, count)| *count)
}

/// Polls `check` until it holds, failing the test after the step bound.
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Waits until `nodes` nodes subscribed to a room's topic.
async fn settled(redis: &mut redis::aio::MultiplexedConnection, prefix: &str, room: &str, nodes: usize) {
    let channel = format!("{prefix}:topic:RoomCommand:room/{room}");
    eventually(&format!("{nodes} nodes subscribed to {channel}"), async || {
        numsub(redis, &channel).await == nodes
    })
    .await;
}

macro_rules! needs_redis {
    () => {
        if !require(&[Component::Redis]) {
            return;
        }
    };
}

#[tokio::test]
async fn three_nodes_deliver_every_broadcast_exactly_once_in_order() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let mut admin = redis_connection(&redis).await;
    let nodes = [
        Node::start(&redis, "t1").await,
        Node::start(&redis, "t1").await,
        Node::start(&redis, "t1").await,
    ];
    let mut clients = Vec::new();
    for node in &nodes {
        clients.push(node.join("lobby").await);
        clients.push(node.join("lobby").await);
    }
    settled(&mut admin, "t1", "lobby", 3).await;

    // Each node publishes its own sequence, the three interleaved.
    const MESSAGES: u64 = 100;
    let lobby = RoomCommandParams::new("lobby");
    for seq in 0..=MESSAGES {
        for (node, at) in nodes.iter().enumerate() {
            let published = at.hub.publish(&lobby, &RoomEvent::Seq { node, seq }).await.unwrap();
            assert_eq!(published.local, 2, "its own two subscribers first");
            published.engine.expect("the engine took it");
        }
    }
    // Every client gets every node's sequence once, in order: seq MESSAGES ends each.
    for client in &mut clients {
        let mut next: BTreeMap<usize, u64> = BTreeMap::new();
        while next.len() < 3 || next.values().any(|seq| *seq <= MESSAGES) {
            match client.next().await {
                RoomEvent::Seq { node, seq } => {
                    let expected = next.entry(node).or_insert(0);
                    assert_eq!(seq, *expected, "from node {node}: out of order, lost or twice");
                    *expected += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // And nothing more: a marker from each node is the next thing every client reads.
    for (node, at) in nodes.iter().enumerate() {
        at.hub
            .publish(&lobby, &RoomEvent::Seq { node, seq: u64::MAX })
            .await
            .unwrap()
            .engine
            .unwrap();
    }
    for client in &mut clients {
        for _ in 0..3 {
            assert!(matches!(client.next().await, RoomEvent::Seq { seq: u64::MAX, .. }));
        }
    }
    let metrics = nodes[0].hub.metrics().snapshot();
    assert_eq!(metrics.backplane_out, MESSAGES + 2);
    assert_eq!(
        metrics.backplane_in,
        2 * (MESSAGES + 2),
        "the other two nodes' messages, once each"
    );
    assert_eq!(metrics.backplane_skipped, 0);
}

#[tokio::test]
async fn broadcast_others_and_direct_sends_cross_nodes() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let mut admin = redis_connection(&redis).await;
    let (one, two, three) = (
        Node::start(&redis, "t2").await,
        Node::start(&redis, "t2").await,
        Node::start(&redis, "t2").await,
    );
    let mut ann = one.join("r").await;
    let mut bob = two.join("r").await;
    let mut cid = three.join("r").await;
    settled(&mut admin, "t2", "r", 3).await;

    ann.say(RoomCommand::SayOthers { text: "not me".into() }).await;
    assert_eq!(bob.next().await, said(ann.id, "not me"));
    assert_eq!(cid.next().await, said(ann.id, "not me"));
    ann.say(RoomCommand::Say { text: "marker".into() }).await;
    assert_eq!(
        ann.next().await,
        said(ann.id, "marker"),
        "ann did not get her own say_others"
    );
    bob.next().await;
    cid.next().await;

    // To one connection on another node, by its id (which says which node).
    assert_ne!(ann.id.node(), cid.id.node());
    ann.say(RoomCommand::Whisper {
        to: cid.id,
        text: "psst".into(),
    })
    .await;
    assert_eq!(cid.next().await, said(ann.id, "psst"));
    bob.say(RoomCommand::Say { text: "after".into() }).await;
    assert_eq!(ann.next().await, said(bob.id, "after"), "the whisper reached cid only");
    assert_eq!(bob.next().await, said(bob.id, "after"));
    assert_eq!(cid.next().await, said(bob.id, "after"));

    // From a hub: a connection of another node is forwarded, one of this node delivered.
    let whisper = said(bob.id, "from the hub");
    assert!(matches!(
        one.hub.send::<RoomCommand>(bob.id, &whisper).await.unwrap(),
        Sent::Forwarded
    ));
    assert_eq!(bob.next().await, whisper);
    assert!(matches!(
        two.hub.send::<RoomCommand>(bob.id, &whisper).await.unwrap(),
        Sent::Delivered
    ));
    assert_eq!(bob.next().await, whisper);
    let gone = ConnId::new(bob.id.node(), bob.id.seq() + 1000);
    assert!(matches!(
        two.hub.send::<RoomCommand>(gone, &whisper).await.unwrap(),
        Sent::NoConnection
    ));
}

/// A session on one node and direct clients on another hear each other through Redis: a
/// node wraps the plain frame it receives in its own `pub` push, and a send by id reaches a
/// session's subscription from another node.
#[tokio::test]
async fn sessions_and_direct_clients_hear_each_other_across_nodes() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let mut admin = redis_connection(&redis).await;
    let (one, two) = (Node::start(&redis, "ts").await, Node::start(&redis, "ts").await);
    let mut session = raw_connect(&one.served, "/connection/websocket").await;
    let commands = "{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":\"room/r\"}}";
    within("send", session.send(Message::Text(commands.into())))
        .await
        .unwrap();
    let mut lines = Vec::new();
    while lines.len() < 3 {
        lines.extend(next_text(&mut session).await.split('\n').map(str::to_owned));
    }
    let json = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap();
    let session_id: ConnId = json(&lines[0])["connect"]["client"].as_str().unwrap().parse().unwrap();
    assert_eq!(json(&lines[1]), serde_json::json!({"id": 2, "subscribe": {}}));
    let welcome = RoomEvent::Welcome { id: session_id };
    let publication = |event: &RoomEvent| serde_json::json!({"push": {"channel": "room/r", "pub": {"data": serde_json::to_value(event).unwrap()}}});
    assert_eq!(json(&lines[2]), publication(&welcome));
    let mut bob = two.join("r").await;
    settled(&mut admin, "ts", "r", 2).await;

    bob.say(RoomCommand::Say {
        text: "from node two".into(),
    })
    .await;
    assert_eq!(bob.next().await, said(bob.id, "from node two"));
    let heard = json(&next_text(&mut session).await);
    assert_eq!(heard, publication(&said(bob.id, "from node two")));

    let publish = r#"{"id":3,"publish":{"channel":"room/r","data":{"type":"say","text":"from a session"}}}"#;
    within("send", session.send(Message::Text(publish.into())))
        .await
        .unwrap();
    assert_eq!(bob.next().await, said(session_id, "from a session"));

    let whisper = said(bob.id, "to the session");
    assert!(matches!(
        two.hub.send::<RoomCommand>(session_id, &whisper).await.unwrap(),
        Sent::Forwarded
    ));
    let mut rest = Vec::new();
    while !rest
        .iter()
        .any(|line: &serde_json::Value| *line == publication(&whisper))
    {
        rest.extend(next_text(&mut session).await.split('\n').map(json));
    }
    assert!(
        rest.contains(&serde_json::json!({"id": 3, "publish": {}})),
        "the publish was answered: {rest:?}"
    );
}

#[tokio::test]
async fn member_counts_agree_on_every_node() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let nodes = [
        Node::start(&redis, "t3").await,
        Node::start(&redis, "t3").await,
        Node::start(&redis, "t3").await,
    ];
    let _a = nodes[0].join("counted").await;
    let b = nodes[1].join("counted").await;
    let _c = nodes[1].join("counted").await;
    let room = RoomCommandParams::new("counted");
    for node in &nodes {
        eventually("every node counts 3", async || {
            node.hub.cluster_subscribers(&room).await.unwrap() == 3
        })
        .await;
    }
    assert_eq!(nodes[1].hub.subscribers(&room), 2, "subscribers stays this node's");
    drop(b);
    for node in &nodes {
        eventually("every node counts 2 once one left", async || {
            node.hub.cluster_subscribers(&room).await.unwrap() == 2
        })
        .await;
    }
    assert_eq!(
        nodes[2]
            .hub
            .cluster_subscribers(&RoomCommandParams::new("empty"))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_topic_without_subscribers_on_a_node_sends_it_nothing() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let mut admin = redis_connection(&redis).await;
    let (busy, quiet) = (Node::start(&redis, "t4").await, Node::start(&redis, "t4").await);
    let mut a = busy.join("only-here").await;
    settled(&mut admin, "t4", "only-here", 1).await;
    for text in ["one", "two"] {
        a.say(RoomCommand::Say { text: text.into() }).await;
        assert_eq!(a.next().await, said(a.id, text));
    }
    // The other node never subscribed: Redis sent it nothing, and it delivered nothing.
    assert_eq!(quiet.hub.metrics().snapshot().backplane_in, 0);
    assert_eq!(busy.hub.metrics().snapshot().backplane_out, 2);
    // The last subscriber leaving unsubscribes the node.
    drop(a);
    settled(&mut admin, "t4", "only-here", 0).await;
}

#[tokio::test]
async fn prefixes_isolate_apps_sharing_one_redis() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let mut admin = redis_connection(&redis).await;
    let (app1_a, app1_b) = (Node::start(&redis, "app1").await, Node::start(&redis, "app1").await);
    let app2 = Node::start(&redis, "app2").await;
    let mut one = app1_a.join("shared").await;
    let mut two = app2.join("shared").await;
    settled(&mut admin, "app1", "shared", 1).await;
    settled(&mut admin, "app2", "shared", 1).await;

    let room = RoomCommandParams::new("shared");
    let from_b = said(one.id, "app1 only");
    let published = app1_b.hub.publish(&room, &from_b).await.unwrap();
    assert_eq!(published.local, 0);
    published.engine.unwrap();
    assert_eq!(one.next().await, from_b);
    // app2's client then reads its own say first: app1's message never reached it.
    two.say(RoomCommand::Say { text: "app2".into() }).await;
    assert_eq!(two.next().await, said(two.id, "app2"));
    assert_eq!(app2.hub.metrics().snapshot().backplane_in, 0);
    assert_eq!(app2.hub.cluster_subscribers(&room).await.unwrap(), 1);
}

#[tokio::test]
async fn delivery_resumes_after_redis_restarts_and_the_outage_is_reported() {
    needs_redis!();
    let mut redis = RedisServer::start().await;
    let (one, two) = (Node::start(&redis, "t6").await, Node::start(&redis, "t6").await);
    let mut ann = one.join("r").await;
    let mut bob = two.join("r").await;
    let room = RoomCommandParams::new("r");
    {
        let mut admin = redis_connection(&redis).await;
        settled(&mut admin, "t6", "r", 2).await;
    }
    ann.say(RoomCommand::Say { text: "before".into() }).await;
    assert_eq!(bob.next().await, said(ann.id, "before"));
    assert_eq!(ann.next().await, said(ann.id, "before"));

    redis.kill();
    for node in [&one, &two] {
        eventually("the engine noticed", async || {
            matches!(node.hub.engine_health(), EngineHealth::Down { .. })
        })
        .await;
    }
    // While down: local delivery goes on, and the publisher learns it reached no other node.
    let during = said(ann.id, "during");
    let published = one.hub.publish(&room, &during).await.unwrap();
    assert_eq!(published.local, 1);
    assert!(matches!(published.engine, Err(BackplaneError::Down)), "{published:?}");
    assert_eq!(ann.next().await, during);

    redis.restart().await;
    for node in [&one, &two] {
        eventually("the engine reconnected", async || {
            node.hub.engine_health() == EngineHealth::Up
        })
        .await;
    }
    let mut admin = redis_connection(&redis).await;
    settled(&mut admin, "t6", "r", 2).await;
    ann.say(RoomCommand::Say { text: "after".into() }).await;
    assert_eq!(
        bob.next().await,
        said(ann.id, "after"),
        "bob never got `during`, and gets `after`"
    );
    assert_eq!(ann.next().await, said(ann.id, "after"));

    let metrics = one.hub.metrics().snapshot();
    assert!(metrics.backplane_reconnects >= 1, "{metrics:?}");
    assert!(metrics.backplane_outage_ms > 0, "{metrics:?}");
    assert!(metrics.backplane_refused >= 1, "{metrics:?}");
}

/// A partition that leaves a node's publishing connection open but silent and closes its
/// subscribing one. The subscriber reconnects at once; the publisher, waiting on a request
/// the silent connection never answers (for up to the response timeout, a minute here),
/// must give that connection up with it, or the node reports the engine up again while
/// everything it publishes queues behind the dead connection and is lost.
#[tokio::test]
async fn a_publisher_on_a_silent_connection_reconnects_with_its_subscriber() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let proxy = FaultyProxy::start(redis.port()).await;
    let mut admin = redis_connection(&redis).await;
    let one = Node::attached(config(&proxy.redis_url(), "t9").connect_timeout(Duration::from_secs(60))).await;
    let two = Node::start(&redis, "t9").await;
    let mut ann = one.join("r").await;
    let mut bob = two.join("r").await;
    settled(&mut admin, "t9", "r", 2).await;
    ann.say(RoomCommand::Say { text: "before".into() }).await;
    assert_eq!(bob.next().await, said(ann.id, "before"));
    assert_eq!(ann.next().await, said(ann.id, "before"));

    proxy.stall();
    assert_eq!(proxy.close_those_that_sent(b"SUBSCRIBE"), 1, "node one's subscriber");
    eventually("node one reconnected", async || {
        let metrics = one.hub.metrics().snapshot();
        metrics.backplane_reconnects >= 1 && one.hub.engine_health() == EngineHealth::Up
    })
    .await;
    // Node one's new subscriber, and node two's, which never left.
    settled(&mut admin, "t9", "r", 2).await;
    ann.say(RoomCommand::Say { text: "after".into() }).await;
    assert_eq!(ann.next().await, said(ann.id, "after"));
    assert_eq!(
        bob.next().await,
        said(ann.id, "after"),
        "published through a new connection, not queued behind the silent one"
    );
}

#[tokio::test]
async fn attaching_to_an_unreachable_redis_fails_clearly() {
    needs_redis!();
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    redis.kill();
    let hub = Server::new().hub();
    let config = RedisConfig::new(url).connect_timeout(Duration::from_secs(2));
    let error = within("the attempt", RedisBackplane::connect(&hub, config))
        .await
        .expect_err("nothing listens there");
    assert!(matches!(error, BackplaneError::Engine(_)), "{error:?}");
    assert_eq!(hub.engine_health(), EngineHealth::InProcess, "nothing was attached");
}

#[tokio::test]
async fn an_envelope_of_an_unknown_version_is_skipped_and_counted() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let mut admin = redis_connection(&redis).await;
    let node = Node::start(&redis, "t8").await;
    let mut ann = node.join("r").await;
    settled(&mut admin, "t8", "r", 1).await;
    // A later release's envelope: version 2, and whatever follows.
    let channel = "t8:topic:RoomCommand:room/r";
    let _: usize = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(&[2_u8, 0, 1, 2, 3][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    eventually("the skip is counted", async || {
        node.hub.metrics().snapshot().backplane_skipped == 1
    })
    .await;
    ann.say(RoomCommand::Say {
        text: "still fine".into(),
    })
    .await;
    assert_eq!(
        ann.next().await,
        said(ann.id, "still fine"),
        "nothing else reached the client"
    );
}

/// The Redis channels with subscribers under `prefix`, as Redis sees them.
async fn channels(redis: &mut redis::aio::MultiplexedConnection, prefix: &str) -> BTreeSet<String> {
    redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{prefix}:*"))
        .query_async(redis)
        .await
        .expect("PUBSUB CHANNELS")
}

/// Thousands of topics come and go on one node while another node streams messages to it:
/// every message arrives, in order and promptly (the subscriber reads between batched rounds
/// of (un)subscriptions instead of working through one command per change first), and once
/// the churn stops Redis has the node subscribed to exactly the topics it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_topic_churn_neither_delays_messages_nor_leaves_stray_subscriptions() {
    needs_redis!();
    const MESSAGES: u64 = 3000;
    const ROUNDS: u32 = 200;
    const TOPICS: u32 = 200;
    // Far above a loaded machine's scheduling delays, far below the seconds one round trip
    // per change took.
    const LATENCY_BOUND: Duration = Duration::from_secs(1);
    let redis = RedisServer::start().await;
    let mut admin = redis_connection(&redis).await;
    let (sender, churning) = (Node::start(&redis, "t10").await, Node::start(&redis, "t10").await);
    let mut bob = churning.join("steady").await;
    let mut cat = churning.join("churner").await;
    settled(&mut admin, "t10", "steady", 1).await;

    // A message a millisecond from the other node, for about three seconds.
    let hub = sender.hub.clone();
    let stream = tokio::spawn(async move {
        let steady = RoomCommandParams::new("steady");
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for seq in 0..MESSAGES {
            tick.tick().await;
            let stamped = RoomEvent::Stamped { seq, micros: micros() };
            hub.publish(&steady, &stamped)
                .await
                .unwrap()
                .engine
                .expect("the engine took it");
        }
    });
    // The churn starts once the stream flows, and bob reads all along.
    let churned = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        cat.say(RoomCommand::Churn {
            rounds: ROUNDS,
            topics: TOPICS,
        })
        .await;
        assert_eq!(cat.next().await, RoomEvent::Churned);
        started.elapsed()
    };
    let received = async {
        let mut worst = Duration::ZERO;
        for expected in 0..MESSAGES {
            match bob.next().await {
                RoomEvent::Stamped { seq, micros: sent } => {
                    assert_eq!(seq, expected, "lost, twice or out of order");
                    worst = worst.max(Duration::from_micros(micros() - sent));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        worst
    };
    let (churned, worst) = tokio::join!(churned, received);
    within("the stream", stream).await.unwrap();
    let changes = 2 * u64::from(ROUNDS) * u64::from(TOPICS) - u64::from(TOPICS / 2);
    eprintln!(
        "{changes} topic changes in {churned:?} ({:.0}/s) while {MESSAGES} messages arrived, the slowest in {worst:?}",
        changes as f64 / churned.as_secs_f64()
    );
    assert!(
        worst < LATENCY_BOUND,
        "a message took {worst:?} to arrive during the churn"
    );

    // What the nodes need: their own channels, bob's and cat's rooms, the even churn topics.
    let node = |hub: &Hub| format!("t10:node:{:016x}", hub.node_id());
    let room = |name: &str| format!("t10:topic:RoomCommand:room/{name}");
    let base: BTreeSet<String> = [node(&sender.hub), node(&churning.hub), room("steady")].into();
    let mut needed = base.clone();
    needed.insert(room("churner"));
    let last = ROUNDS - 1;
    needed.extend(
        (0..TOPICS)
            .step_by(2)
            .map(|n| format!("t10:topic:RoomCommand:churn/{last}/{n}")),
    );
    eventually("redis has exactly the needed subscriptions", async || {
        channels(&mut admin, "t10").await == needed
    })
    .await;
    assert_eq!(
        numsub(&mut admin, &format!("t10:topic:RoomCommand:churn/{last}/0")).await,
        1
    );
    assert_eq!(
        numsub(&mut admin, &format!("t10:topic:RoomCommand:churn/{last}/1")).await,
        0
    );
    // Cat leaving unsubscribes the node from every topic cat was the last member of.
    drop(cat);
    eventually("the churned topics are unsubscribed", async || {
        channels(&mut admin, "t10").await == base
    })
    .await;
}

/// A node whose server shuts down gracefully stops being counted by the others at once: it
/// deletes its members hash and leaves the node set, rather than leaving them to expire.
#[tokio::test]
async fn a_graceful_shutdown_removes_the_nodes_member_counts_at_once() {
    needs_redis!();
    let redis = RedisServer::start().await;
    let mut admin = redis_connection(&redis).await;
    // A TTL far beyond the test: only the deletion can make the hash go.
    let long_lived = || config(&redis.url(), "t11").node_ttl(Duration::from_secs(600));
    let mut leaving = Node::attached(long_lived()).await;
    let staying = Node::attached(long_lived()).await;
    let mut ann = leaving.join("counted").await;
    let room = RoomCommandParams::new("counted");
    eventually("the other node counts ann", async || {
        staying.hub.cluster_subscribers(&room).await.unwrap() == 1
    })
    .await;
    let node = format!("{:016x}", leaving.hub.node_id());
    let key = format!("t11:members:{node}");
    let exists = async |admin: &mut redis::aio::MultiplexedConnection| -> (bool, bool) {
        let hash: bool = redis::cmd("EXISTS").arg(&key).query_async(admin).await.unwrap();
        let listed: bool = redis::cmd("SISMEMBER")
            .arg("t11:nodes")
            .arg(&node)
            .query_async(admin)
            .await
            .unwrap();
        (hash, listed)
    };
    assert_eq!(exists(&mut admin).await, (true, true));

    // Ann reads on, so she answers the close and the shutdown does not wait for its timeout.
    let started = Instant::now();
    let server = leaving.served.begin_shutdown();
    let closed = async { while within("ann's close", ann.rx.next()).await.is_some() {} };
    let (ended, ()) = tokio::join!(within("the shutdown", server), closed);
    ended.unwrap().unwrap();
    // Removed by the time the shutdown returns: no count interval, no TTL involved.
    assert_eq!(
        exists(&mut admin).await,
        (false, false),
        "after {:?}",
        started.elapsed()
    );
    assert_eq!(staying.hub.cluster_subscribers(&room).await.unwrap(), 0);
    // And not written again by the node's engine, which lives on with its hub.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(exists(&mut admin).await, (false, false));
    assert_eq!(leaving.hub.engine_health(), EngineHealth::Up);
}
