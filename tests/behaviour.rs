//! The real-time server's behaviour, over real loopback sockets: topics and serialize-once
//! fan-out, lag policies, auth, limits, liveness, shutdown, metrics. Every test runs twice,
//! against the standalone server and against the same registrations mounted in axum.

// Test helpers too report failure by panicking.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ws_channels::tungstenite::Message;
use ws_channels::{
    Channel, CloseCode, ConnId, Error, ErrorReply, Handler, LagPolicy, Lagged, RateLimit, RateLimitAction, Reject,
    Report, Sent, Server, TokenSource, Topic, channel,
};
use ws_channels_tests::{
    Backend, Encodings, Served, handshake_status, next_text, raw_connect, raw_http, read_until_close, within,
};

ws_channels_tests::on_both_backends!(
    a_broadcast_reaches_200_subscribers_once_and_in_order,
    broadcast_variants_and_topics,
    the_hub_publishes_from_outside_any_handler,
    a_reader_that_never_reads_is_disconnected_without_delaying_others,
    drop_oldest_keeps_a_slow_reader_connected,
    tokens_come_from_query_bearer_cookie_or_header,
    identity_is_checked_against_path_parameters,
    oversize_messages_get_an_error_reply_or_1009,
    the_rate_limit_closes_with_1013,
    the_rate_limit_can_reply_instead,
    a_flood_of_bad_or_excess_messages_gets_replies_and_stays_connected,
    connection_limits_answer_503_before_the_upgrade,
    peers_that_miss_pongs_are_closed,
    idle_connections_are_closed,
    connections_end_when_their_credentials_expire,
    timers_and_shutdown_keep_running_while_a_handler_awaits,
    origins_outside_the_allow_list_get_403,
    cross_site_pages_are_refused_by_default,
    routing_and_refusals_match_the_standalone_server,
    binary_frames_reach_on_binary,
    graceful_shutdown_sends_1001_to_all,
    metrics_count_connections_and_messages,
    a_panicking_validator_closes_1011_and_leaves_nothing_behind,
    large_server_messages_are_delivered,
    outgoing_messages_over_the_limit_are_refused_to_the_sender,
    a_ping_flood_from_a_client_that_never_reads_stays_bounded,
    sends_fail_once_the_client_has_left,
    a_shutdown_during_on_connect_refuses_the_connection,
    slow_but_reading_clients_survive_pings_under_drop_oldest,
    an_on_connect_that_does_not_decide_in_time_gets_408,
    a_handle_taken_early_sees_a_later_shutdown_timeout,
    callbacks_set_before_on_connect_still_run,
    no_frame_follows_the_close_reply,
    no_frame_follows_the_reply_to_an_empty_close,
    the_socket_closes_before_on_close_runs,
);

/// What a client says in a room.
#[channel("room/<name>", server = RoomEvent, on_invalid = reply)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RoomCommand {
    Say { text: String },
    SayOthers { text: String },
    Join { room: String },
    Leave { room: String },
    Whisper { to: ConnId, text: String },
}

/// What the room tells its members.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RoomEvent {
    Welcome {
        id: ConnId,
    },
    Said {
        from: ConnId,
        text: String,
    },
    Tick {
        seq: u64,
        #[serde(skip)]
        encodings: Encodings,
    },
    Error {
        message: String,
    },
}

/// Counts its own serializations, to prove a broadcast is serialized once.
impl Serialize for RoomEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RoomEvent::Welcome { id } => {
                let mut s = serializer.serialize_struct("RoomEvent", 2)?;
                s.serialize_field("type", "welcome")?;
                s.serialize_field("id", id)?;
                s.end()
            }
            RoomEvent::Said { from, text } => {
                let mut s = serializer.serialize_struct("RoomEvent", 3)?;
                s.serialize_field("type", "said")?;
                s.serialize_field("from", from)?;
                s.serialize_field("text", text)?;
                s.end()
            }
            RoomEvent::Tick { seq, encodings } => {
                if let Some(encodings) = &encodings.0 {
                    encodings.fetch_add(1, Ordering::SeqCst);
                }
                let mut s = serializer.serialize_struct("RoomEvent", 2)?;
                s.serialize_field("type", "tick")?;
                s.serialize_field("seq", seq)?;
                s.end()
            }
            RoomEvent::Error { message } => {
                let mut s = serializer.serialize_struct("RoomEvent", 2)?;
                s.serialize_field("type", "error")?;
                s.serialize_field("message", message)?;
                s.end()
            }
        }
    }
}

impl ErrorReply for RoomEvent {
    fn error_reply(error: &Error) -> Self {
        RoomEvent::Error {
            message: Report(error).to_string(),
        }
    }
}

fn tick(seq: u64) -> RoomEvent {
    RoomEvent::Tick {
        seq,
        encodings: Encodings::default(),
    }
}

/// The room handler every test uses, on a server the test configures.
fn rooms<S: Send + Sync + 'static>(server: Server<S>) -> Server<S> {
    RoomCommand::register(server, room_handler)
}

fn room_handler<S, D>(h: Handler<RoomCommand, S, D>) -> Handler<RoomCommand, S, D>
where
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    h.on_open(|conn| async move {
        conn.send(&RoomEvent::Welcome { id: conn.id() }).await?;
        Ok(())
    })
    .on_message(|conn, command| async move {
        let from = conn.id();
        match command {
            RoomCommand::Say { text } => {
                let _ = conn.broadcast(&RoomEvent::Said { from, text }).await?;
            }
            RoomCommand::SayOthers { text } => {
                let _ = conn.broadcast_others(&RoomEvent::Said { from, text }).await?;
            }
            RoomCommand::Join { room } => {
                conn.join(&RoomCommandParams::new(room));
            }
            RoomCommand::Leave { room } => {
                conn.leave(&RoomCommandParams::new(room));
            }
            RoomCommand::Whisper { to, text } => {
                let _ = conn
                    .hub()
                    .send::<RoomCommand>(to, &RoomEvent::Said { from, text })
                    .await?;
            }
        }
        Ok(())
    })
}

/// A client of the room channel speaking raw JSON, so tests see exactly what is on the wire.
struct Client {
    socket: ws_channels::ClientSocket,
    id: ConnId,
}

impl Client {
    async fn join(server: &Served, room: &str) -> Self {
        let mut socket = raw_connect(server, &format!("/room/{room}")).await;
        let welcome: RoomEvent = serde_json::from_str(&next_text(&mut socket).await).unwrap();
        let RoomEvent::Welcome { id } = welcome else {
            panic!("expected a welcome, got {welcome:?}")
        };
        Self { socket, id }
    }

