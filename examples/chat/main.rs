//! A chat server, typed end to end: rooms at `chat/<room>`, a browser page, and HTTP routes
//! next to the WebSocket channel (the axum integration).
//!
//! ```text
//! cargo run --example chat                  # address: first argument, WS_ADDR, or 127.0.0.1:8080
//! cargo run --example chat -- 127.0.0.1:8081 --redis redis://127.0.0.1:6379   # two nodes
//! cargo run --example chat -- 127.0.0.1:8082 --redis redis://127.0.0.1:6379   # sharing rooms
//! ```
//!
//! It prints the page's address: open <http://127.0.0.1:8080/> in two browser tabs (the page
//! uses the TypeScript client generated from these types, `chat.ts`, and its runtime
//! `ws-channels.ts`, compiled to `chat.js` and `ws-channels.js`), or
//! use any WebSocket client:
//!
//! - connect to `ws://127.0.0.1:8080/chat/lobby?name=ann` (or authenticate with a token instead
//!   of a name: `?token=demo-token-ann`, `Authorization: Bearer demo-token-ann`);
//! - send `{"type":"say","text":"hello"}` (everyone in the room gets it, you included) or
//!   `{"type":"typing"}` (everyone but you);
//! - receive `joined`, `left`, `message` (with a millisecond `ts`), `typing` and `error`
//!   events. A message over 4 KiB or an unknown `type` gets an `error` event; the connection
//!   stays open.
//!
//! With `--redis`, nodes sharing that Redis share their rooms: people on 8081 and 8082 chat in
//! one room, typing indicators skip the typist on every node, and `GET /rooms/lobby` counts
//! both nodes. If Redis goes away, everyone stays connected and chats on with the people on
//! the same node (each message that reached this node only is logged at `warn`); cross-node
//! chat resumes by itself when Redis is back. `GET /ready` answers 503 while it is away.
//!
//! `GET /rooms/lobby` returns `{"room":"lobby","users":2}` (direct clients and sessions alike);
//! `GET /asyncapi.json` returns the channel's AsyncAPI 3.0 document; `GET /metrics` returns
//! the server's counters in Prometheus' text format. Logs go to stderr, filtered by
//! `RUST_LOG` (default `info`: one line per connection or session opened and closed).
//! `cargo run --example chat -- --typescript` prints its TypeScript client (checked in as
//! `examples/chat/chat.ts`).
//!
//! Ctrl-C, or SIGTERM on Unix (`kill`, systemd, a container runtime), stops it gracefully:
//! every connection is closed with 1001 (going away), every session with 3001 (shutdown),
//! then the process exits with status 0.
//!
//! The terminal client (`terminal.rs`): prints the room's events, says each line of input,
//! reconnects by itself when the server restarts.
//!
//! ```text
//! cargo run --example chat -- --client ws://127.0.0.1:8080 --room lobby --name bot
//! ```
//!
//! # Sessions: every room over one WebSocket
//!
//! The same rooms are served to [Centrifugo](https://centrifugal.dev) SDKs at
//! `ws://127.0.0.1:8080/connection/websocket` (the Centrifugo client protocol v2, JSON format;
//! `Sessions` in ws-channels). Open <http://127.0.0.1:8080/sessions.html> for a page in several
//! rooms at once over one session (`?name=ann&rooms=lobby,dev` joins at once; the page at `/`
//! stays one connection per room). It uses the `centrifuge` SDK's browser build, vendored as
//! `centrifuge.js` (5.8.0, MIT, its notice at the top) and served at `/centrifuge.js`.
//!
//! - The connect token is the name, under `?name=`'s rule; an empty or invalid one is refused
//!   with error 101, which the SDK takes as final. (The demo's token is no secret: a real
//!   application verifies a signed token in the `authenticate` hook, `authenticate` below.)
//! - A room's channel is its address, percent-encoded as in a URL path: `chat/lobby`,
//!   `chat/caf%C3%A9`.
//! - A publication's `data` is the `ChatEvent` a direct client gets, byte for byte; what you
//!   publish is a `ChatCommand`. Data that is not one is refused with error 107, and the rate
//!   limit counts each command of a session (error 111 over it).
//! - Direct clients and sessions in one room hear each other, on one node and, with `--redis`,
//!   across nodes.
//! - Every session is also subscribed, by the server, to its user's notices (`notices/ann`: a
//!   welcome at connect, then whatever `curl -d 'hello' http://127.0.0.1:8080/notices/ann`
//!   publishes through the hub). The SDK delivers them as the client's own `publication`
//!   events, with no `subscribe` of its own.
//!
//! ```js
//! import { Centrifuge } from 'centrifuge';          // npm i centrifuge
//!
//! // Node 20 has no WebSocket of its own: add `websocket: WebSocket` from the `ws` package.
//! const client = new Centrifuge('ws://127.0.0.1:8080/connection/websocket', { token: 'ann' });
//! client.on('disconnected', (ctx) => console.log('disconnected', ctx.code, ctx.reason)); // 101: refused
//! for (const room of ['lobby', 'dev']) {
//!   const sub = client.newSubscription(`chat/${room}`);
//!   sub.on('publication', (ctx) => console.log(room, ctx.data)); // {type: 'message', user, text, ts}, …
//!   sub.subscribe();
//! }
//! client.connect();                                 // reconnects and subscribes again by itself
//! const lobby = client.getSubscription('chat/lobby');
//! await lobby.publish({ type: 'say', text: 'hello' }); // rejects with {code: 107, …} for a bad command
//! ```

