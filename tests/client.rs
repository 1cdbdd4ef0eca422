//! The client against real servers on loopback: the builder's credentials and subprotocol,
//! refusals, the background driver (pings, closes), reconnection across a server restart on
//! the same port, the close-code taxonomy, servers that misbehave, and `wss://` with a
//! certificate made in the test.

// A failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use ws_channels::http::{HeaderMap, HeaderValue, header};
use ws_channels::{
    Channel, Client, CloseCode, ConnectionState, Error, Event, ParamError, Reconnect, Reject, Server, TlsConnector,
    channel, connect,
};
use ws_channels_tests::{Backend, Served, handshake_status, within};

/// Said in a room; the server echoes it to everyone there.
#[channel("room/<name>", name = "room")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Say {
    text: String,
}

/// Who the server let in (`on_connect` data).
struct Who(String);

/// Echoes every message; `bye` closes with 4000 (final), `restart` with 1012 (retried),
/// `bytes` sends side-band bytes. Accepts `Authorization: Bearer ok-<who>`, `?token=ok-<who>` or
/// the cookie `sid=ok-<who>`, and refuses anything else with 403.
fn room_server() -> Server {
    Say::register(Server::new().ping_interval(Some(Duration::from_millis(100))), |h| {
        h.on_connect(|hs| async move {
            let token = hs
                .bearer_token()
                .map(str::to_owned)
                .or_else(|| hs.query_param("token"))
                .or_else(|| hs.cookie("sid").map(str::to_owned))
                .ok_or_else(|| Reject::unauthorized("no token"))?;
            let who = token
                .strip_prefix("ok-")
                .ok_or_else(|| Reject::forbidden("bad token"))?;
            Ok(Who(who.to_owned()))
        })
        .on_message(|conn, msg| async move {
            match msg.text.as_str() {
                "bye" => conn.close(CloseCode::Library(4000), "bye"),
                "restart" => conn.close(CloseCode::Restart, "restarting"),
                "bytes" => conn.send_binary(vec![1, 2, 3]).await?,
                _ => {
                    let text = format!("{}: {}", conn.data().0, msg.text);
                    conn.send(&Say { text }).await?
                }
            }
            Ok(())
        })
    })
}

/// A server on a given listener, stoppable; the same address can be served again.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Running {
    async fn start(server: Server, addr: &str) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve_with_shutdown(listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// A graceful shutdown: every connection gets 1001, and the port is free again.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within("the server to stop", &mut self.task).await.unwrap().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every state a client goes through, in order.
fn recorder() -> (
    impl Fn(&ConnectionState) + Send + Sync + 'static,
    mpsc::UnboundedReceiver<ConnectionState>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (move |state: &ConnectionState| drop(tx.send(state.clone())), rx)
}

/// The next state that is not `Open`/`Connecting`.
async fn next_state(states: &mut mpsc::UnboundedReceiver<ConnectionState>, what: &str) -> ConnectionState {
    within(what, states.recv())
        .await
        .expect("the client reports its states")
}

async fn next_message(events: &mut ws_channels::Events<Say>) -> Event<Say> {
    within("an event", events.next())
        .await
        .expect("the stream goes on")
        .expect("a valid event")
}

fn fast_retries() -> Reconnect {
    Reconnect::new()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(100))
}

#[tokio::test]
async fn the_builder_sends_query_pairs_headers_and_cookies() {
    let server = Running::start(room_server(), "127.0.0.1:0").await;
    let params = SayParams::new("lobby");
    let ways = [
        Client::builder(&server.base(), &params).bearer("ok-ann"),
        Client::builder(&server.base(), &params).query("token", "ok-bob &?"),
        Client::builder(&server.base(), &params)
            .cookie("theme", "dark")
            .cookie("sid", "ok-cy"),
        Client::builder(&server.base(), &params).header("authorization", "Bearer ok-dee"),
    ];
    for (builder, who) in ways.into_iter().zip(["ann", "bob &?", "cy", "dee"]) {
        let (client, mut events) = within("connect", builder.connect()).await.unwrap();
        client.send(&Say { text: "hi".into() }).await.unwrap();
        assert_eq!(
            next_message(&mut events).await,
            Event::Message(Say {
                text: format!("{who}: hi")
            })
        );
    }
}

