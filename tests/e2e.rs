//! End-to-end tests over real loopback sockets: the seed 000 scenario, routing and parameters,
//! handshake refusals, and the documented outcome of every kind of bad input — always with a
//! second connection proving the server keeps serving everyone else.

// Test helpers too report failure by panicking.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use ws_channels::tungstenite::Message;
use ws_channels::{
    Channel, Client, CloseCode, ConnectionState, Error, ErrorReply, Event, Params, Reject, Report, Server, Validate,
    ValidationError, channel, connect,
};
use ws_channels_tests::{Served, handshake_status, next_text, raw_connect, raw_http, read_until_close, within};

/// Seed 000's message: camelCase JSON, no envelope.
#[channel("user/events/<userId>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserSignedUp {
    user_id: String,
    email: String,
}

/// Replies to the sender with the same user id and `updated@example.com`, as seed 000 does.
fn user_service() -> Server {
    UserSignedUp::register(Server::new(), |h| {
        h.on_message(|conn, msg| async move {
            conn.send(&UserSignedUp {
                user_id: msg.user_id,
                email: "updated@example.com".into(),
            })
            .await?;
            Ok(())
        })
    })
}

#[tokio::test]
async fn seed_000_publish_register_reply_subscribe() {
    let server = Served::start(user_service()).await;
    let params = UserSignedUpParams::new("user123");
    let (tx, mut rx) = within("connect", connect(&server.base(), &params)).await.unwrap();
    tx.send(&UserSignedUp {
        user_id: "user123".into(),
        email: "user@example.com".into(),
    })
    .await
    .unwrap();
    let reply = within("reply", rx.next()).await.expect("a reply").unwrap();
    assert_eq!(
        reply.into_message().expect("a message"),
        UserSignedUp {
            user_id: "user123".into(),
            email: "updated@example.com".into()
        }
    );
}

#[tokio::test]
async fn the_wire_format_is_exactly_the_seed_payload() {
    let server = Served::start(user_service()).await;
    let mut socket = raw_connect(&server, "/user/events/user123").await;
    socket
        .send(Message::text(r#"{"userId":"user123","email":"user@example.com"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"userId":"user123","email":"updated@example.com"}"#
    );
}

/// Two parameters, one typed.
#[channel("user/events/<userId>/<eventType>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserEvent {
    note: String,
}

#[tokio::test]
async fn two_parameters_are_extracted_in_order() {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let server = UserEvent::register(Server::new(), move |h| {
        let seen_tx = seen_tx.clone();
        h.on_connect(move |hs| {
            let seen_tx = seen_tx.clone();
            async move {
                let _ = seen_tx.send(hs.params().clone());
                Ok(())
            }
        })
        .on_message(|conn, _msg| async move {
            let p = conn.params();
            conn.send(&UserEvent {
                note: format!("{}:{}", p.user_id, p.event_type),
            })
            .await?;
            Ok(())
        })
    });
    let server = Served::start(server).await;
    let (tx, mut rx) = connect(&server.base(), &UserEventParams::new("123", "signup"))
        .await
        .unwrap();
    let seen = within("on_connect", seen_rx.recv()).await.unwrap();
    assert_eq!(seen, UserEventParams::new("123", "signup"));
    tx.send(&UserEvent { note: "hi".into() }).await.unwrap();
    assert_eq!(
        within("reply", rx.next())
            .await
            .unwrap()
            .unwrap()
            .into_message()
            .unwrap()
            .note,
        "123:signup"
    );
}

#[tokio::test]
async fn percent_encoded_parameters_are_decoded() {
    let server = Served::start(UserEvent::register(Server::new(), |h| {
        h.on_message(|conn, _msg| async move {
            let p = conn.params();
            conn.send(&UserEvent {
                note: format!("{}|{}", p.user_id, p.event_type),
            })
            .await?;
            Ok(())
        })
    }))
    .await;
    let params = UserEventParams::new("Jörg K/1", "50%?#");
    assert_eq!(params.to_string(), "user/events/J%C3%B6rg%20K%2F1/50%25%3F%23");
    let (tx, mut rx) = connect(&server.base(), &params).await.unwrap();
    tx.send(&UserEvent { note: String::new() }).await.unwrap();
    assert_eq!(
        within("reply", rx.next())
            .await
            .unwrap()
            .unwrap()
            .into_message()
            .unwrap()
            .note,
        "Jörg K/1|50%?#"
    );
}