mod terminal;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::Html;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use ws_channels::{
    AsyncApi, BackplaneError, Channel, ConnectRequest, Error, ErrorReply, Escaped, Handshake, Hub, Identity, Published,
    RateLimit, RateLimitAction, RedisBackplane, RedisConfig, Reject, Report, Server, SessionReject, Sessions,
    TokenSource, channel,
};

/// What a client sends in a room.
#[channel("chat/<room>", server = ChatEvent, on_invalid = reply, name = "chat")]
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatCommand {
    /// Say something to the room.
    Say {
        /// The text.
        text: String,
    },
    /// Tell the others you are typing.
    Typing,
}

/// A notice for one person, wherever they chat: the sessions' hook subscribes every session to
/// its user's notices at connect (a server-side subscription: an SDK delivers them with no
/// `subscribe` of its own), and `POST /notices/<name>` publishes one. Notices travel over
/// sessions only.
#[channel("notices/<name>", server_only, name = "notices")]
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Notice {
    /// What the server has to say.
    pub text: String,
}

/// What the server tells a room.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// Someone entered the room (sent to everyone else).
    Joined {
        /// Their name.
        user: String,
    },
    /// Someone left the room (sent to everyone else).
    Left {
        /// Their name.
        user: String,
    },
    /// Someone said something (sent to everyone, the speaker included).
    Message {
        /// Who said it.
        user: String,
        /// What they said.
        text: String,
        /// When the server received it, in milliseconds since the Unix epoch.
        ts: u64,
    },
    /// Someone is typing (sent to everyone else).
    Typing {
        /// Who.
        user: String,
    },
    /// Your last message was refused; the connection stays open.
    Error {
        /// Why.
        message: String,
    },
}

impl ErrorReply for ChatEvent {
    fn error_reply(error: &Error) -> Self {
        // The error and its causes: "cannot decode a message on channel `chat`: unknown variant
        // `shout`, …". The error's own `Display` is only the first part.
        ChatEvent::Error {
            message: Report(error).to_string(),
        }
    }
}

/// Who is on a connection, or in a session: the chat channel's connection data, and the
/// sessions' identity data (every subscription of a session gets a copy).
#[derive(Debug, Clone)]
struct User {
    name: String,
}

/// The demo's token check: `demo-token-<name>`. A real service verifies a signed token.
const TOKEN_PREFIX: &str = "demo-token-";

/// The chat's rule for a name, wherever it comes from (`?name=`, a token, a session's connect
/// token): trimmed, 1 to 32 characters, none that would act on a terminal. `Err` says why not.
fn valid_name(name: &str) -> Result<String, &'static str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 32 {
        return Err("the name must be 1 to 32 characters");
    }
    // A name is shown to everyone: one that would act on their terminal (ESC, a newline that
    // forges a line, a bidirectional override) is nobody's name.
    if !Escaped(name).is_plain() {
        return Err("the name must not contain control characters");
    }
    Ok(name.to_owned())
}

/// Who joins a room: in a session, whom the sessions' `authenticate` hook said; otherwise the
/// name from a token (the auth helper's sources) or else from `?name=`.
async fn identify(handshake: Handshake<ChatCommand>) -> Result<User, Reject> {
    // A session's subscription: the session already said who it is (its WebSocket request's
    // query, which a session's subscribe also sees, is the SDK's, without a name).
    if let Some(user) = handshake.session_data::<User>() {
        return Ok(user.clone());
    }
    let sources = [
        TokenSource::Bearer,
        TokenSource::Cookie("chat_token"),
        TokenSource::Query("token"),
    ];
    let name = match handshake.token(&sources) {
        Some(token) => token
            .strip_prefix(TOKEN_PREFIX)
            .map(str::to_owned)
            .ok_or_else(|| Reject::unauthorized("invalid token"))?,
        None => handshake
            .query_param("name")
            .ok_or_else(|| Reject::unauthorized("a ?name= or a token is required"))?,
    };
    let name = valid_name(&name).map_err(Reject::bad_request)?;
    Ok(User { name })
}