#[tokio::test]
async fn every_refusal_is_rejected_with_its_status_and_body() {
    let server = Running::start(room_server(), "127.0.0.1:0").await;
    let params = SayParams::new("lobby");
    let refused = |builder: ws_channels::ClientBuilder<Say>| async move {
        match within("a refusal", builder.connect()).await {
            Err(Error::Rejected { status, body }) => (status, body),
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    assert_eq!(
        refused(Client::builder(&server.base(), &params)).await,
        (401, "no token".into())
    );
    assert_eq!(
        refused(Client::builder(&server.base(), &params).bearer("stolen")).await,
        (403, "bad token".into())
    );
    let (status, _) = refused(Client::builder(&format!("{}/elsewhere", server.base()), &params).bearer("ok-a")).await;
    assert_eq!(status, 404);
    // The one-liner too.
    assert!(matches!(
        within("connect", connect(&server.base(), &params)).await,
        Err(Error::Rejected { status: 401, .. })
    ));
    // A header that is not HTTP is an error before anything is sent.
    assert!(matches!(
        Client::builder(&server.base(), &params)
            .header("bad header", "x")
            .connect()
            .await,
        Err(Error::WebSocket(_))
    ));
}

/// Another channel with the same shape under a prefix: a client of `room` that lands there.
#[channel("room/<name>", name = "other")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Other {
    n: u32,
}

#[tokio::test]
async fn a_typed_client_on_another_channels_address_is_refused_by_its_subprotocol() {
    let server = Running::start(Other::register(Server::new(), |h| h), "127.0.0.1:0").await;
    let params = SayParams::new("lobby");
    match within("connect", connect(&server.base(), &params)).await {
        Err(Error::Rejected { status: 400, body }) => assert!(body.contains("channel `other`"), "{body}"),
        other => panic!("expected a 400, got {other:?}"),
    }
    // Without the offer, the server cannot tell.
    let plain = Client::builder(&server.base(), &params).without_channel_subprotocol();
    assert!(within("connect", plain.connect()).await.is_ok());
}

#[tokio::test]
async fn a_plain_server_that_answers_no_subprotocol_is_accepted() {
    // tokio-tungstenite's plain server: it answers no Sec-WebSocket-Protocol.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(frame)) = ws.next().await {
                    if frame.is_text() && ws.send(frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (client, mut events) = within("connect", connect(&format!("ws://{addr}"), &SayParams::new("x")))
        .await
        .unwrap();
    client.send(&Say { text: "plain".into() }).await.unwrap();
    assert_eq!(
        next_message(&mut events).await,
        Event::Message(Say { text: "plain".into() })
    );
    server.abort();
}

#[tokio::test]
async fn a_publish_only_client_answers_pings_past_the_ping_timeout() {
    // Pings every 100 ms: a peer that answers none is closed after about 200 ms.
    let seen = Arc::new(AtomicU32::new(0));
    let counted = seen.clone();
    let server = Say::register(
        Server::new().ping_interval(Some(Duration::from_millis(100))),
        move |h| {
            h.on_message(move |_conn, _msg| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
        },
    );
    let server = Running::start(server, "127.0.0.1:0").await;
    // The events half is never polled.
    let (client, _events) = within("connect", connect(&server.base(), &SayParams::new("x")))
        .await
        .unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.send(&Say { text: "tick".into() }).await.unwrap();
    }
    within("all ten", async {
        while seen.load(Ordering::SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(client.state().is_open(), "{:?}", client.state());
}

#[tokio::test]
async fn send_after_the_server_closes_is_closed_with_the_code_and_reason() {
    let server = Running::start(room_server(), "127.0.0.1:0").await;
    let builder = Client::builder(&server.base(), &SayParams::new("x")).bearer("ok-a");
    // Reconnection on: 4000 is final, so it does not apply.
    let (client, mut events) = within("connect", builder.reconnect(fast_retries()).connect())
        .await
        .unwrap();
    client.send(&Say { text: "bye".into() }).await.unwrap();
    let closed = within("the close", client.closed()).await;
    assert!(
        matches!(&closed, ConnectionState::Closed { code: Some(CloseCode::Library(4000)), reason, .. } if reason == "bye"),
        "{closed:?}"
    );
    match client.send(&Say { text: "late".into() }).await {
        Err(Error::Closed { code, reason }) => {
            assert_eq!((code, reason.as_str()), (Some(CloseCode::Library(4000)), "bye"));
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(within("the end", events.next()).await.is_none());
    assert_eq!(events.close_code(), Some(CloseCode::Library(4000)));
}

#[tokio::test]
async fn side_band_bytes_arrive_as_binary_events() {
    let server = Running::start(room_server(), "127.0.0.1:0").await;
    let (client, mut events) = within(
        "connect",
        Client::builder(&server.base(), &SayParams::new("x"))
            .bearer("ok-a")
            .connect(),
    )
    .await
    .unwrap();
    client.send(&Say { text: "bytes".into() }).await.unwrap();
    assert_eq!(next_message(&mut events).await, Event::Binary(vec![1, 2, 3].into()));
}

#[tokio::test]
async fn the_client_reconnects_after_a_restart_on_the_same_port_and_flushes_its_queue() {
    let server = Running::start(room_server(), "127.0.0.1:0").await;
    let addr = server.addr;
    let (observe, mut states) = recorder();
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let (client, mut events) = within(
        "connect",
        Client::builder(&server.base(), &SayParams::new("x"))
            // A fresh token for every attempt.
            .credentials(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    let mut headers = HeaderMap::new();
                    headers.insert(header::AUTHORIZATION, HeaderValue::try_from(format!("Bearer ok-{n}"))?);
                    Ok(headers)
                }
            })
            .reconnect(fast_retries())
            .on_state(observe)
            .connect(),
    )
    .await
    .unwrap();
    assert!(matches!(
        next_state(&mut states, "connecting").await,
        ConnectionState::Connecting
    ));
    assert!(next_state(&mut states, "open").await.is_open());
    client.send(&Say { text: "one".into() }).await.unwrap();
    assert_eq!(
        next_message(&mut events).await,
        Event::Message(Say { text: "0: one".into() })
    );

    server.stop().await;
    match next_state(&mut states, "reconnecting").await {
        ConnectionState::Reconnecting { attempt: 1, error, .. } => {
            assert!(
                matches!(
                    *error,
                    Error::Closed {
                        code: Some(CloseCode::Away),
                        ..
                    }
                ),
                "{error:?}"
            )
        }
        other => panic!("expected reconnecting, got {other:?}"),
    }
    // Queued while the server is down, sent once it is back.
    client.send(&Say { text: "two".into() }).await.unwrap();
    client.send(&Say { text: "three".into() }).await.unwrap();
    // A few attempts fail (connection refused) before the server is back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = Running::start(room_server(), &addr.to_string()).await;
    let reconnected = within("the reconnect marker", events.next()).await.unwrap().unwrap();
    assert!(
        matches!(reconnected, Event::Reconnected { attempt } if attempt >= 1),
        "{reconnected:?}"
    );
    let n = attempts.load(Ordering::SeqCst) - 1;
    assert_eq!(
        next_message(&mut events).await,
        Event::Message(Say {
            text: format!("{n}: two")
        })
    );
    assert_eq!(
        next_message(&mut events).await,
        Event::Message(Say {
            text: format!("{n}: three")
        })
    );
    // Every state on the way back: reconnecting with growing attempt numbers, then open.
    let mut last_attempt = 1;
    loop {
        match next_state(&mut states, "back to open").await {
            ConnectionState::Reconnecting { attempt, .. } => {
                assert_eq!(attempt, last_attempt + 1);
                last_attempt = attempt;
            }
            ConnectionState::Open => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    // A retried close code (1012) reconnects too.
    client.send(&Say { text: "restart".into() }).await.unwrap();
    let marker = within("the reconnect marker", events.next()).await.unwrap().unwrap();
    assert!(matches!(marker, Event::Reconnected { .. }), "{marker:?}");
    drop(server);
}

#[tokio::test]
async fn the_send_queue_is_bounded_while_reconnecting() {
    let server = Running::start(room_server(), "127.0.0.1:0").await;
    let (client, _events) = within(
        "connect",
        Client::builder(&server.base(), &SayParams::new("x"))
            .bearer("ok-a")
            .send_queue(4)
            .reconnect(Reconnect::new().initial_delay(Duration::from_secs(30)))
            .connect(),
    )
    .await
    .unwrap();
    server.stop().await;
    within("reconnecting", async {
        while !matches!(client.state(), ConnectionState::Reconnecting { .. }) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for _ in 0..4 {
        client.send(&Say { text: "queued".into() }).await.unwrap();
    }
    match client
        .send(&Say {
            text: "one too many".into(),
        })
        .await
    {
        Err(Error::Closed { code, .. }) => assert_eq!(code, Some(CloseCode::Away), "the last close"),
        other => panic!("expected Closed, got {other:?}"),
    }
    // Closing stops the reconnection for good.
    let closed = within("close", client.close()).await;
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
}

#[tokio::test]
async fn a_final_refusal_on_reconnect_ends_for_good_without_a_loop() {
    let server = Running::start(room_server(), "127.0.0.1:0").await;
    let addr = server.addr;
    let (observe, mut states) = recorder();
    let (client, mut events) = within(
        "connect",
        Client::builder(&server.base(), &SayParams::new("x"))
            .bearer("ok-a")
            .reconnect(fast_retries())
            .on_state(observe)
            .connect(),
    )
    .await
    .unwrap();
    server.stop().await;
    // The server comes back refusing everyone.
    let refusing = Say::register(Server::new(), |h| {
        h.on_connect(|_| async { Err::<(), _>(Reject::forbidden("banned")) })
    });
    let _server = Running::start(refusing, &addr.to_string()).await;
    let closed = within("the end", client.closed()).await;
    match &closed {
        ConnectionState::Closed { error: Some(error), .. } => assert!(
            matches!(&**error, Error::Rejected { status: 403, body } if body == "banned"),
            "{error:?}"
        ),
        other => panic!("expected a final refusal, got {other:?}"),
    }
    assert!(within("the end of events", events.next()).await.is_none());
    // Connecting, Open, then attempts until the refusal, which is the last state.
    let mut seen = Vec::new();
    while let Ok(state) = states.try_recv() {
        seen.push(state);
    }
    assert!(seen.last().is_some_and(ConnectionState::is_closed), "{seen:?}");
    let refused_attempts = seen
        .iter()
        .filter(|s| matches!(s, ConnectionState::Reconnecting { .. }))
        .count();
    // Retried while the port was closed, never again after the 403.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(states.try_recv().is_err(), "no state after the final one");
    assert!(refused_attempts >= 1);
}

/// A raw server that answers the handshake, then does `then` to every connection.
async fn misbehaving(then: fn(u16) -> Vec<u8>, code: u16) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    misbehaving_for(then, code, Duration::from_millis(100)).await
}

/// [`misbehaving`], keeping each socket open `hold` after `then` (reading nothing more).
async fn misbehaving_for(
    then: fn(u16) -> Vec<u8>,
    code: u16,
    hold: Duration,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let key = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("Sec-WebSocket-Key: ")
                            .or_else(|| l.strip_prefix("sec-websocket-key: "))
                    })
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                let accept = ws_channels::tungstenite::handshake::derive_accept_key(key.as_bytes());
                let response = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.write_all(&then(code)).await;
                let _ = tcp.flush().await;
                // Keep the socket a moment so a close frame is read before the end.
                tokio::time::sleep(hold).await;
            });
        }
    });
    (addr, task)
}

/// An unmasked server close frame with `code`.
fn close_with(code: u16) -> Vec<u8> {
    let mut frame = vec![0x88, 2];
    frame.extend_from_slice(&code.to_be_bytes());
    frame
}

#[tokio::test]
async fn each_close_code_of_the_taxonomy_is_final_or_retried() {
    let retried = [1001, 1011, 1012, 1013, 4001];
    let final_ = [1000, 1002, 1003, 1007, 1008, 1009, 4000];
    for code in retried.into_iter().chain(final_) {
        let (addr, server) = misbehaving(close_with, code).await;
        let (observe, mut states) = recorder();
        let builder = Client::builder(&format!("ws://{addr}"), &SayParams::new("x"))
            .without_channel_subprotocol()
            .reconnect(Reconnect::new().initial_delay(Duration::from_secs(30)))
            .on_state(observe);
        let (client, _events) = within("connect", builder.connect()).await.unwrap();
        let _ = next_state(&mut states, "connecting").await;
        let _ = next_state(&mut states, "open").await;
        let after = next_state(&mut states, "after the close").await;
        let is_final = final_.contains(&code);
        match &after {
            ConnectionState::Closed { code: Some(got), .. } if is_final => assert_eq!(u16::from(*got), code),
            ConnectionState::Reconnecting { attempt: 1, error, .. } if !is_final => assert!(
                matches!(&**error, Error::Closed { code: Some(got), .. } if u16::from(*got) == code),
                "{error:?}"
            ),
            other => panic!("close {code}: unexpected {other:?}"),
        }
        client.close().await;
        server.abort();
    }
}

#[tokio::test]
async fn garbage_is_final_and_a_vanished_server_is_retried_never_a_panic() {
    // Bytes that are no frame: a reserved opcode.
    let (addr, garbage) = misbehaving(|_| vec![0x83, 0x01, 0xff], 0).await;
    let (observe, mut states) = recorder();
    let builder = Client::builder(&format!("ws://{addr}"), &SayParams::new("x"))
        .without_channel_subprotocol()
        .reconnect(fast_retries())
        .on_state(observe);
    let (client, mut events) = within("connect", builder.connect()).await.unwrap();
    let closed = within("the end", client.closed()).await;
    match &closed {
        ConnectionState::Closed { error: Some(error), .. } => {
            assert!(matches!(&**error, Error::WebSocket(_)), "{error:?}")
        }
        other => panic!("expected a final protocol error, got {other:?}"),
    }
    assert!(within("the end of events", events.next()).await.is_none());
    assert!(
        !std::iter::from_fn(|| states.try_recv().ok()).any(|s| matches!(s, ConnectionState::Reconnecting { .. })),
        "a protocol violation is not retried"
    );
    garbage.abort();

    // A server that vanishes without a close frame.
    let (addr, vanishing) = misbehaving(|_| Vec::new(), 0).await;
    let (observe, mut states) = recorder();
    let builder = Client::builder(&format!("ws://{addr}"), &SayParams::new("x"))
        .without_channel_subprotocol()
        .reconnect(fast_retries().max_attempts(2))
        .on_state(observe);
    let (client, _events) = within("connect", builder.connect()).await.unwrap();
    let _ = next_state(&mut states, "connecting").await;
    let _ = next_state(&mut states, "open").await;
    assert!(matches!(
        next_state(&mut states, "reconnecting").await,
        ConnectionState::Reconnecting { attempt: 1, .. }
    ));
    vanishing.abort();
    // The attempt limit ends it.
    let closed = within("the end", client.closed()).await;
    assert!(closed.is_closed());
}

#[tokio::test]
async fn an_unreachable_server_times_out_or_is_refused() {
    // A listener that never answers the handshake.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let builder = Client::builder(&format!("ws://{}", silent.local_addr().unwrap()), &SayParams::new("x"))
        .connect_timeout(Duration::from_millis(200));
    assert!(matches!(
        within("timeout", builder.connect()).await,
        Err(Error::ConnectTimeout(_))
    ));
    let port = silent.local_addr().unwrap().port();
    drop(silent);
    assert!(matches!(
        within(
            "refused",
            connect(&format!("ws://127.0.0.1:{port}"), &SayParams::new("x"))
        )
        .await,
        Err(Error::WebSocket(_))
    ));
}

#[tokio::test]
async fn a_credentials_hook_that_hangs_is_bounded_by_the_connect_timeout() {
    // The server would accept at once: only the hook can hold the attempt.
    let server = Served::start(room_server()).await;
    let builder = Client::builder(&server.base(), &SayParams::new("x"))
        .connect_timeout(Duration::from_millis(200))
        .credentials(std::future::pending);
    let started = tokio::time::Instant::now();
    assert!(matches!(
        within("a hanging hook", builder.connect()).await,
        Err(Error::ConnectTimeout(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // While reconnecting too: a hook that hangs on the second attempt costs that attempt, and
    // the next one (with a hook that answers) connects.
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let (states, mut observed) = recorder();
    let (client, _events) = Client::builder(&server.base(), &SayParams::new("x"))
        .connect_timeout(Duration::from_millis(200))
        .reconnect(fast_retries())
        .on_state(states)
        .credentials(move || {
            let call = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if call == 1 {
                    std::future::pending::<()>().await;
                }
                let mut headers = HeaderMap::new();
                headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer ok-hook"));
                Ok(headers)
            }
        })
        .connect()
        .await
        .unwrap();
    client.send(&Say { text: "restart".into() }).await.unwrap();
    let mut timed_out = false;
    loop {
        match next_state(&mut observed, "a timed-out attempt, then open").await {
            ConnectionState::Reconnecting { error, .. } if matches!(*error, Error::ConnectTimeout(_)) => {
                timed_out = true
            }
            ConnectionState::Open if timed_out => break,
            _ => {}
        }
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "first connect, the hung attempt, the next"
    );
}

#[tokio::test]
async fn dot_segments_are_refused_by_the_client_and_answered_400_by_both_servers() {
    for value in [".", ".."] {
        match connect("ws://127.0.0.1:1", &SayParams::new(value)).await {
            Err(Error::Param(ParamError::DotSegment { .. })) => {}
            other => panic!("{value}: expected a parameter error, got {other:?}"),
        }
    }
    for backend in [Backend::Standalone, Backend::Axum] {
        let server = Served::start_on(backend, Say::register(Server::new(), |h| h)).await;
        for path in ["/room/..", "/room/.", "/room/%2E%2e", "/room/%2e"] {
            assert_eq!(handshake_status(&server, path).await, 400, "{backend:?} {path}");
        }
        assert_eq!(handshake_status(&server, "/room/...").await, 101, "{backend:?}");
    }
}

#[tokio::test]
async fn wss_end_to_end_with_a_certificate_made_here() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(room_server().serve_tls(listener, Arc::new(tls)));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let base = format!("wss://localhost:{port}");
    let (client, mut events) = within(
        "wss connect",
        Client::builder(&base, &SayParams::new("secure"))
            .bearer("ok-tls")
            .tls(TlsConnector::Rustls(Arc::new(client_tls)))
            .connect(),
    )
    .await
    .unwrap();
    client
        .send(&Say {
            text: "over TLS".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut events).await,
        Event::Message(Say {
            text: "tls: over TLS".into()
        })
    );
    // The platform's TLS (OpenSSL here), trusting the same certificate.
    let native = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_der(certified.cert.der()).unwrap())
        .build()
        .unwrap();
    let (client, mut events) = within(
        "wss connect (native-tls)",
        Client::builder(&base, &SayParams::new("secure"))
            .bearer("ok-native")
            .tls(TlsConnector::NativeTls(native))
            .connect(),
    )
    .await
    .unwrap();
    client
        .send(&Say {
            text: "over OpenSSL".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut events).await,
        Event::Message(Say {
            text: "native: over OpenSSL".into()
        })
    );
    // Without our root the certificate is refused: a TLS error, no panic.
    let untrusted = within(
        "untrusted",
        Client::builder(&base, &SayParams::new("secure"))
            .bearer("ok-tls")
            .connect(),
    )
    .await;
    assert!(matches!(untrusted, Err(Error::WebSocket(_))), "{untrusted:?}");
    // Plain WebSocket to the TLS port is not served (and does not hang the server).
    let plain = Client::builder(&format!("ws://127.0.0.1:{port}"), &SayParams::new("x"))
        .connect_timeout(Duration::from_secs(5));
    assert!(within("plain", plain.connect()).await.is_err());
    server.abort();
}

#[tokio::test]
async fn dropping_both_halves_closes_the_connection_normally() {
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let server = Say::register(Server::new(), move |h| {
        h.on_close(move |_conn, info| {
            let _ = closed_tx.send(info.code);
            async {}
        })
    });
    let server = Running::start(server, "127.0.0.1:0").await;
    let (client, events) = within("connect", connect(&server.base(), &SayParams::new("x")))
        .await
        .unwrap();
    // One half alone keeps the connection.
    drop(client);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(closed.try_recv().is_err(), "the events half still holds the connection");
    drop(events);
    assert_eq!(within("on_close", closed.recv()).await, Some(CloseCode::Normal));
}

#[tokio::test]
async fn a_client_that_never_reads_its_events_still_sends_and_closes() {
    // `flood` answers with more messages than the client's receive buffer holds (256).
    let seen = Arc::new(AtomicU32::new(0));
    let counted = seen.clone();
    // (An outbound queue that holds the whole flood: the server's lag policy is not tested here.)
    let server = Say::register(Server::new().outbound_queue(1024), move |h| {
        h.on_message(move |conn, msg| {
            let counted = counted.clone();
            async move {
                match msg.text.as_str() {
                    "flood" => {
                        for n in 0..400 {
                            conn.send(&Say { text: n.to_string() }).await?;
                        }
                    }
                    _ => drop(counted.fetch_add(1, Ordering::SeqCst)),
                }
                Ok(())
            }
        })
    });
    let server = Running::start(server, "127.0.0.1:0").await;
    let (client, events) = within("connect", connect(&server.base(), &SayParams::new("x")))
        .await
        .unwrap();
    client.send(&Say { text: "flood".into() }).await.unwrap();
    // Let the flood fill the buffer: the events are never read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..10 {
        within(
            "a send",
            client.send(&Say {
                text: "still here".into(),
            }),
        )
        .await
        .unwrap();
    }
    within("the sends to arrive", async {
        while seen.load(Ordering::SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    match within("close", client.close()).await {
        ConnectionState::Closed { code, error: None, .. } => assert_eq!(code, Some(CloseCode::Normal)),
        other => panic!("expected a normal local close, got {other:?}"),
    }
    // What the buffer held is still there to read, in order, then the stream ends.
    let received: Vec<_> = within("the rest", events.collect::<Vec<_>>()).await;
    assert!(received.len() >= 256, "{} events", received.len());
    for (n, event) in received.into_iter().enumerate() {
        assert_eq!(event.unwrap(), Event::Message(Say { text: n.to_string() }));
    }
}

#[tokio::test]
async fn a_server_that_closes_right_after_the_upgrade_uses_up_the_attempts() {
    let (addr, server) = misbehaving(close_with, 1011).await;
    let (observe, mut states) = recorder();
    let builder = Client::builder(&format!("ws://{addr}"), &SayParams::new("x"))
        .without_channel_subprotocol()
        .reconnect(fast_retries().max_attempts(3))
        .on_state(observe);
    let (client, _events) = within("connect", builder.connect()).await.unwrap();
    // Each connection opens and is closed at once: a failed attempt, not a reset.
    match within("the attempts to run out", client.closed()).await {
        ConnectionState::Closed { error: Some(error), .. } => assert!(
            matches!(&*error, Error::Closed { code: Some(code), .. } if u16::from(*code) == 1011),
            "{error:?}"
        ),
        other => panic!("expected the end after the last attempt, got {other:?}"),
    }
    let attempts: Vec<u32> = std::iter::from_fn(|| states.try_recv().ok())
        .filter_map(|s| match s {
            ConnectionState::Reconnecting { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    server.abort();

    // Connections that stay open `stable_after` (a vanishing server keeps each for 100 ms)
    // reset the count: every loss starts again from attempt 1.
    let (addr, server) = misbehaving(|_| Vec::new(), 0).await;
    let (observe, mut states) = recorder();
    let builder = Client::builder(&format!("ws://{addr}"), &SayParams::new("x"))
        .without_channel_subprotocol()
        .reconnect(fast_retries().max_attempts(2).stable_after(Duration::from_millis(50)))
        .on_state(observe);
    let (client, _events) = within("connect", builder.connect()).await.unwrap();
    let mut losses = 0;
    while losses < 4 {
        match next_state(&mut states, "a state").await {
            ConnectionState::Reconnecting { attempt, .. } => {
                assert_eq!(attempt, 1, "a connection that stayed open resets the count");
                losses += 1;
            }
            ConnectionState::Closed { .. } => panic!("the attempts ran out although connections stayed open"),
            _ => {}
        }
    }
    client.close().await;
    server.abort();
}

#[tokio::test]
async fn an_untrusted_certificate_on_reconnect_is_final() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let serving = |certified: &rcgen::CertifiedKey<rcgen::KeyPair>| {
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        Arc::new(tls)
    };
    let trusted = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(
        room_server().serve_tls_with_shutdown(listener, serving(&trusted), async {
            let _ = stopped.await;
        }),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.cert.der().clone()).unwrap();
    let client_tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (observe, mut states) = recorder();
    let (client, _events) = within(
        "wss connect",
        Client::builder(&format!("wss://localhost:{}", addr.port()), &SayParams::new("x"))
            .bearer("ok-tls")
            .tls(TlsConnector::Rustls(Arc::new(client_tls)))
            .reconnect(fast_retries())
            .on_state(observe)
            .connect(),
    )
    .await
    .unwrap();
    // The server restarts on the same port with a certificate the client does not trust.
    let _ = stop.send(());
    within("the server to stop", first).await.unwrap().unwrap();
    let untrusted = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let listener = TcpListener::bind(addr).await.unwrap();
    let second = tokio::spawn(room_server().serve_tls(listener, serving(&untrusted)));
    match within("the certificate error to end it", client.closed()).await {
        ConnectionState::Closed { error: Some(error), .. } => {
            assert!(matches!(&*error, Error::WebSocket(_)), "{error:?}")
        }
        other => panic!("expected a final TLS error, got {other:?}"),
    }
    let retried = std::iter::from_fn(|| states.try_recv().ok())
        .filter(|s| matches!(s, ConnectionState::Reconnecting { .. }))
        .count();
    assert_eq!(retried, 1, "only the server's restart is retried, not the certificate");
    second.abort();
}

#[tokio::test]
async fn cookies_that_would_break_the_header_are_refused_and_hook_headers_keep_every_value() {
    for (name, value) in [("sid", "a; admin=1"), ("sid", "a b"), ("s=id", "a"), ("", "a")] {
        let builder = Client::builder("ws://127.0.0.1:1", &SayParams::new("x")).cookie(name, value);
        match builder.connect().await {
            Err(Error::WebSocket(ws_channels::tungstenite::Error::HttpFormat(_))) => {}
            other => panic!("{name}={value}: expected a refusal, got {other:?}"),
        }
    }
    // A multi-valued header from the credentials hook arrives whole.
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let server = Say::register(Server::new(), move |h| {
        let seen_tx = seen_tx.clone();
        h.on_connect(move |hs| {
            let values: Vec<String> = hs
                .headers()
                .get_all("x-tag")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let _ = seen_tx.send(values);
            async { Ok(()) }
        })
    });
    let server = Running::start(server, "127.0.0.1:0").await;
    let builder = Client::builder(&server.base(), &SayParams::new("x"))
        .header("x-tag", "stale")
        .credentials(|| async {
            let mut headers = HeaderMap::new();
            headers.append("x-tag", HeaderValue::from_static("one"));
            headers.append("x-tag", HeaderValue::from_static("two"));
            Ok(headers)
        });
    let (client, _events) = within("connect", builder.connect()).await.unwrap();
    assert_eq!(within("the headers", seen.recv()).await.unwrap(), ["one", "two"]);
    client.close().await;
}

#[tokio::test]
async fn a_server_that_keeps_the_socket_after_its_close_frame_is_left_after_the_close_timeout() {
    // The close frame, then the socket stays open, far longer than the client's 5 s bound.
    let (addr, server) = misbehaving_for(close_with, 4000, Duration::from_secs(60)).await;
    let builder = Client::builder(&format!("ws://{addr}"), &SayParams::new("x")).without_channel_subprotocol();
    let (client, _events) = within("connect", builder.connect()).await.unwrap();
    match within("the close timeout", client.closed()).await {
        ConnectionState::Closed { code: Some(code), .. } => assert_eq!(u16::from(code), 4000),
        other => panic!("expected the server's close, got {other:?}"),
    }
    server.abort();
}