    async fn send(&mut self, json: serde_json::Value) {
        self.socket.send(Message::text(json.to_string())).await.unwrap();
    }

    async fn next(&mut self) -> RoomEvent {
        serde_json::from_str(&next_text(&mut self.socket).await).unwrap()
    }
}

fn said(from: ConnId, text: &str) -> RoomEvent {
    RoomEvent::Said {
        from,
        text: text.into(),
    }
}

async fn a_broadcast_reaches_200_subscribers_once_and_in_order(backend: Backend) {
    let server = rooms(Server::new());
    let hub = server.hub();
    let server = Served::start_on(backend, server).await;
    let clients = futures_util::future::join_all((0..200).map(|_| Client::join(&server, "big"))).await;
    assert_eq!(hub.subscribers(&RoomCommandParams::new("big")), 200);
    let encodings = Arc::new(AtomicUsize::new(0));
    for seq in 0..20 {
        let event = RoomEvent::Tick {
            seq,
            encodings: Encodings(Some(encodings.clone())),
        };
        assert_eq!(
            hub.publish(&RoomCommandParams::new("big"), &event).await.unwrap().local,
            200
        );
    }
    let _ = hub
        .publish(&RoomCommandParams::new("big"), &said(ConnId::new(0, 0), "end"))
        .await
        .unwrap();
    assert_eq!(
        encodings.load(Ordering::SeqCst),
        20,
        "each broadcast is serialized once, not per receiver"
    );
    let received = futures_util::future::join_all(clients.into_iter().map(|mut client| async move {
        let mut events = Vec::new();
        loop {
            match client.next().await {
                RoomEvent::Said { text, .. } if text == "end" => return events,
                RoomEvent::Tick { seq, .. } => events.push(seq),
                other => panic!("unexpected {other:?}"),
            }
        }
    }));
    for events in within("200 clients reading", received).await {
        assert_eq!(events, (0..20).collect::<Vec<_>>(), "every tick exactly once, in order");
    }
}

async fn broadcast_variants_and_topics(backend: Backend) {
    let server = Served::start_on(backend, rooms(Server::new())).await;
    let mut a = Client::join(&server, "r").await;
    let mut b = Client::join(&server, "r").await;
    let mut c = Client::join(&server, "r").await;
    let mut elsewhere = Client::join(&server, "x").await;

    a.send(serde_json::json!({"type": "say", "text": "to all"})).await;
    let a_id = a.id;
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.next().await, said(a_id, "to all"));
    }
    a.send(serde_json::json!({"type": "say_others", "text": "not me"}))
        .await;
    assert_eq!(b.next().await, said(a.id, "not me"));
    assert_eq!(c.next().await, said(a.id, "not me"));
    a.send(serde_json::json!({"type": "say", "text": "marker"})).await;
    assert_eq!(
        a.next().await,
        said(a.id, "marker"),
        "the sender did not get its say_others"
    );
    b.next().await;
    c.next().await;

    // c also joins room x: it hears x, and r still.
    c.send(serde_json::json!({"type": "join", "room": "x"})).await;
    c.send(serde_json::json!({"type": "say", "text": "sync"})).await;
    assert_eq!(
        c.next().await,
        said(c.id, "sync"),
        "join is done before the next message is handled"
    );
    a.next().await;
    b.next().await;
    elsewhere.send(serde_json::json!({"type": "say", "text": "in x"})).await;
    assert_eq!(elsewhere.next().await, said(elsewhere.id, "in x"));
    assert_eq!(c.next().await, said(elsewhere.id, "in x"));
    c.send(serde_json::json!({"type": "leave", "room": "x"})).await;
    // c's messages are handled in order: once its next say is echoed, the leave is done.
    c.send(serde_json::json!({"type": "say", "text": "left"})).await;
    assert_eq!(c.next().await, said(c.id, "left"));
    a.next().await;
    b.next().await;
    elsewhere
        .send(serde_json::json!({"type": "say", "text": "after leave"}))
        .await;
    assert_eq!(elsewhere.next().await, said(elsewhere.id, "after leave"));
    c.send(serde_json::json!({"type": "say", "text": "c again"})).await;
    assert_eq!(c.next().await, said(c.id, "c again"), "c no longer got x's message");

    // One connection, by id.
    a.send(serde_json::json!({"type": "whisper", "to": b.id, "text": "psst"}))
        .await;
    assert_eq!(b.next().await, said(c.id, "c again"));
    assert_eq!(b.next().await, said(a.id, "psst"));
    a.send(serde_json::json!({"type": "say", "text": "last"})).await;
    assert_eq!(a.next().await, said(c.id, "c again"));
    assert_eq!(a.next().await, said(a.id, "last"), "the whisper reached b only");
}

async fn the_hub_publishes_from_outside_any_handler(backend: Backend) {
    let server = rooms(Server::new());
    let hub = server.hub();
    let server = Served::start_on(backend, server).await;
    let mut a = Client::join(&server, "lobby").await;
    let mut b = Client::join(&server, "lobby").await;
    let lobby = RoomCommandParams::new("lobby");
    let published = hub.publish(&lobby, &tick(1)).await.unwrap();
    assert_eq!(published.local, 2);
    assert!(published.engine.is_ok(), "no engine: nothing to forward");
    assert_eq!(hub.publish_except(&lobby, a.id, &tick(2)).await.unwrap().local, 1);
    assert!(matches!(
        hub.send::<RoomCommand>(a.id, &tick(3)).await.unwrap(),
        Sent::Delivered
    ));
    let unknown = ConnId::new(a.id.node(), 999_999);
    assert!(matches!(
        hub.send::<RoomCommand>(unknown, &tick(4)).await.unwrap(),
        Sent::NoConnection
    ));
    let elsewhere = ConnId::new(a.id.node().wrapping_add(1), a.id.seq());
    assert!(
        matches!(
            hub.send::<RoomCommand>(elsewhere, &tick(4)).await.unwrap(),
            Sent::NoConnection
        ),
        "another node's id, and no engine to reach it"
    );
    assert_eq!(
        hub.publish(&RoomCommandParams::new("empty"), &tick(5))
            .await
            .unwrap()
            .local,
        0
    );
    assert_eq!(
        hub.publish(Topic::<RoomCommand>::named("room/lobby"), &tick(6))
            .await
            .unwrap()
            .local,
        2
    );
    let seqs = |events: Vec<RoomEvent>| {
        events
            .into_iter()
            .map(|e| match e {
                RoomEvent::Tick { seq, .. } => seq,
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(vec![a.next().await, a.next().await, a.next().await]), [1, 3, 6]);
    assert_eq!(seqs(vec![b.next().await, b.next().await, b.next().await]), [1, 2, 6]);
}

/// A server-only feed with a tiny queue, to make readers slow.
#[channel("feed/<name>", server_only)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Feed {
    seq: u64,
    padding: String,
}

/// The same feed where slow readers lose the oldest messages instead.
#[channel("latest/<name>", server_only, on_lag = drop_oldest)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Latest {
    seq: u64,
    padding: String,
}