/// The sessions' `authenticate` hook: who a session is, from its connect token (the SDK's
/// `token` option). The demo's token is the name itself, under `?name=`'s rule; an empty or
/// invalid one is refused with error 101, which an SDK takes as final (it does not retry).
///
/// A real application verifies a signed token here instead (a JWT's signature, then its
/// `sub` as the user and its `exp` as [`Identity::expire_at`], after which the SDK refreshes it
/// through its `getToken`).
async fn authenticate(connect: ConnectRequest) -> Result<Identity<User>, SessionReject> {
    let name = valid_name(connect.token()).map_err(SessionReject::unauthorized)?;
    let notices = NoticeParams::new(name.as_str());
    Ok(Identity::new(name.clone(), User { name }).subscribe::<Notice>(&notices))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// The chat channel's server, with the limits a public chat wants (the rate limit counts a
/// session's commands too), and sessions at `/connection/websocket`.
fn chat_server() -> Server {
    let server = Server::new()
        .max_message_size(4 * 1024)
        .rate_limit(RateLimit::per_second(10).burst(20).on_exceed(RateLimitAction::Reply))
        .sessions(Sessions::new().authenticate(authenticate));
    let server = Notice::register(server, |handler| {
        handler
            // A session's own notices only (the hook subscribes it to them).
            .on_connect(|handshake| async move {
                match handshake.session_data::<User>() {
                    Some(user) if user.name == handshake.params().name => Ok(user.clone()),
                    _ => Err(Reject::forbidden("notices are their user's, over a session")),
                }
            })
            .on_open(|conn| async move {
                let text = format!("welcome, {}", conn.data().name);
                conn.send(&Notice { text }).await?;
                Ok(())
            })
    });
    ChatCommand::register(server, |handler| {
        handler
            .on_connect(identify)
            .on_open(|conn| async move {
                let user = conn.data().name.clone();
                logged(conn.broadcast_others(&ChatEvent::Joined { user }).await?);
                Ok(())
            })
            .on_message(|conn, command| async move {
                let user = conn.data().name.clone();
                match command {
                    ChatCommand::Say { text } => {
                        logged(
                            conn.broadcast(&ChatEvent::Message {
                                user,
                                text,
                                ts: now_ms(),
                            })
                            .await?,
                        );
                    }
                    ChatCommand::Typing => {
                        logged(conn.broadcast_others(&ChatEvent::Typing { user }).await?);
                    }
                }
                Ok(())
            })
            .on_close(|conn, _info| async move {
                // This connection has already left the room's topic: everyone else hears it.
                let left = ChatEvent::Left {
                    user: conn.data().name.clone(),
                };
                if let Ok(published) = conn.hub().publish(conn.params(), &left).await {
                    logged(published);
                }
            })
    })
}

/// Logs a message that reached this node only: the sender stays connected, and chats on with
/// the people on this node. While the engine is down every message is, and the hub has logged
/// the outage (and will log its end) once: one line per message would only repeat it, as many
/// times as people talk, so those go to debug.
fn logged(published: Published) {
    match published.engine {
        Ok(()) => {}
        Err(BackplaneError::Down) => tracing::debug!(local = published.local, "not forwarded: the backplane is down"),
        Err(error) => {
            tracing::warn!(error = %Report(&error), local = published.local, "not forwarded to the other nodes")
        }
    }
}

/// How many people are in a room.
#[derive(Serialize)]
struct RoomInfo {
    room: String,
    users: usize,
}

/// Counts every node's users (with `--redis`); this node's alone while Redis is away.
///
/// The hub owns the outage: it logs once when the backplane goes down and once when it is
/// back, so while it reports the engine down this answers from the local count without a
/// line per request. Only a failure the hub did not announce (the engine up, the query failed)
/// is logged here.
async fn room_info(State(hub): State<Hub>, Path(room): Path<String>) -> axum::Json<RoomInfo> {
    let params = ChatCommandParams::new(room.as_str());
    if !hub.engine_health().is_up() {
        let users = hub.subscribers(&params);
        return axum::Json(RoomInfo { room, users });
    }
    let users = match hub.cluster_subscribers(&params).await {
        Ok(users) => users,
        Err(error) => {
            tracing::warn!(error = %Report(&error), "counting this node's users only");
            hub.subscribers(&params)
        }
    };
    axum::Json(RoomInfo { room, users })
}

/// How many of this node's sessions a notice reached (and whether the other nodes got it).
#[derive(Serialize)]
struct Noticed {
    delivered: usize,
}

/// `POST /notices/<name>` with the notice's text as the body: to every session of that user,
/// on every node.
async fn notify(State(hub): State<Hub>, Path(name): Path<String>, text: String) -> axum::Json<Noticed> {
    let delivered = match hub.publish(&NoticeParams::new(name.as_str()), &Notice { text }).await {
        Ok(published) => {
            let local = published.local;
            logged(published);
            local
        }
        Err(error) => {
            tracing::warn!(error = %Report(&error), "a notice does not encode");
            0
        }
    };
    axum::Json(Noticed { delivered })
}

/// Readiness: 503 while the backplane is down.
async fn ready(State(hub): State<Hub>) -> (axum::http::StatusCode, String) {
    let health = hub.engine_health();
    match health.is_up() {
        true => (axum::http::StatusCode::OK, format!("{health:?}")),
        false => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("{health:?}")),
    }
}