/// A typed parameter: a path that does not parse is refused with 400.
#[channel("counters/<id: u64>")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counter {
    value: u64,
}

#[tokio::test]
async fn unknown_paths_get_404_and_bad_parameters_400_before_the_upgrade() {
    let server = Server::new();
    let server = Counter::register(server, |h| h);
    let server = Served::start(UserSignedUp::register(server, |h| h)).await;
    assert_eq!(handshake_status(&server, "/nowhere").await, 404);
    assert_eq!(handshake_status(&server, "/user/events").await, 404);
    assert_eq!(handshake_status(&server, "/user/events/a/b").await, 404);
    assert_eq!(handshake_status(&server, "/counters/abc").await, 400);
    assert_eq!(handshake_status(&server, "/counters/%FF").await, 400);
    assert_eq!(handshake_status(&server, "/counters/7").await, 101);
    // The typed client sees a refusal as a typed error.
    match connect(&format!("{}/nowhere", server.base()), &UserSignedUpParams::new("u")).await {
        Err(Error::Rejected { status: 404, .. }) => {}
        other => panic!("expected a 404 rejection, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn plain_http_is_told_to_upgrade_and_garbage_is_a_bad_request() {
    let server = Served::start(user_service()).await;
    let (status, response) = raw_http(server.addr, "GET /user/events/u HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 426, "{response}");
    assert!(response.to_ascii_lowercase().contains("upgrade: websocket"));
    let (status, _) = raw_http(server.addr, "POST /user/events/u HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 405);
    let (status, _) = raw_http(server.addr, "GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 404);
    let (status, _) = raw_http(server.addr, "\u{1}\u{2} garbage\r\n\r\n").await;
    assert_eq!(status, 400);
    // The server is still fine.
    let (tx, mut rx) = connect(&server.base(), &UserSignedUpParams::new("u")).await.unwrap();
    tx.send(&UserSignedUp {
        user_id: "u".into(),
        email: "e".into(),
    })
    .await
    .unwrap();
    assert!(within("reply", rx.next()).await.unwrap().is_ok());
}

/// Who a connection belongs to, decided by `on_connect`.
#[derive(Debug)]
struct User {
    name: String,
}

/// Only `?token=…` holders may connect, and only to their own address.
fn guarded_service() -> Server<&'static str> {
    UserSignedUp::register(Server::with_state("s3cret"), |h| {
        h.on_connect(|hs| async move {
            let token = hs
                .query_param("token")
                .ok_or_else(|| Reject::unauthorized("missing token"))?;
            let (user, secret) = token
                .split_once(':')
                .ok_or_else(|| Reject::unauthorized("malformed token"))?;
            if secret != *hs.state() {
                return Err(Reject::unauthorized("bad token"));
            }
            if user != hs.params().user_id {
                return Err(Reject::forbidden("not your address"));
            }
            Ok(User { name: user.to_owned() })
        })
        .on_message(|conn, msg| async move {
            conn.send(&UserSignedUp {
                user_id: conn.data().name.clone(),
                email: msg.email,
            })
            .await?;
            Ok(())
        })
    })
}

#[tokio::test]
async fn on_connect_refuses_with_401_or_403_and_its_data_reaches_handlers() {
    let server = Served::start(guarded_service()).await;
    assert_eq!(handshake_status(&server, "/user/events/ann").await, 401);
    assert_eq!(handshake_status(&server, "/user/events/ann?token=ann:wrong").await, 401);
    assert_eq!(
        handshake_status(&server, "/user/events/ann?token=bob:s3cret").await,
        403
    );
    let mut socket = raw_connect(&server, "/user/events/ann?token=ann:s3cret").await;
    socket
        .send(Message::text(r#"{"userId":"x","email":"e@x"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut socket).await, r#"{"userId":"ann","email":"e@x"}"#);
    match connect(&server.base(), &UserSignedUpParams::new("ann")).await {
        Err(Error::Rejected { status: 401, body }) => assert_eq!(body, "missing token"),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
}

/// Echoes, counts errors and remembers close codes: for the bad-input tests.
#[channel("echo/<room>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Echo {
    Say { text: String },
    Panic,
    Fail,
}

#[derive(Default)]
struct Observed {
    errors: AtomicUsize,
    closes: std::sync::Mutex<Vec<(CloseCode, bool)>>,
}

fn echo_service(observed: Arc<Observed>) -> Server<Arc<Observed>> {
    Echo::register(Server::with_state(observed).max_message_size(1024), |h| {
        h.on_message(|conn, msg| async move {
            match msg {
                Echo::Say { .. } => conn.send(&msg).await?,
                Echo::Panic => panic!("the handler panicked on purpose"),
                Echo::Fail => return Err("the handler failed on purpose".into()),
            }
            Ok(())
        })
        .on_error(|conn, _error| {
            conn.state().errors.fetch_add(1, Ordering::SeqCst);
        })
        .on_close(|conn, info| async move {
            conn.state().closes.lock().unwrap().push((info.code, info.by_server));
        })
    })
}

/// Sends `frame` on one connection, expects it closed with `code`, and checks that a second
/// connection opened before it keeps working.
async fn bad_input_closes_only_its_connection(frame: Message, code: CloseCode) -> Arc<Observed> {
    let observed = Arc::new(Observed::default());
    let server = Served::start(echo_service(observed.clone())).await;
    let mut bystander = raw_connect(&server, "/echo/lobby").await;
    let mut culprit = raw_connect(&server, "/echo/lobby").await;
    culprit.send(frame).await.unwrap();
    let (texts, close) = read_until_close(&mut culprit).await;
    assert!(texts.is_empty(), "no reply before the close: {texts:?}");
    assert_eq!(close.expect("a close frame").code, code);
    bystander
        .send(Message::text(r#"{"type":"say","text":"still here"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut bystander).await, r#"{"type":"say","text":"still here"}"#);
    within("on_close of the culprit", async {
        while observed.closes.lock().unwrap().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(observed.closes.lock().unwrap()[0], (code, true));
    assert_eq!(observed.errors.load(Ordering::SeqCst), 1);
    observed
}

#[tokio::test]
async fn malformed_json_closes_1007() {
    bad_input_closes_only_its_connection(Message::text("{not json"), CloseCode::Invalid).await;
}

#[tokio::test]
async fn a_wrong_shape_closes_1007() {
    bad_input_closes_only_its_connection(Message::text(r#"{"type":"shout","text":1}"#), CloseCode::Invalid).await;
}

#[tokio::test]
async fn a_binary_frame_on_a_json_channel_closes_1003() {
    // RFC 6455 §7.4.1: 1003 is for data of a type the endpoint cannot accept.
    bad_input_closes_only_its_connection(Message::binary(b"{}".to_vec()), CloseCode::Unsupported).await;
}

#[tokio::test]
async fn a_panicking_handler_closes_1011() {
    bad_input_closes_only_its_connection(Message::text(r#"{"type":"panic"}"#), CloseCode::Error).await;
}

#[tokio::test]
async fn a_failing_handler_closes_1011() {
    bad_input_closes_only_its_connection(Message::text(r#"{"type":"fail"}"#), CloseCode::Error).await;
}

#[tokio::test]
async fn an_oversize_message_closes_1009() {
    let big = format!(r#"{{"type":"say","text":"{}"}}"#, "x".repeat(4096));
    bad_input_closes_only_its_connection(Message::text(big), CloseCode::Size).await;
}

/// A validated channel whose invalid input closes with 1008 (the default policy).
#[channel("validated/<room>", validate)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Said {
    text: String,
}

impl Validate for Said {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.text.trim().is_empty() {
            return Err(ValidationError::field("text", "must not be blank"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn failed_validation_closes_1008_and_other_connections_go_on() {
    let server = Said::register(Server::new(), |h| {
        h.on_message(|conn, msg| async move {
            conn.send(&msg).await?;
            Ok(())
        })
    });
    let server = Served::start(server).await;
    let mut bystander = raw_connect(&server, "/validated/r").await;
    let mut culprit = raw_connect(&server, "/validated/r").await;
    culprit.send(Message::text(r#"{"text":"  "}"#)).await.unwrap();
    let (_, close) = read_until_close(&mut culprit).await;
    let close = close.expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(close.reason.contains("`text`: must not be blank"), "{}", close.reason);
    bystander.send(Message::text(r#"{"text":"ok"}"#)).await.unwrap();
    assert_eq!(next_text(&mut bystander).await, r#"{"text":"ok"}"#);
}

#[tokio::test]
async fn validation_also_runs_before_sending() {
    let server = Served::start(Said::register(Server::new(), |h| h)).await;
    let (tx, _rx) = connect(&server.base(), &SaidParams::new("r")).await.unwrap();
    match tx.send(&Said { text: " ".into() }).await {
        Err(Error::Validation { source, .. }) => assert_eq!(source.field_name(), Some("text")),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// A channel that answers bad input with a typed error message and stays open.
#[channel("forgiving/<room>", server = Reply, validate, on_invalid = reply)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ask {
    question: String,
}

/// What the forgiving channel's server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply {
    Answer { text: String },
    Error { message: String },
}

impl Validate for Ask {
    fn validate(&self) -> Result<(), ValidationError> {
        match self.question.ends_with('?') {
            true => Ok(()),
            false => Err(ValidationError::field("question", "must end with `?`")),
        }
    }
}

impl Validate for Reply {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl ErrorReply for Reply {
    fn error_reply(error: &Error) -> Self {
        Reply::Error {
            message: Report(error).to_string(),
        }
    }
}

#[tokio::test]
async fn on_invalid_reply_answers_with_an_error_message_and_stays_open() {
    let server = Ask::register(Server::new(), |h| {
        h.on_message(|conn, msg| async move {
            conn.send(&Reply::Answer {
                text: format!("you asked: {}", msg.question),
            })
            .await?;
            Ok(())
        })
    });
    let server = Served::start(server).await;
    // The low-level halves over a raw socket: a typed client cannot send nonsense.
    let (mut raw, stream) = raw_connect(&server, "/forgiving/r").await.split();
    let mut rx = Ask::subscribe(stream);
    raw.send(Message::text("nonsense")).await.unwrap();
    match within("error reply", rx.next()).await.unwrap().unwrap() {
        Reply::Error { message } => assert!(message.contains("cannot decode"), "{message}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    raw.send(Message::text(r#"{"question":"no question mark"}"#))
        .await
        .unwrap();
    match within("error reply", rx.next()).await.unwrap().unwrap() {
        Reply::Error { message } => assert!(message.contains("must end with `?`"), "{message}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    let mut tx = ws_channels::Publisher::<Ask, _>::new(raw);
    tx.send(&Ask {
        question: "still open?".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        within("answer", rx.next()).await.unwrap().unwrap(),
        Reply::Answer {
            text: "you asked: still open?".into()
        }
    );
}

/// Pushed by the server only.
#[channel("notifications/<userId: u64>", server_only)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Notification {
    title: String,
}

#[tokio::test]
async fn server_only_channels_push_and_refuse_client_frames() {
    let server = Notification::register(Server::new(), |h| {
        h.on_open(|conn| async move {
            conn.send(&Notification {
                title: format!("welcome {}", conn.params().user_id),
            })
            .await?;
            Ok(())
        })
    });
    let server = Served::start(server).await;
    let (mut raw, stream) = raw_connect(&server, "/notifications/42").await.split();
    let mut rx = Notification::subscribe(stream);
    assert_eq!(
        within("push", rx.next()).await.unwrap().unwrap(),
        Notification {
            title: "welcome 42".into()
        }
    );
    // A typed client cannot publish on a server-only channel: a raw one tries.
    raw.send(Message::text(r#"{"title":"from a client"}"#)).await.unwrap();
    assert!(within("end", rx.next()).await.is_none());
    let close = rx.close_frame().expect("a close frame");
    assert_eq!(close.code, CloseCode::Invalid);
    assert!(close.reason.contains("server_only"), "{}", close.reason);
}

#[tokio::test]
async fn the_client_closing_is_reported_to_on_close() {
    let observed = Arc::new(Observed::default());
    let server = Served::start(echo_service(observed.clone())).await;
    let (tx, mut rx) = connect(&server.base(), &EchoParams::new("x")).await.unwrap();
    let closed = within("close", tx.close_with(CloseCode::Normal, "bye")).await;
    assert!(
        matches!(
            closed,
            ConnectionState::Closed {
                code: Some(CloseCode::Normal),
                error: None,
                ..
            }
        ),
        "{closed:?}"
    );
    assert!(within("end", rx.next()).await.is_none());
    within("on_close", async {
        while observed.closes.lock().unwrap().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(observed.closes.lock().unwrap()[0], (CloseCode::Normal, false));
}

#[tokio::test]
async fn graceful_shutdown_sends_1001_to_every_connection() {
    let observed = Arc::new(Observed::default());
    let mut server = Served::start(echo_service(observed)).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(raw_connect(&server, "/echo/lobby").await);
    }
    // Every connection is live before the shutdown.
    for socket in &mut sockets {
        socket
            .send(Message::text(r#"{"type":"say","text":"hi"}"#))
            .await
            .unwrap();
        next_text(socket).await;
    }
    let serving = server.begin_shutdown();
    for socket in &mut sockets {
        let (_, close) = read_until_close(socket).await;
        assert_eq!(close.expect("a close frame").code, CloseCode::Away);
    }
    within("the server to finish", serving).await.unwrap().unwrap();
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn a_client_subscription_reports_bad_frames_and_goes_on() {
    // A raw tokio-tungstenite server sends what ours never would.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        for frame in [
            Message::text("{broken"),
            Message::text(r#"{"userId":1}"#),
            Message::binary(vec![1, 2, 3]),
            Message::Ping(vec![9].into()),
            Message::text(r#"{"userId":"u","email":"ok@example.com"}"#),
        ] {
            ws.send(frame).await.unwrap();
        }
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    });
    // The raw server accepts one socket: no subprotocol offer, which it would not answer
    // (the client would ask again without one: `tests/client.rs` covers that).
    let (_tx, rx) = Client::builder(&format!("ws://{addr}"), &UserSignedUpParams::new("u"))
        .without_channel_subprotocol()
        .connect()
        .await
        .unwrap();
    let items: Vec<_> = within("all frames", rx.collect::<Vec<_>>()).await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(matches!(items[0], Err(Error::Decode { .. })));
    assert!(matches!(items[1], Err(Error::Decode { .. })));
    assert!(
        matches!(items[2], Ok(Event::Binary(_))),
        "side-band bytes on a JSON channel"
    );
    match &items[3] {
        Ok(Event::Message(message)) => assert_eq!(message.email, "ok@example.com"),
        other => panic!("expected a message, got {other:?}"),
    }
    within("peer", peer).await.unwrap();
}

#[tokio::test]
async fn publish_and_subscribe_work_over_an_in_memory_transport() {
    // Any Sink/Stream of tungstenite messages will do: here, a pair of channels.
    let (sink, mut wire) = futures_channel::mpsc::unbounded::<Message>();
    let mut sink = sink.sink_map_err(|_| ws_channels::tungstenite::Error::ConnectionClosed);
    UserSignedUp::publish(
        &mut sink,
        &UserSignedUp {
            user_id: "m".into(),
            email: "e".into(),
        },
    )
    .await
    .unwrap();
    let frame = wire.next().await.unwrap();
    assert_eq!(frame, Message::text(r#"{"userId":"m","email":"e"}"#));
    let incoming = futures_util::stream::iter(vec![Ok(frame), Ok(Message::text("[]"))]);
    let got: Vec<_> = UserSignedUp::subscribe(incoming).collect().await;
    assert_eq!(got[0].as_ref().unwrap().user_id, "m");
    assert!(matches!(got[1], Err(Error::Decode { .. })));
}

#[tokio::test]
async fn params_round_trip_through_display_and_from_str() {
    let params = UserEventParams::new("a b", "c/d");
    let parsed: UserEventParams = params.to_string().parse().unwrap();
    assert_eq!(parsed, params);
    assert_eq!(params.url("ws://h:1/"), "ws://h:1/user/events/a%20b/c%2Fd");
    assert_eq!(
        <UserEventParams as Params>::TEMPLATE.address(),
        "user/events/{userId}/{eventType}"
    );
    let err = "counters/-1".parse::<CounterParams>().unwrap_err();
    assert!(err.to_string().contains("parameter `id`"), "{err}");
}

/// Records how each connection ended, for the tests of peers that misbehave at the TCP level.
fn recording_service(
    closes: Arc<std::sync::Mutex<Vec<ws_channels::CloseInfo>>>,
) -> Server<Arc<std::sync::Mutex<Vec<ws_channels::CloseInfo>>>> {
    Echo::register(
        Server::with_state(closes)
            .close_timeout(std::time::Duration::from_millis(200))
            .handshake_timeout(std::time::Duration::from_millis(300)),
        |h| {
            h.on_message(|conn, msg| async move {
                if let Echo::Fail = msg {
                    conn.close(CloseCode::Normal, "as you wish");
                }
                Ok(())
            })
            .on_close(|conn, info| async move {
                conn.state().lock().unwrap().push(info);
            })
        },
    )
}

async fn wait_for_close(closes: &std::sync::Mutex<Vec<ws_channels::CloseInfo>>) -> ws_channels::CloseInfo {
    within("on_close", async {
        loop {
            if let Some(info) = closes.lock().unwrap().first() {
                return info.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_peer_that_never_answers_the_close_is_dropped_after_the_close_timeout() {
    let closes = Arc::default();
    let server = Served::start(recording_service(Arc::clone(&closes))).await;
    let mut socket = raw_connect(&server, "/echo/r").await;
    socket.send(Message::text(r#"{"type":"fail"}"#)).await.unwrap();
    // Read the close frame but never send the reply (stop reading).
    loop {
        match within("close frame", socket.next()).await {
            Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    let info = wait_for_close(&closes).await;
    assert_eq!(
        (info.code, info.reason.as_str(), info.by_server),
        (CloseCode::Normal, "as you wish", true)
    );
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let server = Served::start(recording_service(Arc::default())).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Half a request line, then silence: the server must hang up by itself.
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET /echo/r HTT")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = within("the server hanging up", tcp.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok_and(|n| n == 0),
        "no response is sent to an incomplete request"
    );
}

#[tokio::test]
async fn a_peer_vanishing_mid_message_is_an_abnormal_close_and_harms_no_one() {
    use tokio::io::AsyncWriteExt;
    let closes = Arc::default();
    let server = Served::start(recording_service(Arc::clone(&closes))).await;
    let mut bystander = raw_connect(&server, "/echo/r").await;
    let socket = raw_connect(&server, "/echo/r").await;
    let tokio_tungstenite::MaybeTlsStream::Plain(mut tcp) = socket.into_inner() else {
        unreachable!("plain ws:// connection")
    };
    // A masked text frame header announcing 100 bytes, then only 3 of them.
    tcp.write_all(&[0x81, 0x80 | 100, 1, 2, 3, 4, b'a', b'b', b'c'])
        .await
        .unwrap();
    tcp.shutdown().await.unwrap();
    drop(tcp);
    let info = wait_for_close(&closes).await;
    assert_eq!((info.code, info.by_server), (CloseCode::Abnormal, false));
    bystander
        .send(Message::text(r#"{"type":"say","text":"x"}"#))
        .await
        .unwrap();
    bystander.send(Message::text(r#"{"type":"fail"}"#)).await.unwrap();
    let (_, close) = read_until_close(&mut bystander).await;
    assert_eq!(close.unwrap().code, CloseCode::Normal);
}

#[tokio::test]
async fn a_panicking_on_connect_is_a_500() {
    let server = UserSignedUp::register(Server::new(), |h| {
        h.on_connect(|hs| async move {
            if hs.params().user_id == "boom" {
                panic!("on_connect panicked on purpose");
            }
            Ok(())
        })
    });
    let server = Served::start(server).await;
    assert_eq!(handshake_status(&server, "/user/events/boom").await, 500);
    assert_eq!(handshake_status(&server, "/user/events/fine").await, 101);
}

#[tokio::test]
async fn sockets_stuck_in_their_handshake_are_capped() {
    let server = Served::start(user_service().max_pending_handshakes(2)).await;
    // Two clients connect and never send a request: they hold both handshake slots.
    let silent = [
        tokio::net::TcpStream::connect(server.addr).await.unwrap(),
        tokio::net::TcpStream::connect(server.addr).await.unwrap(),
    ];
    let url = format!("{}/user/events/u", server.base());
    let refused = within("the third handshake", tokio_tungstenite::connect_async(url.as_str())).await;
    assert!(refused.is_err(), "a third socket is closed at once, without a response");
    // One leaves: its slot is free again.
    drop(silent);
    within("a slot to be free", async {
        loop {
            if tokio_tungstenite::connect_async(url.as_str()).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A TCP connection to `to` from the loopback address `from` (the whole 127.0.0.0/8 range is
/// local), so tests can be several clients.
async fn tcp_from(from: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Opens a WebSocket to `path` from the loopback address `from`, with extra headers.
async fn handshake_from(
    from: &str,
    server: &Served,
    path: &str,
    headers: &[(&'static str, &'static str)],
) -> Result<u16, ws_channels::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}{path}", server.base()).into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let tcp = tcp_from(from, server.addr).await;
    let (_socket, response) = within("a handshake", tokio_tungstenite::client_async(request, tcp)).await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn a_loopback_peer_is_not_held_to_the_per_ip_handshake_cap() {
    // The cap itself is unit-tested (`PendingHandshakes`): every address a test can connect
    // from is loopback, which is exempt, as a proxy on the same host would be.
    let server = Served::start(user_service().max_pending_handshakes_per_ip(2)).await;
    let _silent = [
        tcp_from("127.0.0.1", server.addr).await,
        tcp_from("127.0.0.1", server.addr).await,
        tcp_from("127.0.0.1", server.addr).await,
    ];
    assert_eq!(
        handshake_from("127.0.0.1", &server, "/user/events/u", &[])
            .await
            .unwrap(),
        101,
        "three silent sockets from a loopback peer do not lock it out"
    );
}

#[tokio::test]
async fn the_client_address_comes_from_trusted_proxies_only() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = UserSignedUp::register(
        Server::new().trusted_proxies(ws_channels::ProxyHeader::XForwardedFor, ["127.0.0.1".parse().unwrap()]),
        |h| {
            h.on_connect(move |handshake| {
                record
                    .lock()
                    .unwrap()
                    .push(handshake.remote_addr().map(|a| a.ip().to_string()));
                async { Ok(()) }
            })
        },
    );
    let server = Served::start(server).await;
    let forwarded = [("x-forwarded-for", "198.51.100.7")];
    handshake_from("127.0.0.1", &server, "/user/events/u", &forwarded)
        .await
        .unwrap();
    handshake_from("127.0.0.2", &server, "/user/events/u", &forwarded)
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [Some("198.51.100.7".to_owned()), Some("127.0.0.2".to_owned())],
        "believed from the proxy, ignored from anyone else"
    );
}

#[tokio::test]
async fn the_in_memory_test_server_runs_the_same_checks_and_handlers() {
    let test = ws_channels::TestServer::new(guarded_service());
    let params = UserSignedUpParams::new("ann");
    match test.connect(&params).await {
        Err(Error::Rejected { status: 401, body }) => assert_eq!(body, "missing token"),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    match test.request(&params).query("token=bob:s3cret").connect().await {
        Err(Error::Rejected { status: 403, .. }) => {}
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let (mut tx, mut rx) = test.request(&params).query("token=ann:s3cret").connect().await.unwrap();
    let message = UserSignedUp {
        user_id: "x".into(),
        email: "e@x".into(),
    };
    tx.send(&message).await.unwrap();
    let reply = within("the reply", rx.next()).await.unwrap().unwrap();
    assert_eq!(reply.user_id, "ann", "on_connect's data reached the handler");
    // The hub reaches in-memory connections as it reaches sockets.
    let published = test.hub().publish(&params, &message).await.unwrap();
    assert_eq!(published.local, 1);
    assert_eq!(within("the publish", rx.next()).await.unwrap().unwrap(), message);
    assert_eq!(test.metrics().snapshot().connections_open, 1);
    // And a shutdown closes them with 1001 (the client reads meanwhile, to answer the close).
    let handle = test.handle();
    let shutting_down = tokio::spawn(async move { handle.shutdown().await });
    assert!(within("the end", rx.next()).await.is_none());
    assert_eq!(rx.close_code(), Some(CloseCode::Away));
    within("the shutdown", shutting_down).await.unwrap();
}

#[tokio::test]
async fn serve_ends_and_releases_its_port_when_the_handle_shuts_down() {
    let server = user_service();
    let handle = server.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(server.serve(listener));
    let url = format!("ws://{addr}/user/events/u");
    let (_socket, _) = within("connect", tokio_tungstenite::connect_async(url.as_str()))
        .await
        .unwrap();
    within("the shutdown", handle.shutdown()).await;
    within("serve to return", serving).await.unwrap().unwrap();
    assert!(
        tokio::net::TcpListener::bind(addr).await.is_ok(),
        "the listener was released"
    );
}

/// Pushes a file's events; its name is a parameter.
#[channel("files/<name>", server_only)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEvent;

/// Pushes the file list, at a static address inside `files/<name>`'s shape.
#[channel("files/list", server_only)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileList;

#[test]
#[should_panic(expected = "cannot register channel `FileList` at `files/list`: it overlaps channel `FileEvent`")]
fn a_template_a_client_of_another_could_land_on_is_refused_at_registration() {
    let server = FileEvent::register(Server::new(), |h| h);
    let _ = FileList::register(server, |h| h);
}

/// Reads until the server closes the connection; `false` if it was still open at `limit`.
async fn closed_within(tcp: &mut tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        // A close is a read of 0 bytes (or a reset); anything else the server says is skipped.
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn the_axum_serve_helper_drops_idle_and_slowloris_sockets() {
    use tokio::io::AsyncWriteExt;
    let server = user_service();
    let app = axum::Router::new().merge(server.into_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = ws_channels::serve_app(listener, app)
        .header_read_timeout(std::time::Duration::from_millis(300))
        .run();
    let serving = tokio::spawn(serving);
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let trickle = async {
        // One header byte every 50 ms: a head that never completes.
        for byte in b"GET /user/events/u HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_millis(600), trickle)
        .await
        .ok();
    assert!(
        closed_within(&mut idle, std::time::Duration::from_secs(3)).await,
        "the idle socket was closed"
    );
    assert!(
        closed_within(&mut slow, std::time::Duration::from_secs(3)).await,
        "the slow one too"
    );
    // Real clients are served as before.
    let url = format!("ws://{addr}/user/events/u");
    within("a handshake", tokio_tungstenite::connect_async(url.as_str()))
        .await
        .unwrap();
    serving.abort();
}

/// Pushes a user's notifications; same shape of address as `Alert`'s.
#[channel("inbox/<user>", server_only)]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inbox {
    text: String,
}

/// Another channel, served at the same shape under another server.
#[channel("inbox/<user>", server_only)]
#[derive(Debug, Clone, Serialize, Deserialize)]
// Its messages are never built here: only its name and address matter to this test.
#[allow(dead_code)]
struct Alert {
    level: u8,
}

/// The status and chosen subprotocol of a handshake to `path` offering `protocol`.
async fn offering(server: &Served, path: &str, protocol: &'static str) -> (u16, Option<String>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}{path}", server.base()).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    match within("a handshake", tokio_tungstenite::connect_async(request)).await {
        Ok((_, response)) => (
            response.status().as_u16(),
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned()),
        ),
        Err(ws_channels::tungstenite::Error::Http(response)) => (response.status().as_u16(), None),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_typed_client_of_another_channel_is_refused_not_served() {
    // The server has Inbox at inbox/<user>; a client of Alert, built for another server with
    // the same address shape, names the channel it speaks and is refused rather than served.
    let server = Served::start(Inbox::register(Server::new(), |h| h)).await;
    assert_eq!(offering(&server, "/inbox/ann", "wsc.v1.json.Alert").await, (400, None));
    assert_eq!(
        offering(&server, "/inbox/ann", "wsc.v1.msgpack").await,
        (400, None),
        "another codec"
    );
    for offer in ["wsc.v1.json.Inbox", "wsc.v1.json"] {
        assert_eq!(
            offering(&server, "/inbox/ann", offer).await,
            (101, Some(offer.to_owned())),
            "answered with the offer"
        );
    }
    assert_eq!(
        handshake_status(&server, "/inbox/ann").await,
        101,
        "plain clients offer none"
    );
    // The in-memory test server's clients offer it: a mismatch is refused there too.
    let test = ws_channels::TestServer::new(Inbox::register(Server::new(), |h| h));
    let _client = test.connect(&InboxParams::new("ann")).await.unwrap();
    let wrong = test
        .request(&InboxParams::new("ann"))
        .header("sec-websocket-protocol", "wsc.v1.json.Alert")
        .connect()
        .await;
    match wrong {
        Err(Error::Rejected { status: 400, body }) => assert!(body.contains("channel `Inbox`"), "{body}"),
        other => panic!("expected 400, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_panic_in_the_synchronous_part_of_on_open_closes_1011() {
    let server = UserSignedUp::register(Server::new(), |h| {
        h.on_open(|_conn| -> std::future::Ready<ws_channels::HandlerResult> { panic!("before any future") })
    });
    let server = Served::start(server).await;
    let mut socket = raw_connect(&server, "/user/events/u").await;
    let (_, close) = read_until_close(&mut socket).await;
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Error));
    // The server goes on.
    assert_eq!(handshake_status(&server, "/user/events/v").await, 101);
}

#[tokio::test]
async fn serve_returns_when_the_shutdown_came_first() {
    let server = user_service();
    let handle = server.handle();
    within("the shutdown", handle.shutdown()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    within("serve to return", server.serve(listener)).await.unwrap();
}