type LagLog = Arc<Mutex<Vec<Lagged>>>;

fn feeds(lags: LagLog) -> Server<LagLog> {
    let server = Server::with_state(lags).outbound_queue(8);
    let server = Feed::register(server, |h| {
        h.on_lag(|conn, lagged| conn.state().lock().unwrap().push(lagged))
    });
    Latest::register(server, |h| {
        h.on_lag(|conn, lagged| conn.state().lock().unwrap().push(lagged))
    })
}

/// Connects and then never reads: the kernel buffers fill, then the outbound queue.
async fn never_reading(server: &Served, path: &str) -> tokio::net::TcpStream {
    match raw_connect(server, path).await.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => unreachable!("plain ws:// connection"),
    }
}

const PADDING: usize = 32 * 1024;
const FLOOD: u64 = 400;

async fn a_reader_that_never_reads_is_disconnected_without_delaying_others(backend: Backend) {
    let lags = LagLog::default();
    let server = feeds(lags.clone());
    let (hub, metrics) = (server.hub(), server.metrics());
    let server = Served::start_on(backend, server).await;
    let _slow = never_reading(&server, "/feed/news").await;
    let mut fast = raw_connect(&server, "/feed/news").await;
    let params = FeedParams::new("news");
    let padding = "x".repeat(PADDING);
    let (progress, mut received) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        for expected in 0..FLOOD {
            let feed: Feed = serde_json::from_str(&next_text(&mut fast).await).unwrap();
            assert_eq!(feed.seq, expected, "the fast reader gets everything, in order");
            progress.send_replace(expected + 1);
        }
    });
    // 400 × 32 KiB = 12.5 MiB: more than loopback buffers hold for a reader that never reads.
    // The publisher stays a few messages ahead of the fast reader (whose queue holds 8), so a
    // loaded machine slowing that reader down does not make it a slow consumer too.
    for seq in 0..FLOOD {
        within("the fast reader to keep up", received.wait_for(|got| seq < got + 4))
            .await
            .unwrap();
        let _ = hub
            .publish(
                &params,
                &Feed {
                    seq,
                    padding: padding.clone(),
                },
            )
            .await
            .unwrap();
    }
    within("the fast reader", reader).await.unwrap();
    within("the slow reader's disconnect", async {
        while hub.subscribers(&params) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(metrics.snapshot().lag_disconnects, 1);
    let lags = lags.lock().unwrap().clone();
    assert!(
        lags.iter().any(|l| l.policy == LagPolicy::Disconnect && l.dropped >= 1),
        "{lags:?}"
    );
}

/// The server writes data frames itself (not through tungstenite, whose own check would refuse
/// them after a close): a client that closes while the server is closing with messages still
/// queued for it (its socket full) gets the close reply last, with no data frame after it.
async fn no_frame_follows_the_close_reply(backend: Backend) {
    let code = 1000u16.to_be_bytes();
    close_while_the_server_closes(backend, &code, Some(1000)).await;
}

/// The same with a close frame that carries no status code (the reply carries none either).
async fn no_frame_follows_the_reply_to_an_empty_close(backend: Backend) {
    close_while_the_server_closes(backend, &[], None).await;
}

async fn close_while_the_server_closes(backend: Backend, close_payload: &[u8], reply_code: Option<u16>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = feeds(LagLog::default());
    let hub = server.hub();
    let mut server = Served::start_on(backend, server).await;
    let mut tcp = never_reading(&server, "/latest/ticks").await;
    // More than loopback buffers hold: the server's writer stops with frames queued.
    let padding = "x".repeat(PADDING);
    for seq in 0..FLOOD {
        let tick = Latest {
            seq,
            padding: padding.clone(),
        };
        let _ = hub.publish(&LatestParams::new("ticks"), &tick).await.unwrap();
    }
    // The server begins to close (1001) behind those frames; then the client closes too, with
    // a masked close frame.
    let serving = server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mask = [1, 2, 3, 4];
    let mut close = vec![0x88, 0x80 | close_payload.len() as u8];
    close.extend_from_slice(&mask);
    close.extend(close_payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    tcp.write_all(&close).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut wire = Vec::new();
    within("the server to end the connection", tcp.read_to_end(&mut wire))
        .await
        .unwrap();
    within("the server to finish", serving).await.unwrap().unwrap();
    // Walk the frames (nothing was published before the socket was taken raw, so its bytes
    // start on a frame): whole data frames, then one close frame, then the end.
    let (mut at, mut data, mut closed) = (0, 0, None);
    while at < wire.len() {
        assert!(
            closed.is_none(),
            "a frame after the close ({data} data frames before it)"
        );
        let (first, second) = (wire[at], wire[at + 1]);
        assert_eq!(first & 0xF0, 0x80, "final, no reserved bits");
        assert_eq!(second & 0x80, 0, "server frames are not masked");
        let (header, len) = match second & 0x7F {
            126 => (4, usize::from(u16::from_be_bytes([wire[at + 2], wire[at + 3]]))),
            127 => (
                10,
                usize::try_from(u64::from_be_bytes(wire[at + 2..at + 10].try_into().unwrap())).unwrap(),
            ),
            len => (2, usize::from(len)),
        };
        let payload = &wire[at + header..at + header + len];
        match first & 0x0F {
            0x1 => data += 1,
            0x8 => closed = Some(payload.get(..2).map(|code| u16::from_be_bytes([code[0], code[1]]))),
            other => panic!("unexpected opcode {other:#x}"),
        }
        at += header + len;
    }
    assert_eq!(at, wire.len(), "the stream ends on a frame boundary");
    // The reply to the client's close, not the server's own 1001, which waited behind the data.
    assert_eq!(
        closed,
        Some(reply_code),
        "the stream ends with the close reply ({data} data frames before it)"
    );
    assert!(data > 0);
}

/// `on_close` may take its time (a database write): the client's socket is closed first.
async fn the_socket_closes_before_on_close_runs(backend: Backend) {
    use tokio::io::AsyncReadExt;
    type Gate = Arc<tokio::sync::Semaphore>;
    let release = Gate::new(tokio::sync::Semaphore::new(0));
    let server = RoomCommand::register(Server::with_state(release.clone()), |h| {
        room_handler(h).on_close(|conn, _| async move {
            let _ = conn.state().acquire().await;
        })
    });
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/room/slow-close").await;
    socket.close(None).await.unwrap();
    let mut tcp = match socket.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => unreachable!("plain ws:// connection"),
    };
    // The close reply was read by `close`; what follows is the end of the stream, while
    // `on_close` is still waiting.
    let mut rest = Vec::new();
    within(
        "the server to close the socket while on_close waits",
        tcp.read_to_end(&mut rest),
    )
    .await
    .unwrap();
    assert_eq!(release.available_permits(), 0, "on_close was still waiting");
    release.add_permits(1);
}

async fn drop_oldest_keeps_a_slow_reader_connected(backend: Backend) {
    let lags = LagLog::default();
    let server = feeds(lags.clone());
    let (hub, metrics) = (server.hub(), server.metrics());
    let server = Served::start_on(backend, server).await;
    let _slow = never_reading(&server, "/latest/prices").await;
    let params = LatestParams::new("prices");
    let padding = "x".repeat(PADDING);
    for seq in 0..FLOOD {
        let _ = hub
            .publish(
                &params,
                &Latest {
                    seq,
                    padding: padding.clone(),
                },
            )
            .await
            .unwrap();
    }
    within("drops to be reported", async {
        while lags.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let dropped = metrics.snapshot().dropped;
    assert!(dropped > 0, "some messages were dropped");
    assert!(dropped < FLOOD, "bounded: only what did not fit is lost");
    assert_eq!(hub.subscribers(&params), 1, "still connected");
    assert_eq!(metrics.snapshot().lag_disconnects, 0);
    assert!(lags.lock().unwrap().iter().all(|l| l.policy == LagPolicy::DropOldest));
}

/// A verified user.
#[derive(Debug)]
struct User {
    name: String,
}

/// Every token source; tokens are `secret-<name>`; users may only open their own room.
fn guarded(server: Server) -> Server {
    let sources = [
        TokenSource::Query("token"),
        TokenSource::Bearer,
        TokenSource::Cookie("session"),
        TokenSource::Header("x-token"),
    ];
    RoomCommand::register(server, |h| {
        let h = h
            .authenticate(sources, |token, _handshake| async move {
                match token.strip_prefix("secret-") {
                    Some(name) => Ok(User { name: name.to_owned() }),
                    None => Err(Reject::unauthorized("invalid token")),
                }
            })
            .authorize(
                |user: &User, params: &RoomCommandParams| match user.name == params.name {
                    true => Ok(()),
                    false => Err(Reject::forbidden("not your room")),
                },
            );
        room_handler(h)
    })
}

/// The handshake status for a request with extra headers.
async fn status_with(server: &Served, path: &str, headers: &[(&'static str, &str)]) -> u16 {
    let mut request = format!("{}{path}", server.base()).into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match within("handshake", tokio_tungstenite::connect_async(request)).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(ws_channels::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("handshake failed without a status: {other}"),
    }
}

async fn tokens_come_from_query_bearer_cookie_or_header(backend: Backend) {
    let server = Served::start_on(backend, guarded(Server::new())).await;
    assert_eq!(status_with(&server, "/room/ann?token=secret-ann", &[]).await, 101);
    assert_eq!(
        status_with(&server, "/room/ann", &[("authorization", "Bearer secret-ann")]).await,
        101
    );
    assert_eq!(
        status_with(&server, "/room/ann", &[("cookie", "theme=dark; session=secret-ann")]).await,
        101
    );
    assert_eq!(
        status_with(&server, "/room/ann", &[("x-token", "secret-ann")]).await,
        101
    );
    assert_eq!(status_with(&server, "/room/ann", &[]).await, 401, "no credentials");
    assert_eq!(
        status_with(&server, "/room/ann?token=forged", &[]).await,
        401,
        "bad token"
    );
    assert_eq!(
        status_with(&server, "/room/ann", &[("authorization", "Basic secret-ann")]).await,
        401
    );
}

async fn identity_is_checked_against_path_parameters(backend: Backend) {
    let server = Served::start_on(backend, guarded(Server::new())).await;
    assert_eq!(status_with(&server, "/room/bob?token=secret-ann", &[]).await, 403);
    assert_eq!(status_with(&server, "/room/bob?token=secret-bob", &[]).await, 101);
}

async fn oversize_messages_get_an_error_reply_or_1009(backend: Backend) {
    let server = Served::start_on(backend, rooms(Server::new().max_message_size(1024))).await;
    let mut client = Client::join(&server, "r").await;
    // Over the limit but readable: the channel replies (on_invalid = reply) and stays open.
    client
        .send(serde_json::json!({"type": "say", "text": "x".repeat(1500)}))
        .await;
    match client.next().await {
        RoomEvent::Error { message } => assert!(message.contains("larger than the limit of 1024"), "{message}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    client
        .send(serde_json::json!({"type": "say", "text": "still open"}))
        .await;
    assert_eq!(client.next().await, said(client.id, "still open"));
    // Over twice the limit: not even read, 1009.
    client
        .send(serde_json::json!({"type": "say", "text": "x".repeat(4096)}))
        .await;
    let (_, close) = read_until_close(&mut client.socket).await;
    assert_eq!(close.unwrap().code, CloseCode::Size);
}

async fn the_rate_limit_closes_with_1013(backend: Backend) {
    // One token a second after a burst of 5: the outcome does not depend on how fast this
    // machine sends the 20 messages.
    let server = rooms(Server::new().rate_limit(RateLimit::per_second(1).burst(5)));
    let metrics = server.metrics();
    let server = Served::start_on(backend, server).await;
    let mut client = Client::join(&server, "r").await;
    for _ in 0..20 {
        client.send(serde_json::json!({"type": "say", "text": "spam"})).await;
    }
    let (texts, close) = read_until_close(&mut client.socket).await;
    assert_eq!(texts.len(), 5, "the burst of 5 went through: {texts:?}");
    let close = close.unwrap();
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::Again, "rate limit exceeded")
    );
    assert_eq!(metrics.snapshot().rate_limited, 1);
}

async fn the_rate_limit_can_reply_instead(backend: Backend) {
    let limit = RateLimit::per_second(1).burst(3).on_exceed(RateLimitAction::Reply);
    let server = Served::start_on(backend, rooms(Server::new().rate_limit(limit))).await;
    let mut client = Client::join(&server, "r").await;
    for _ in 0..5 {
        client.send(serde_json::json!({"type": "say", "text": "hi"})).await;
    }
    // Three within the burst; the two over it get one error reply between them (one per second
    // of flooding).
    let mut events = Vec::new();
    for _ in 0..4 {
        events.push(client.next().await);
    }
    let errors = events.iter().filter(|e| matches!(e, RoomEvent::Error { .. })).count();
    assert_eq!((events.len() - errors, errors), (3, 1), "{events:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.send(serde_json::json!({"type": "say", "text": "later"})).await;
    assert_eq!(
        client.next().await,
        said(client.id, "later"),
        "tokens refill; still open"
    );
}

async fn connection_limits_answer_503_before_the_upgrade(backend: Backend) {
    let server = rooms(Server::new().max_connections(3).max_connections_per_address(2));
    let hub = server.hub();
    let server = Served::start_on(backend, server).await;
    let a1 = Client::join(&server, "a").await;
    let _a2 = Client::join(&server, "a").await;
    assert_eq!(handshake_status(&server, "/room/a").await, 503, "per address");
    let _b = Client::join(&server, "b").await;
    assert_eq!(handshake_status(&server, "/room/c").await, 503, "server-wide");
    drop(a1);
    within("the slot to be freed", async {
        while hub.subscribers(&RoomCommandParams::new("a")) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The slot is freed when the connection task ends, just after the hub forgets it.
    let mut status = 0;
    for _ in 0..50 {
        status = handshake_status(&server, "/room/c").await;
        if status == 101 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 101);
}

type Closes = Arc<Mutex<Vec<ws_channels::CloseInfo>>>;

fn recorded(server: Server<Closes>) -> Server<Closes> {
    RoomCommand::register(server, |h| {
        room_handler(h).on_close(|conn, info| async move { conn.state().lock().unwrap().push(info) })
    })
}

async fn first_close(closes: &Closes) -> ws_channels::CloseInfo {
    within("on_close", async {
        loop {
            if let Some(info) = closes.lock().unwrap().first().cloned() {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn peers_that_miss_pongs_are_closed(backend: Backend) {
    let closes = Closes::default();
    let server = Server::with_state(closes.clone())
        .ping_interval(Some(Duration::from_millis(100)))
        .close_timeout(Duration::from_millis(200));
    let server = recorded(server);
    let hub = server.hub();
    let server = Served::start_on(backend, server).await;
    // A client that keeps reading answers pings (tungstenite pongs as it reads) and stays.
    let mut alive = Client::join(&server, "r").await;
    let reading = tokio::spawn(async move {
        let event = alive.next().await;
        (alive, event)
    });
    let _deaf = never_reading(&server, "/room/r").await;
    let info = first_close(&closes).await;
    assert_eq!((info.code, info.reason.as_str()), (CloseCode::Away, "ping timeout"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = hub.publish(&RoomCommandParams::new("r"), &tick(7)).await.unwrap();
    let (_alive, event) = within("the live client", reading).await.unwrap();
    assert_eq!(event, tick(7));
    assert_eq!(closes.lock().unwrap().len(), 1, "only the deaf peer was closed");
}

async fn idle_connections_are_closed(backend: Backend) {
    let closes = Closes::default();
    let server = Server::with_state(closes.clone()).idle_timeout(Some(Duration::from_millis(200)));
    let server = Served::start_on(backend, recorded(server)).await;
    let mut client = Client::join(&server, "r").await;
    let (_, close) = read_until_close(&mut client.socket).await;
    let close = close.unwrap();
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Away, "idle timeout"));
}

async fn connections_end_when_their_credentials_expire(backend: Backend) {
    let server = RoomCommand::register(Server::new(), |h| {
        room_handler(h.on_connect(|handshake| async move {
            // The "token" says how long it is valid, in milliseconds.
            let valid_for: u64 = handshake
                .query_param("valid_ms")
                .unwrap_or_default()
                .parse()
                .unwrap_or(0);
            handshake.expire_at(std::time::SystemTime::now() + Duration::from_millis(valid_for));
            Ok(())
        }))
    });
    let server = Served::start_on(backend, server).await;
    let mut short = raw_connect(&server, "/room/e?valid_ms=300").await;
    let mut long = raw_connect(&server, "/room/e?valid_ms=60000").await;
    let started = std::time::Instant::now();
    let (_, close) = read_until_close(&mut short).await;
    let close = close.unwrap();
    assert_eq!(
        (close.code, close.reason.as_str()),
        (ws_channels::CLOSE_CREDENTIALS_EXPIRED, "credentials expired")
    );
    assert_eq!(u16::from(close.code), 4001);
    assert!(started.elapsed() < Duration::from_secs(5));
    long.send(Message::text(r#"{"type":"say","text":"still valid"}"#))
        .await
        .unwrap();
    let said: serde_json::Value = loop {
        let event: serde_json::Value = serde_json::from_str(&next_text(&mut long).await).unwrap();
        if event["type"] == "said" {
            break event;
        }
    };
    assert_eq!(said["text"], "still valid");
}

async fn origins_outside_the_allow_list_get_403(backend: Backend) {
    let server = rooms(Server::new().allowed_origins(["https://chat.example"]));
    let server = Served::start_on(backend, server).await;
    assert_eq!(
        status_with(&server, "/room/r", &[("origin", "https://evil.example")]).await,
        403
    );
    assert_eq!(
        status_with(&server, "/room/r", &[("origin", "https://chat.example")]).await,
        101
    );
    assert_eq!(
        status_with(&server, "/room/r", &[("origin", "HTTPS://Chat.EXAMPLE")]).await,
        101,
        "scheme and host compare without regard to case"
    );
    assert_eq!(
        status_with(&server, "/room/r", &[]).await,
        101,
        "non-browser clients send no Origin"
    );
}

#[test]
fn an_allowed_origin_that_is_no_origin_stops_the_server_from_being_built() {
    for bad in [
        "example.com",
        "https://example.com/app",
        "https://user@example.com",
        "null",
    ] {
        let built = std::panic::catch_unwind(|| Server::new().allowed_origins([bad]));
        let panic = built.err().unwrap_or_else(|| panic!("`{bad}` was accepted"));
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains(&format!("`{bad}` is not an origin")), "{message}");
    }
    // What a list may hold: scheme, host, port, a trailing slash.
    let _ = Server::new().allowed_origins([
        "https://example.com",
        "http://[::1]:8080/",
        "HTTPS://Example.com:8443",
        "tauri://localhost",
        "capacitor://localhost",
    ]);
}

async fn cross_site_pages_are_refused_by_default(backend: Backend) {
    let served = Served::start_on(backend, rooms(Server::new())).await;
    let same_host = format!("http://{}", served.addr);
    for (origin, status) in [(same_host.as_str(), 101), ("https://evil.example", 403), ("null", 403)] {
        assert_eq!(
            status_with(&served, "/room/r", &[("origin", origin)]).await,
            status,
            "{origin}"
        );
    }
    assert_eq!(
        status_with(&served, "/room/r", &[]).await,
        101,
        "no Origin: not a browser"
    );
    let open = Served::start_on(backend, rooms(Server::new().allow_any_origin())).await;
    assert_eq!(
        status_with(&open, "/room/r", &[("origin", "https://evil.example")]).await,
        101
    );
}

/// A typed parameter, for the 400 case.
#[channel("counter/<id: u64>")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counter {
    value: u64,
}

async fn routing_and_refusals_match_the_standalone_server(backend: Backend) {
    let server = Counter::register(rooms(Server::new()), |h| {
        h.on_connect(|hs| async move {
            match hs.params().id {
                0 => Err(Reject::unauthorized("zero is not allowed")),
                _ => Ok(()),
            }
        })
    });
    let server = Served::start_on(backend, server).await;
    assert_eq!(handshake_status(&server, "/nowhere").await, 404);
    assert_eq!(handshake_status(&server, "/counter/abc").await, 400);
    assert_eq!(handshake_status(&server, "/counter/0").await, 401);
    assert_eq!(handshake_status(&server, "/counter/7").await, 101);
    assert_eq!(handshake_status(&server, "/room/%E2%9C%93").await, 101);
    let (status, _) = raw_http(
        server.addr,
        "GET /counter/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 426, "a plain GET is told to upgrade");
    let (status, response) = raw_http(
        server.addr,
        "POST /room/r HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405, "another method is refused by the same decision");
    assert!(response.ends_with("WebSocket upgrades use GET"), "{response}");
    if backend == Backend::Axum {
        let (status, body) = raw_http(
            server.addr,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status, 200, "HTTP routes live next to the channels: {body}");
    }
}

/// Binary frames, counted by the handler.
#[channel("blobs/<name>")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Blob {
    size: usize,
}

async fn binary_frames_reach_on_binary(backend: Backend) {
    let server = Blob::register(Server::new(), |h| {
        h.on_binary(|conn, bytes| async move {
            conn.send(&Blob { size: bytes.len() }).await?;
            Ok(())
        })
    });
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/blobs/b").await;
    socket.send(Message::binary(vec![0u8; 300])).await.unwrap();
    assert_eq!(next_text(&mut socket).await, r#"{"size":300}"#);
}

async fn graceful_shutdown_sends_1001_to_all(backend: Backend) {
    let mut server = Served::start_on(backend, rooms(Server::new())).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::join(&server, "r").await);
    }
    let serving = server.begin_shutdown();
    for client in &mut clients {
        let (_, close) = read_until_close(&mut client.socket).await;
        let close = close.unwrap();
        assert_eq!(
            (close.code, close.reason.as_str()),
            (CloseCode::Away, "server shutting down")
        );
    }
    within("the server to finish", serving).await.unwrap().unwrap();
}

async fn metrics_count_connections_and_messages(backend: Backend) {
    let server = rooms(Server::new());
    let metrics = server.metrics();
    let server = Served::start_on(backend, server).await;
    let mut a = Client::join(&server, "m").await;
    let mut b = Client::join(&server, "m").await;
    a.send(serde_json::json!({"type": "say", "text": "1"})).await;
    a.next().await;
    b.next().await;
    // A refusal that reaches the channel router on both backends (axum answers unknown
    // paths itself).
    let (status, _) = raw_http(
        server.addr,
        "GET /room/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 426);
    // Frames are counted once flushed, which can be just after the client has them.
    within("frames to be counted", async {
        while metrics.snapshot().messages_out < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.connections_open, 2);
    assert_eq!(snapshot.connections_total, 2);
    assert_eq!(snapshot.messages_in, 1);
    assert_eq!(snapshot.messages_out, 4, "two welcomes, one broadcast to two");
    assert_eq!(snapshot.handshakes_rejected, 1);
    drop(a);
    within("the close to be counted", async {
        while metrics.snapshot().connections_open > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A channel whose validator panics on one input: the channel's own code, not a handler.
#[channel("fragile/<name>", validate)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fragile {
    text: String,
}

impl ws_channels::Validate for Fragile {
    fn validate(&self) -> Result<(), ws_channels::ValidationError> {
        assert!(self.text != "boom", "the validator panicked on purpose");
        Ok(())
    }
}

async fn a_panicking_validator_closes_1011_and_leaves_nothing_behind(backend: Backend) {
    let closes = Closes::default();
    let server = Fragile::register(Server::with_state(closes.clone()), |h| {
        h.on_close(|conn, info| async move { conn.state().lock().unwrap().push(info) })
    });
    let (hub, metrics) = (server.hub(), server.metrics());
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/fragile/f").await;
    socket.send(Message::text(r#"{"text":"boom"}"#)).await.unwrap();
    let (_, close) = read_until_close(&mut socket).await;
    assert_eq!(close.unwrap().code, CloseCode::Error);
    assert_eq!(first_close(&closes).await.code, CloseCode::Error, "on_close ran");
    assert_eq!(hub.subscribers(&FragileParams::new("f")), 0, "it left its topic");
    assert_eq!(metrics.snapshot().connections_open, 0);
}

/// Sends a large message when a client connects, then a small one.
#[channel("big/<name>", server_only)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Big {
    payload: String,
}

async fn large_server_messages_are_delivered(backend: Backend) {
    // Larger than twice the (incoming) max_message_size: outgoing size is the server's choice.
    let server = Big::register(Server::new().max_message_size(16 * 1024), |h| {
        h.on_open(|conn| async move {
            conn.send(&Big {
                payload: "x".repeat(300 * 1024),
            })
            .await?;
            conn.send(&Big {
                payload: "small".into(),
            })
            .await?;
            Ok(())
        })
    });
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/big/b").await;
    let large: Big = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(large.payload.len(), 300 * 1024);
    let small: Big = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(small.payload, "small");
}

/// Where a handler keeps its connection, as an application would to push later.
#[derive(Default)]
struct Keeper(Mutex<Option<ws_channels::Conn<RoomCommand, Kept>>>);

type Kept = Arc<Keeper>;

async fn sends_fail_once_the_client_has_left(backend: Backend) {
    let kept = Kept::default();
    let closed = Arc::new(tokio::sync::Notify::new());
    let server = RoomCommand::register(Server::with_state(kept.clone()), |h| {
        let closed = closed.clone();
        h.on_open(|conn| async move {
            *conn.state().0.lock().unwrap() = Some(conn.clone());
            Ok(())
        })
        .on_close(move |_, _| {
            let closed = closed.clone();
            async move { closed.notify_one() }
        })
    });
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/room/gone").await;
    within("the connection to open", async {
        while kept.0.lock().unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    socket.close(None).await.unwrap();
    while socket.next().await.is_some() {}
    within("on_close", closed.notified()).await;
    let conn = kept.0.lock().unwrap().take().unwrap();
    assert!(conn.is_closing());
    assert!(
        matches!(conn.send(&tick(1)).await, Err(Error::Closed { .. })),
        "a stored Conn learns the end"
    );
}

async fn a_shutdown_during_on_connect_refuses_the_connection(backend: Backend) {
    let server = RoomCommand::register(Server::new().shutdown_timeout(Duration::from_secs(5)), |h| {
        room_handler(h.on_connect(|_| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        }))
    });
    let metrics = server.metrics();
    let mut server = Served::start_on(backend, server).await;
    let base = server.base();
    let connecting = tokio::spawn(async move {
        match tokio_tungstenite::connect_async(format!("{base}/room/late")).await {
            Ok((mut socket, _)) => {
                // Accepted after all: it must be closed by the shutdown, not left open.
                let (_, close) = read_until_close(&mut socket).await;
                close.map_or(0, |c| u16::from(c.code))
            }
            Err(ws_channels::tungstenite::Error::Http(response)) => response.status().as_u16(),
            Err(_) => 0,
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let serving = server.begin_shutdown();
    let outcome = within("the late connection", connecting).await.unwrap();
    assert!(
        outcome == 503 || outcome == 1001,
        "refused or closed by the shutdown, got {outcome}"
    );
    within("the server to finish", serving).await.unwrap().unwrap();
    // Refused after `on_connect` accepted it: a refusal, never also a connection (it was
    // registered for its 101, but never opened).
    let counted = metrics.snapshot();
    if outcome == 503 {
        assert_eq!(
            (counted.connections_total, counted.handshakes_rejected),
            (0, 1),
            "{counted:?}"
        );
    }
    assert_eq!(counted.connections_open, 0, "{counted:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the shutdown did not wait for a missed connection"
    );
}

async fn slow_but_reading_clients_survive_pings_under_drop_oldest(backend: Backend) {
    let closes = Closes::default();
    let server = Server::with_state(closes.clone())
        .outbound_queue(4)
        .ping_interval(Some(Duration::from_millis(50)));
    let server = Latest::register(server, |h| {
        h.on_close(|conn, info| async move { conn.state().lock().unwrap().push(info) })
    });
    let (hub, metrics) = (server.hub(), server.metrics());
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/latest/busy").await;
    let reading = tokio::spawn(async move {
        // Reading is what answers pings; the reader keeps up as well as it can.
        let mut received = 0u64;
        while let Some(Ok(frame)) = socket.next().await {
            if let Message::Text(text) = frame {
                received += 1;
                if serde_json::from_str::<Latest>(&text).is_ok_and(|latest| latest.seq == u64::MAX) {
                    break;
                }
            }
        }
        (received, socket)
    });
    // Publish faster than the writer drains a 4-message queue, for many ping intervals: the
    // queue overflows constantly, and pings must not be among what drop_oldest drops.
    let params = LatestParams::new("busy");
    let started = std::time::Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_millis(600) {
        let latest = Latest {
            seq,
            padding: String::new(),
        };
        let _ = hub.publish(&params, &latest).await.unwrap();
        seq += 1;
        if seq % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // The newest message: drop_oldest keeps it, so it ends the reader.
    let last = Latest {
        seq: u64::MAX,
        padding: String::new(),
    };
    let _ = hub.publish(&params, &last).await.unwrap();
    let (received, _still_open) = within("the reader", reading).await.unwrap();
    assert!(received > 0);
    assert!(metrics.snapshot().dropped > 0, "the queue did overflow");
    assert!(
        closes.lock().unwrap().is_empty(),
        "closed: {:?}",
        closes.lock().unwrap()
    );
}

async fn an_on_connect_that_does_not_decide_in_time_gets_408(backend: Backend) {
    let server = RoomCommand::register(Server::new().handshake_timeout(Duration::from_millis(200)), |h| {
        room_handler(h.on_connect(|_| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }))
    });
    let server = Served::start_on(backend, server).await;
    let started = std::time::Instant::now();
    assert_eq!(handshake_status(&server, "/room/slow").await, 408);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at the handshake timeout"
    );
}

async fn a_handle_taken_early_sees_a_later_shutdown_timeout(backend: Backend) {
    let server = Server::new();
    let handle = server.handle();
    // Set after the handle was taken: the handle must honour it.
    let server = RoomCommand::register(server.shutdown_timeout(Duration::from_millis(200)), |h| {
        room_handler(h).on_open(|_| async {
            // A handler that never returns holds its connection past any graceful close.
            std::future::pending::<()>().await;
            Ok(())
        })
    });
    let _server = Served::start_on(backend, server).await;
    let _client = raw_connect(&_server, "/room/stuck").await;
    let started = std::time::Instant::now();
    within("the shutdown", handle.shutdown()).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the shutdown waited {:?}, not the 200 ms set after the handle was taken",
        started.elapsed()
    );
}

async fn callbacks_set_before_on_connect_still_run(backend: Backend) {
    let opened = Arc::new(AtomicUsize::new(0));
    let seen = opened.clone();
    let server = RoomCommand::register(Server::new(), move |h| {
        let seen = seen.clone();
        h.on_open(move |conn| {
            let seen = seen.clone();
            async move {
                // Written before `on_connect`: sees the connection without its data.
                let () = conn.data();
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .on_connect(|handshake| async move { Ok(handshake.query_param("name").unwrap_or_default()) })
        .on_message(|conn, _| async move {
            conn.send(&RoomEvent::Said {
                from: conn.id(),
                text: conn.data().clone(),
            })
            .await?;
            Ok(())
        })
    });
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/room/x?name=ann").await;
    socket
        .send(Message::text(r#"{"type":"say","text":"hi"}"#))
        .await
        .unwrap();
    let said: serde_json::Value = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(said["text"], "ann", "callbacks after on_connect see its data");
    assert_eq!(opened.load(Ordering::SeqCst), 1, "on_open set before on_connect ran");
}

async fn a_flood_of_bad_or_excess_messages_gets_replies_and_stays_connected(backend: Backend) {
    // The chat example's settings: a rate limit that replies, and `on_invalid = reply`.
    let limit = RateLimit::per_second(5).burst(10).on_exceed(RateLimitAction::Reply);
    let server = rooms(Server::new().rate_limit(limit));
    let metrics = server.metrics();
    let server = Served::start_on(backend, server).await;
    let mut client = Client::join(&server, "flood").await;
    // Pipelined: all 600 frames are written before a single reply is read.
    for i in 0..300 {
        client
            .send(serde_json::json!({"type": "say", "text": i.to_string()}))
            .await;
        client.socket.send(Message::text("not json")).await.unwrap();
    }
    let mut replies = 0;
    let mut errors = 0;
    // Whatever was answered arrives; then the connection is still usable.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client
        .send(serde_json::json!({"type": "say", "text": "still here"}))
        .await;
    loop {
        match client.next().await {
            RoomEvent::Said { text, .. } if text == "still here" => break,
            RoomEvent::Said { .. } => replies += 1,
            RoomEvent::Error { .. } => errors += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // The burst of 10 was 5 `say`s (answered) and 5 bad frames (error replies); the other 590
    // were over the limit: one error reply, the rest counted.
    assert_eq!(replies, 5, "the burst was served");
    assert!(errors >= 6, "the bad frames and the flood were told ({errors})");
    let snapshot = metrics.snapshot();
    assert_eq!(
        snapshot.rate_limited, 590,
        "{snapshot:?} replies {replies} errors {errors}"
    );
    assert_eq!(
        snapshot.lag_disconnects, 0,
        "error replies never overflow the sender's queue"
    );
    assert_eq!(
        errors as u64 + snapshot.error_replies_dropped,
        595,
        "every refused message was answered or counted"
    );
}

async fn outgoing_messages_over_the_limit_are_refused_to_the_sender(backend: Backend) {
    let server = Big::register(Server::new().max_outgoing_message_size(64 * 1024), |h| {
        h.on_open(|conn| async move {
            let big = Big {
                payload: "x".repeat(100 * 1024),
            };
            let outcome = match conn.send(&big).await {
                Err(Error::OutgoingTooLarge { size, max }) => format!("refused {size} > {max}"),
                other => format!("{other:?}"),
            };
            let published = conn.broadcast(&big).await.map_err(|e| e.to_string());
            conn.send(&Big {
                payload: format!("{outcome}; {published:?}"),
            })
            .await?;
            Ok(())
        })
    });
    let server = Served::start_on(backend, server).await;
    let mut socket = raw_connect(&server, "/big/b").await;
    let told: Big = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(
        told.payload,
        "refused 102414 > 65536; Err(\"outgoing message of 102414 bytes is larger than the limit of 65536 bytes\")"
    );
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn a_ping_flood_from_a_client_that_never_reads_stays_bounded(backend: Backend) {
    // The bound on owed pongs is the server's own, whatever the largest message it may send
    // (the limit once documented as bounding the write buffer): set far above the flood.
    let server = Served::start_on(backend, rooms(Server::new().max_outgoing_message_size(64 << 20))).await;
    let mut flooder = raw_connect(&server, "/room/flood").await;
    let before = rss_kib();
    // 200 000 pings of the largest payload (125 bytes), never reading a pong: 25 MB of pongs
    // owed, far past what the kernel's socket buffers absorb. Each would have stayed in the
    // server's write buffer.
    let payload = ws_channels::tungstenite::Bytes::from(vec![b'p'; 125]);
    let pings = futures_util::stream::iter((0..200_000).map(|_| Ok(Message::Ping(payload.clone()))));
    let mut pings = std::pin::pin!(pings);
    within("the flood", flooder.send_all(&mut pings)).await.unwrap();
    let grown = rss_kib().saturating_sub(before);
    // Everyone else is served, and so is the flooder once it reads.
    let mut other = Client::join(&server, "flood").await;
    other
        .send(serde_json::json!({"type": "say", "text": "still here"}))
        .await;
    assert_eq!(other.next().await, said(other.id, "still here"));
    assert!(grown < 24 * 1024, "memory grew by {grown} KiB during the flood");
}

async fn timers_and_shutdown_keep_running_while_a_handler_awaits(backend: Backend) {
    let server = RoomCommand::register(Server::new().close_timeout(Duration::from_millis(300)), |h| {
        h.on_connect(|handshake| async move {
            if handshake.query_param("expiring").is_some() {
                handshake.expire_at(std::time::SystemTime::now() + Duration::from_millis(200));
            }
            Ok(())
        })
        .on_message(|_, _| async {
            // A handler that takes far longer than the credentials last.
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        })
    });
    let mut served = Served::start_on(backend, server).await;
    let mut expiring = raw_connect(&served, "/room/busy?expiring=1").await;
    let mut busy = raw_connect(&served, "/room/busy").await;
    for socket in [&mut expiring, &mut busy] {
        socket
            .send(Message::text(r#"{"type":"say","text":"work"}"#))
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    let (_, close) = read_until_close(&mut expiring).await;
    assert_eq!(close.map(|c| c.code), Some(ws_channels::CLOSE_CREDENTIALS_EXPIRED));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "expired while its handler slept"
    );
    // A shutdown reaches a connection whose handler is still running.
    let serving = served.begin_shutdown();
    let (_, close) = read_until_close(&mut busy).await;
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Away));
    within("the server to finish", serving).await.unwrap().unwrap();
}

mod first {
    /// A channel named `dup`.
    #[ws_channels::channel("first/<id>", name = "dup")]
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub(crate) struct Chat;
}

mod second {
    /// Another channel named `dup`, at another address.
    #[ws_channels::channel("second/<id>", name = "dup")]
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub(crate) struct Chat;
}

/// Topics are keyed by channel name, on every node: two channels with one name would mix.
#[test]
#[should_panic(
    expected = "cannot register channel `behaviour::second::Chat`: channel `behaviour::first::Chat` has the same name `dup`"
)]
fn two_channels_with_one_name_are_refused_at_startup() {
    let server = first::Chat::register(Server::new(), |h| h);
    let _ = second::Chat::register(server, |h| h);
}