/// `--redis URL`: joins the other chat nodes on that Redis (under the prefix `chat`).
async fn join_nodes(hub: &Hub, args: &[String]) -> Result<(), BackplaneError> {
    let Some(at) = args.iter().position(|arg| arg == "--redis") else {
        return Ok(());
    };
    let url = args.get(at + 1).map_or("redis://127.0.0.1:6379", String::as_str);
    RedisBackplane::connect(hub, RedisConfig::new(url).prefix("chat")).await?;
    println!("sharing rooms through {url}");
    Ok(())
}

/// The chat's contract, derived from its Rust types.
fn asyncapi() -> AsyncApi {
    AsyncApi::new("Chat", "1.0.0")
        .description("Rooms where people chat, typed end to end by ws-channels")
        .server("local", "localhost:8080", "ws")
        // The same rooms over one session (`/connection/websocket`), for Centrifugo SDKs: the
        // TypeScript module gets a typed `subscribeChat` over the `centrifuge` package.
        .sessions("localhost:8080", "ws")
        .channel::<ChatCommand>()
        .channel::<Notice>()
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or, on Unix, SIGTERM, which is
/// what `kill`, systemd and container runtimes send. Either ends the server gracefully: every
/// connection is closed with 1001 (going away) and its `on_close` runs (it publishes `left`).
///
/// The listeners are installed when this is called, not when it is first polled: from then on
/// neither signal takes the default, abrupt way out.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C (there is no SIGTERM to wait for off Unix).
#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No handler could be installed: serve until killed rather than stop at once.
            std::future::pending::<()>().await;
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--client") {
        return terminal::run(std::env::args().skip(2)).await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, plain text for a file or another program.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The library mirrors its counters to the `metrics` facade; this recorder renders them.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let server = chat_server();
    let hub = server.hub();
    let args: Vec<String> = std::env::args().skip(1).collect();
    join_nodes(&hub, &args).await?;
    let shutdown = server.handle();
    let app = axum::Router::new()
        .route("/", get(|| async { Html(include_str!("index.html")) }))
        // The generated TypeScript client, compiled (checked in; the tests keep it current).
        .route(
            "/chat.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    include_str!("chat.js"),
                )
            }),
        )
        // The runtime chat.js imports, compiled the same way.
        .route(
            "/ws-channels.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    include_str!("ws-channels.js"),
                )
            }),
        )
        // The same rooms over sessions: one WebSocket for every room, through the centrifuge
        // SDK, vendored (its browser build, MIT).
        .route("/sessions.html", get(|| async { Html(include_str!("sessions.html")) }))
        .route(
            "/centrifuge.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    include_str!("centrifuge.js"),
                )
            }),
        )
        .route("/rooms/{room}", get(room_info))
        .route("/notices/{name}", axum::routing::post(notify))
        .route("/ready", get(ready))
        .route("/asyncapi.json", get(|| async { axum::Json(asyncapi().to_json()) }))
        .route("/metrics", get(move || std::future::ready(prometheus.render())))
        .with_state(hub)
        .merge(server.into_router());

    let addr = match args.first() {
        Some(flag) if flag == "--typescript" => {
            print!("{}", asyncapi().to_typescript());
            return Ok(());
        }
        arg => arg
            .filter(|arg| !arg.starts_with("--"))
            .cloned()
            .or_else(|| std::env::var("WS_ADDR").ok()),
    };
    let listener = tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8080")).await?;
    let local = listener.local_addr()?;
    let stop = stop_signal()?;
    println!("listening on ws://{local}");
    // The page is what a person opens; the ws:// line is for WebSocket clients.
    println!("chat page at http://{local}/ (open it in two tabs)");
    // serve_app bounds slow request heads (slowloris), which axum::serve does not.
    ws_channels::serve_app(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
            shutdown.shutdown().await;
        })
        .await?;
    Ok(())
}
