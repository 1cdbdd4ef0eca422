//! The sessions endpoint's public face: the [`Sessions`] builder that `Server::sessions`
//! mounts, the [`ConnectRequest`] its `authenticate` hook reads, and what the hook answers
//! ([`Identity`] or [`SessionReject`]).
//!
//! The hook is the one part of a session typed by the application (its state `S`, its identity
//! data `I`): it is erased here, once, into an [`Authenticator`], so the session task (in
//! `session_task`) is compiled once for every server, whatever its state and identity types.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use http::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::channel::Channel;
use crate::codec::Json;
use crate::error::CodecError;
use crate::session::frame::MAX_COMMANDS_PER_FRAME;
use crate::session::protocol;

/// The path sessions are served at unless [`Sessions::at`] says otherwise: Centrifugo's, which
/// the SDKs' examples use.
pub const DEFAULT_SESSIONS_PATH: &str = "/connection/websocket";

/// Sessions: one WebSocket per client speaking the Centrifugo client protocol v2 (JSON
/// format), so any Centrifugo SDK (`centrifuge` on npm) can talk to this server. Mount it with
/// [`Server::sessions`](crate::Server::sessions); every front end over sockets (standalone,
/// axum, [`Acceptor`](crate::Acceptor)) then serves it beside the channels. ([`TestServer`](crate::TestServer)
/// routes it too, but has no session client to reach it yet: that comes with the Rust
/// session client.)
///
/// A session authenticates once, at `connect` (the [`authenticate`](Self::authenticate) hook),
/// then subscribes to any number of the server's registered channels, each still typed: the
/// channel string is the channel's address, exactly as a direct client's URL path carries it
/// (percent-encoded: `chat/caf%C3%A9`), and the `data` of every publication and publish is the
/// channel's JSON message. A subscription runs the channel's own handler, unchanged:
///
/// - `subscribe` runs the channel's `on_connect` (or `authenticate`) and `authorize` on a
///   [`Handshake`](crate::Handshake) built from the session's WebSocket request, where
///   [`Handshake::session_data`](crate::Handshake::session_data),
///   [`Handshake::subscribe_token`](crate::Handshake::subscribe_token) and
///   [`TokenSource::Connect`](crate::TokenSource::Connect) say who the session is; then its
///   `on_open`; then the `subscribe` reply. Nothing published once the subscription is a
///   member of its topic is lost, and nothing reaches the client before that reply.
/// - Its handlers get a [`Conn`](crate::Conn) scoped to the subscription: `send` is a `pub`
///   push on that channel to that session, `broadcast` reaches direct clients and sessions
///   alike, [`close`](crate::Conn::close) ends the subscription (an `unsubscribe` push), not
///   the session; its id is the session's.
/// - `publish` decodes and validates its `data` as the channel's client message and runs
///   `on_message`; the reply comes once the handler has returned.
/// - Each subscription has its channel's [lag policy](crate::LagPolicy), for itself alone.
/// - Handlers of one session run one at a time, in command order, as a connection's do.
///
/// ```
/// use ws_channels::{Channel, Server, Sessions, channel};
///
/// #[channel("chat/<room>")]
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Chat { text: String }
///
/// // `chat/<room>` serves direct WebSockets at /chat/<room> and, unchanged, the subscriptions
/// // of sessions at /connection/websocket: one `broadcast` reaches both.
/// let server = Chat::register(Server::new(), |h| {
///     h.on_message(|conn, msg| async move {
///         conn.broadcast(&msg).await?;
///         Ok(())
///     })
/// })
/// .sessions(Sessions::new());
/// # drop(server);
/// ```
///
/// With an `authenticate` hook:
///
/// ```
/// use std::time::Duration;
/// use ws_channels::{Identity, Server, SessionReject, Sessions};
///
/// /// Who a session is, as the hook found out.
/// struct User {
///     name: String,
/// }
///
/// let server = Server::new().sessions(
///     Sessions::new() // at /connection/websocket
///         .authenticate(|connect| async move {
///             // A real application verifies a signed token here.
///             let name = connect.token().trim().to_owned();
///             if name.is_empty() {
///                 return Err(SessionReject::unauthorized("a name is needed")); // reply 101: final
///             }
///             Ok(Identity::new(name.clone(), User { name }))
///         })
///         .ping_interval(Duration::from_secs(25)),
/// );
/// # drop(server);
/// ```
///
/// A session's refusals and closes (the close frame carries Centrifugo's codes, never a
/// `disconnect` push, as Centrifugo does over WebSocket):
///
/// | event | outcome | what the SDK does |
/// |---|---|---|
/// | the hook returns [`SessionReject::unauthorized`] | error reply 101 | stops (final) |
/// | [`SessionReject::token_expired`] | error reply 109 | fetches a new token (`getToken`), reconnects |
/// | [`SessionReject::temporary`], a panic in the hook, or no answer within [`command_timeout`](Self::command_timeout) | error reply 100, temporary | reconnects with backoff |
/// | [`SessionReject::invalid_token`] | close 3500 "invalid token" | stops |
/// | [`SessionReject::forbidden`] | close 3507 "permission denied" | stops |
/// | [`Identity::expire_at`] already past | error reply 110 "expired" | stops |
/// | any command after a connect error reply | close 3501 "bad request" | stops |
/// | malformed JSON, not an object, a binary frame, a command before `connect`, a second `connect`, no known method, `id` 0 on a command that needs one, an empty line, more than [`max_commands_per_frame`](Self::max_commands_per_frame) commands in a frame | close 3501 "bad request" (nothing of that frame is handled) | stops |
/// | a frame over [`max_message_size`](crate::Server::max_message_size) | close 1009 | stops |
/// | no `connect` within [`connect_timeout`](Self::connect_timeout) | close 3502 "stale" | stops |
/// | no pong (nor any command) within [`pong_timeout`](Self::pong_timeout) of a ping (not while a handler runs: frames wait unread meanwhile) | close 3012 "no pong" | reconnects |
/// | the client asked for the protobuf format (subprotocol `centrifuge-protobuf`, or `?format=protobuf`) | upgraded, then closed at once with 3506 "inappropriate protocol" (an HTTP refusal would make the SDK retry forever) | stops |
/// | more than [`max_queued_bytes`](Sessions::max_queued_bytes) waiting to be written (the client does not read) | close 3008 "slow" | reconnects |
/// | `history`, `presence`, `presence_stats`, `rpc`, `sub_refresh` | error reply 108 "not available" (this release) | — |
/// | more server-side subscriptions ([`Identity::subscribe`]) than [`max_subscriptions`](Self::max_subscriptions) | close 3505 "channel limit" | stops |
/// | credentials past [`Identity::expire_at`] and not refreshed within [`expiry_grace`](Self::expiry_grace) | close 3005 "connection expired" | reconnects; its stale token then gets 109 from the hook, and it fetches a new one |
/// | `refresh` whose token the hook refuses: [`SessionReject::unauthorized`] (or a new user id) / [`temporary`](SessionReject::temporary), a panic, a timeout / [`token_expired`](SessionReject::token_expired) or an expiry already past / [`invalid_token`](SessionReject::invalid_token) / [`forbidden`](SessionReject::forbidden) | error reply 101 / error reply 100, temporary / close 3005 / close 3500 / close 3507 | stops / retries the refresh / reconnects / stops / stops |
/// | `send` | ignored | — |
/// | `ping` | `{"id":n,"ping":{}}` | — |
/// | the server shuts down | close 3001 "shutdown", after what was queued | reconnects |
/// | commands (all but `connect` and pongs) over the server's [rate limit](crate::Server::rate_limit), under [`RateLimitAction::Close`](crate::RateLimitAction::Close) (its default) | close 3013 "too many requests"; counted in [`rate_limited`](crate::MetricsSnapshot::rate_limited) | reconnects with backoff |
///
/// Replies queued together are joined into one frame, one per line, as Centrifugo does.
///
/// Error replies carry the protocol's fixed message for their code, as Centrifugo's do, but
/// for 107, whose message says what is wrong, and 101 and 100 from the hook's own
/// [`SessionReject`] message.
///
/// A command's refusals, each an error reply (the session stays):
///
/// | event | reply | what the SDK does |
/// |---|---|---|
/// | `subscribe` to a name no channel's template matches (the sessions' own path included) | 102 "unknown channel" | subscription fails for good |
/// | `subscribe` to a malformed address (`chat/%zz`), a name over 255 bytes, or another spelling of the canonical address (`chat/café`, `chat/caf%c3%a9`: the reply names the canonical one) | 107 "bad request" | subscription fails for good |
/// | `subscribe` to a MessagePack or raw channel, or with `type` ≠ 0 (map subscriptions) or a tags filter | 108 "not available" | subscription fails for good |
/// | the channel's `on_connect`/`authenticate`/`authorize` refuses with a 4xx [`Reject`](crate::Reject) | 103 "permission denied" | subscription fails for good |
/// | … with [`Reject::token_expired`](crate::Reject::token_expired), or calls [`Handshake::expire_at`](crate::Handshake::expire_at) with a time already past | 109 "token expired" | fetches a new subscription token, subscribes again |
/// | … with a 5xx, or panics, or takes longer than [`command_timeout`](Self::command_timeout); the channel's `on_open` fails, panics or takes longer than `command_timeout` | 100, temporary | resubscribes with backoff |
/// | `subscribe` to a channel string already subscribed | 105 "already subscribed" | — |
/// | `subscribe` past [`max_subscriptions`](Self::max_subscriptions) (128) | 106 "limit exceeded" | subscription fails for good |
/// | `subscribe` to an address at the server's [`max_connections_per_address`](crate::Server::max_connections_per_address) (its members, direct or not) | 106 "limit exceeded" | subscription fails for good |
/// | `subscribe`, `unsubscribe` or `publish` without a channel | close 3501 "bad request" | stops |
/// | `unsubscribe` of a channel not subscribed | `{"id":n,"unsubscribe":{}}`, as for one subscribed | — |
/// | `publish` on a channel string this session is not subscribed to | 103 "permission denied" | — |
/// | `publish` on a channel that takes no client messages (no `on_message`), or with `type` ≠ 0 | 108 "not available" | — |
/// | `publish` without `data` | 107 | — |
/// | `publish` whose `data` does not decode as the channel's client message or fails its validation | 107, message: the error with its causes (never the channel's own error reply); the channel's `on_error` sees it | — |
/// | `publish` whose `on_message` returns `Err` or panics | 100, temporary; the channel's `on_error` sees it | — |
/// | a command over the server's rate limit, under [`RateLimitAction::Reply`](crate::RateLimitAction::Reply) | 111 "too many requests", temporary; the command is not handled | backs off and retries the call |
/// | `subscribe` to a channel the server ended three times within 10 s with a code the SDK resubscribes after at once (2500, 2501) | 100, temporary (one more end is allowed after each) | resubscribes with backoff rather than in a loop |
/// | reused command ids | answered as any (ids are echoed, not tracked) | — |
///
/// A subscription the server ends gets an `unsubscribe` push on its channel (codes below 2500
/// are final for the SDK; from 2500 it resubscribes at once):
///
/// | event | push | direct-mode counterpart |
/// |---|---|---|
/// | [`Conn::close`](crate::Conn::close) with 1000, 1002, 1003, 1007, 1008, 1009, 1010 or an application code but 4001 | 2000, the close's reason (default "server unsubscribe") | that close, final |
/// | [`Conn::close`](crate::Conn::close) with [4001](crate::CLOSE_CREDENTIALS_EXPIRED) | 2501, the close's reason | that close, retried with new credentials |
/// | [`Conn::close`](crate::Conn::close) with 1001, 1011, 1012, 1013 or 1014 | 2500, the close's reason | that close, retried |
/// | the subscription's queue overflows under [`LagPolicy::Disconnect`](crate::LagPolicy::Disconnect) | 2500 "insufficient state"; `on_lag`, then `on_close` | 1013 |
/// | [`Hub::unsubscribe_session`](crate::Hub::unsubscribe_session) | 2000 "server unsubscribe" | — |
/// | the channel's `on_connect` called [`Handshake::expire_at`](crate::Handshake::expire_at), and that time came | 2501 "subscription expired" (the SDK resubscribes: the channel checks its token again, and refuses a stale one with [`Reject::token_expired`](crate::Reject::token_expired), 109) | 4001 |
/// | any of the 2500s above, on a server-side subscription of the identity ([`Identity::subscribe`]), which the SDK would forget rather than resubscribe | the session is closed with 3010 "insufficient state" (3006 "subscription expired" for an expiry): the SDK reconnects and the hook subscribes it again | — |
/// | … on one [`Hub::subscribe_session`](crate::Hub::subscribe_session) made, which nobody would make again | 2000, the reason kept: ended for good (logged) | — |
/// | `drop_oldest` / `drop_new` overflow | that subscription's pushes are dropped (`on_lag`); the session and its other subscriptions go on | the same, per connection |
///
/// A subscription's `on_close` sees what ended it: the push's code (2000, 2500, 2501), 1000
/// for the client's `unsubscribe`, 1011 for an `on_open` that failed, 3010 or 3006 for a
/// server-side one that ended its session, or the session's own close when the session
/// ends. The direct mode's other closes (1007, 1008 for bad input, 1011 for
/// a failed handler) are error replies here, as the tables say.
///
/// The handshake itself is decided as a channel's is (origins, limits, shutdown), except that
/// the only subprotocol answered is `centrifuge-json`, echoed when offered. WebSocket-level
/// pings and the [idle timeout](crate::Server::idle_timeout) do not apply to sessions: the
/// protocol's own pings replace them (a browser SDK cannot see WebSocket pings).
#[must_use = "sessions do nothing until mounted with `Server::sessions`"]
pub struct Sessions<S = ()> {
    pub(crate) path: String,
    pub(crate) settings: Settings,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    /// The hook is written against the server's state type.
    state: std::marker::PhantomData<fn(&S)>,
}

/// The knobs of [`Sessions`], each with the default its setter documents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) ping_interval: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) max_commands_per_frame: usize,
    pub(crate) max_queued_bytes: usize,
    pub(crate) max_subscriptions: usize,
    pub(crate) expiry_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        // Centrifugo's defaults (its `config.go` and `node.go`), but the command timeout,
        // which is ours: below the SDK's 5 s call timeout.
        Self {
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
            command_timeout: Duration::from_secs(4),
            max_commands_per_frame: MAX_COMMANDS_PER_FRAME,
            // Centrifugo's `ClientQueueMaxSize`.
            max_queued_bytes: 1 << 20,
            // Centrifugo's `ClientChannelLimit`.
            max_subscriptions: 128,
            // Centrifugo's `ClientExpiredCloseDelay`.
            expiry_grace: Duration::from_secs(25),
        }
    }
}

impl Settings {
    /// The ping interval in the connect reply's `ping`: whole seconds, as the protocol counts.
    pub(crate) fn ping_seconds(&self) -> u32 {
        u32::try_from(self.ping_interval.as_secs()).unwrap_or(u32::MAX)
    }
}

impl<S> Default for Sessions<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Sessions<S> {
    /// Sessions at [`DEFAULT_SESSIONS_PATH`] (`/connection/websocket`), every `connect`
    /// accepted with an anonymous identity until [`authenticate`](Self::authenticate) says
    /// otherwise. `S` is the state of the [`Server`](crate::Server) they are mounted on.
    pub fn new() -> Self {
        Self::at(DEFAULT_SESSIONS_PATH)
    }

    /// Sessions at `path` (a static path such as `/connection/websocket`; a leading `/` is
    /// added if missing).
    ///
    /// # Panics
    ///
    /// When `path` has an empty segment or a template parameter (`<…>`, `{…}`): the path is
    /// fixed. (Mounting it where a channel's template also matches panics in
    /// [`Server::sessions`](crate::Server::sessions), as two overlapping channels do.)
    pub fn at(path: impl Into<String>) -> Self {
        let path = path.into();
        let path = match path.starts_with('/') {
            true => path,
            false => format!("/{path}"),
        };
        let fixed = path[1..]
            .split('/')
            .all(|segment| !segment.is_empty() && !segment.contains(['<', '>', '{', '}']));
        assert!(
            fixed,
            "sessions path `{path}` must be a fixed path such as `/connection/websocket`"
        );
        Self {
            path,
            settings: Settings::default(),
            authenticator: None,
            state: std::marker::PhantomData,
        }
    }

    /// Moves these sessions to `path` (see [`at`](Self::at)).
    pub fn path(self, path: impl Into<String>) -> Self {
        Self {
            path: Sessions::<S>::at(path).path,
            ..self
        }
    }

    /// The hook every `connect` command goes through: it reads the client's token (and the
    /// upgrade request, the server's state) and says who the session is, or refuses (see
    /// [`SessionReject`] for what each refusal makes the SDK do).
    ///
    /// It runs under [`command_timeout`](Self::command_timeout); a panic or a timeout is a
    /// temporary refusal (error 100, the SDK retries). The session handles nothing else while
    /// it runs. Without a hook, every `connect` is accepted, with an empty user id.
    pub fn authenticate<F, Fut, I>(self, hook: F) -> Sessions<S>
    where
        S: Send + Sync + 'static,
        F: Fn(ConnectRequest<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Identity<I>, SessionReject>> + Send + 'static,
        I: Send + Sync + 'static,
    {
        Self {
            authenticator: Some(Arc::new(Hook {
                hook,
                state: std::marker::PhantomData,
            })),
            ..self
        }
    }

    /// How often the server pings an idle session (the protocol's `{}`, which the SDK answers
    /// with `{}`), in whole seconds; the first ping comes at a random point of the second half
    /// of the first interval, so sessions that connected together do not ping together.
    /// Default: 25 s, as Centrifugo.
    ///
    /// # Panics
    ///
    /// When it is not a whole number of seconds, or zero.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        assert!(
            interval.subsec_nanos() == 0 && interval.as_secs() > 0,
            "the sessions' ping interval is a whole number of seconds (the protocol sends seconds), not {interval:?}"
        );
        self.settings.ping_interval = interval;
        self
    }

    /// How long after a ping the session waits for its pong (or any command) before closing
    /// with 3012 "no pong". Default: 10 s. Must be shorter than the
    /// [ping interval](Self::ping_interval) (checked when mounted).
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.settings.pong_timeout = timeout;
        self
    }

    /// How long a new session has to send `connect` before it is closed with 3502 "stale".
    /// Default: 15 s, as Centrifugo.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long a command may take before it is answered with error 100 (temporary: the SDK
    /// retries): a `connect` (its `authenticate` hook, then the identity's server-side
    /// subscriptions, one deadline for all: those not made by then are left out of the reply),
    /// a `refresh`, a `subscribe` (the channel's `on_connect` and `authorize`, then its
    /// `on_open`, one deadline for both). An ended subscription's `on_close` past it goes on
    /// in a task of its own. Default: 4 s, under the SDK's 5 s call timeout (which would end
    /// the whole connection).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.settings.command_timeout = timeout;
        self
    }

    /// How many commands one frame may carry; a frame with more closes the session with 3501
    /// and none of it is handled. Default: 256 (the SDK sends `connect` and every pending
    /// `subscribe` in one frame when it reconnects).
    ///
    /// # Panics
    ///
    /// When zero.
    pub fn max_commands_per_frame(mut self, commands: usize) -> Self {
        assert!(commands > 0, "a frame must be allowed at least one command");
        self.settings.max_commands_per_frame = commands;
        self
    }

    /// How many bytes a session may have waiting to be written (replies, pings and, with
    /// subscriptions, publications) before it is closed with 3008 "slow": a client that does
    /// not read. Replies are never dropped; they count toward this bound. Default: 1 MiB.
    ///
    /// # Panics
    ///
    /// When zero.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "a session must be allowed to queue something");
        self.settings.max_queued_bytes = bytes;
        self
    }
}

impl<S> Sessions<S> {
    /// How long past its credentials' expiry ([`Identity::expire_at`]) a session that has not
    /// sent `refresh` with new ones stays open before it is closed with 3005 "connection
    /// expired". Default: 25 s, as Centrifugo (the SDK refreshes when the connect reply's
    /// `ttl` has passed; the grace covers its round trip and a slow token service).
    pub fn expiry_grace(mut self, grace: Duration) -> Self {
        self.settings.expiry_grace = grace;
        self
    }

    /// How many channels one session may be subscribed to at once; one more `subscribe` is
    /// answered with error 106 "limit exceeded" (the session stays). Default: 128, as
    /// Centrifugo.
    ///
    /// # Panics
    ///
    /// When zero.
    pub fn max_subscriptions(mut self, subscriptions: usize) -> Self {
        assert!(subscriptions > 0, "a session must be allowed a subscription");
        self.settings.max_subscriptions = subscriptions;
        self
    }
}

impl<S> fmt::Debug for Sessions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("path", &self.path)
            .field("settings", &self.settings)
            .field("authenticate", &self.authenticator.is_some())
            .finish()
    }
}

/// A `connect` command, as the [`authenticate`](Sessions::authenticate) hook reads it: what
/// the client sent in it, the upgrade request of its WebSocket, and the server's state.
pub struct ConnectRequest<S = ()> {
    pub(crate) connect: ConnectParts,
    state: Arc<S>,
}

/// A [`ConnectRequest`] without its state: what the session task hands the erased hook.
pub(crate) struct ConnectParts {
    pub(crate) command: protocol::ConnectRequest,
    pub(crate) request: Arc<http::request::Parts>,
    pub(crate) remote_addr: Option<SocketAddr>,
}

impl<S> ConnectRequest<S> {
    /// The connect token (`token` of the SDK's options, or what its `getToken` returned);
    /// empty when the client sent none.
    pub fn token(&self) -> &str {
        &self.connect.command.token
    }

    /// The client's name (`"js"` for centrifuge-js unless configured); empty when not sent.
    pub fn name(&self) -> &str {
        &self.connect.command.name
    }

    /// The client's version, as it reports it; empty when not sent.
    pub fn version(&self) -> &str {
        &self.connect.command.version
    }

    /// The `data` the client sent with `connect`, as raw JSON; `None` when it sent none.
    pub fn raw_data(&self) -> Option<&str> {
        self.connect
            .command
            .data
            .as_deref()
            .map(serde_json::value::RawValue::get)
    }

    /// The `data` the client sent with `connect`, decoded as `T`; `Ok(None)` when it sent
    /// none, `Err` when it does not decode.
    pub fn data<T: DeserializeOwned>(&self) -> Result<Option<T>, CodecError> {
        self.raw_data()
            .map(|raw| serde_json::from_str(raw).map_err(CodecError::new))
            .transpose()
    }

    /// The headers of the WebSocket's upgrade request (a browser's cookies, for instance).
    pub fn headers(&self) -> &HeaderMap {
        &self.connect.request.headers
    }

    /// The upgrade request's URI (path and query).
    pub fn uri(&self) -> &http::Uri {
        &self.connect.request.uri
    }

    /// The client's address (behind a trusted proxy, the one it forwarded), when known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.connect.remote_addr
    }

    /// The server's shared state.
    pub fn state(&self) -> &S {
        &self.state
    }
}

impl<S> fmt::Debug for ConnectRequest<S> {
    /// Never the token: debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("name", &self.name())
            .field("version", &self.version())
            .field("remote_addr", &self.remote_addr())
            .finish_non_exhaustive()
    }
}

/// Who a session is, as the [`authenticate`](Sessions::authenticate) hook says: a user id
/// (Centrifugo's `user`, shown to other clients in presence), the application's typed data
/// `I`, and what the connect reply tells the client.
pub struct Identity<I = ()> {
    user: String,
    data: I,
    expire_at: Option<SystemTime>,
    reply_data: Option<Result<protocol::Raw, String>>,
    subscriptions: Vec<String>,
}

impl<I> Identity<I> {
    /// The session of user `user` (may be empty, for an anonymous one), with the
    /// application's `data` about it.
    pub fn new(user: impl Into<String>, data: I) -> Self {
        Self {
            user: user.into(),
            data,
            expire_at: None,
            reply_data: None,
            subscriptions: Vec::new(),
        }
    }

    /// When the session's credentials expire: the connect reply then says `expires` and the
    /// seconds left (`ttl`), after which the SDK sends `refresh` with a new token (its
    /// `getToken`), which the [`authenticate`](Sessions::authenticate) hook checks again. A
    /// session not refreshed by then (plus [`expiry_grace`](Sessions::expiry_grace)) is closed
    /// with 3005 "connection expired": the SDK reconnects, and its stale token then gets 109
    /// from the hook, which makes it fetch a new one. A time already past refuses the connect
    /// with error 110 "expired" (and a refresh with close 3005).
    pub fn expire_at(mut self, at: SystemTime) -> Self {
        self.expire_at = Some(at);
        self
    }

    /// `data` for the connect reply (the SDK's `connected` event shows it), encoded as JSON
    /// now. If it does not encode, the connect is answered with error 100 and the error is
    /// logged.
    pub fn reply_data(mut self, data: &impl Serialize) -> Self {
        let encoded = serde_json::to_string(data)
            .and_then(serde_json::value::RawValue::from_string)
            .map_err(|error| error.to_string());
        self.reply_data = Some(encoded);
        self
    }

    /// Subscribes the session to channel `C` at `params` from its start: a server-side
    /// subscription. The channel decides on it as on a client's `subscribe` (its
    /// `on_connect` sees the session's handshake, [`Handshake::is_session`](crate::Handshake::is_session)),
    /// then the connect reply lists it (`subs`), and a Centrifugo SDK delivers its
    /// publications with no `subscribe` of its own (centrifuge-js: the client's `subscribed`
    /// and `publication` events). One its channel refuses is left out of the reply and
    /// logged; more than [`Sessions::max_subscriptions`] close the session with 3505 "channel
    /// limit". Only JSON channels travel over a session: `C` must have the JSON codec.
    ///
    /// ```
    /// use ws_channels::{Identity, channel};
    ///
    /// #[channel("user/events/<userId>")]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct UserEvents { text: String }
    ///
    /// // Every session of ann hears her own events, without subscribing.
    /// let identity = Identity::new("ann", ()).subscribe::<UserEvents>(&UserEventsParams::new("ann"));
    /// # drop(identity);
    /// ```
    pub fn subscribe<C: Channel<Codec = Json>>(mut self, params: &C::Params) -> Self {
        self.subscriptions.push(params.to_string());
        self
    }

    /// The user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The application's data about the session.
    pub fn data(&self) -> &I {
        &self.data
    }
}

impl Identity<()> {
    /// A session of no user in particular (an empty user id), as sessions without an
    /// `authenticate` hook get.
    pub fn anonymous() -> Self {
        Self::new("", ())
    }
}

impl<I> fmt::Debug for Identity<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("expire_at", &self.expire_at)
            .finish_non_exhaustive()
    }
}

/// An [`Identity`] with its data type erased, as the session keeps it.
pub(crate) struct SessionIdentity {
    pub(crate) user: String,
    /// The application's `I`, which the session's subscriptions hand to their channels.
    pub(crate) data: Arc<dyn Any + Send + Sync>,
    pub(crate) expire_at: Option<SystemTime>,
    pub(crate) reply_data: Option<Result<protocol::Raw, String>>,
    /// Channel strings to subscribe to at connect.
    pub(crate) subscriptions: Vec<String>,
}

impl<I: Send + Sync + 'static> From<Identity<I>> for SessionIdentity {
    fn from(identity: Identity<I>) -> Self {
        Self {
            user: identity.user,
            data: Arc::new(identity.data),
            expire_at: identity.expire_at,
            reply_data: identity.reply_data,
            subscriptions: identity.subscriptions,
        }
    }
}

/// Why the [`authenticate`](Sessions::authenticate) hook refuses a `connect`, each with what
/// the client sees and what a Centrifugo SDK then does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionReject {
    /// Error reply 101 "unauthorized" (or the message given): final, the SDK stays
    /// disconnected.
    Unauthorized {
        /// The reply's message, for the client.
        message: String,
    },
    /// Close 3500 "invalid token": final.
    InvalidToken,
    /// Error reply 109 "token expired": the SDK asks the application for a new token
    /// (`getToken`) and reconnects.
    TokenExpired,
    /// Close 3507 "permission denied": final (not a matter of credentials).
    Forbidden,
    /// Error reply 100, temporary (with the message given): the SDK reconnects with backoff.
    Temporary {
        /// The reply's message, for the client.
        message: String,
    },
}

impl SessionReject {
    /// Error reply 101 with `message`: final for the SDK.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized {
            message: message.into(),
        }
    }

    /// Close 3500 "invalid token": final for the SDK.
    pub fn invalid_token() -> Self {
        Self::InvalidToken
    }

    /// Error reply 109: the SDK fetches a new token and reconnects.
    pub fn token_expired() -> Self {
        Self::TokenExpired
    }

    /// Close 3507 "permission denied": final for the SDK.
    pub fn forbidden() -> Self {
        Self::Forbidden
    }

    /// Error reply 100 with `message`, temporary: the SDK reconnects with backoff.
    pub fn temporary(message: impl Into<String>) -> Self {
        Self::Temporary {
            message: message.into(),
        }
    }
}

impl fmt::Display for SessionReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthorized { message } => write!(f, "unauthorized: {message}"),
            Self::InvalidToken => f.write_str("invalid token"),
            Self::TokenExpired => f.write_str("token expired"),
            Self::Forbidden => f.write_str("forbidden"),
            Self::Temporary { message } => write!(f, "temporarily refused: {message}"),
        }
    }
}

impl std::error::Error for SessionReject {}

/// What a hook's future answers, its identity type erased.
pub(crate) type Authenticated = Result<SessionIdentity, SessionReject>;

/// The `authenticate` hook with the server's state and the identity's type erased: what the
/// session task calls, one indirect call per `connect`.
pub(crate) trait Authenticator: Send + Sync + 'static {
    /// Calls the hook. The hook is called inside the returned future (at its first poll), so
    /// a caller guarding the future catches a panic in the hook's synchronous part too.
    fn authenticate(
        self: Arc<Self>,
        connect: ConnectParts,
        state: Arc<dyn Any + Send + Sync>,
    ) -> BoxFuture<'static, Authenticated>;
}

/// A typed hook, erased.
struct Hook<F, S, I> {
    hook: F,
    state: std::marker::PhantomData<fn(S) -> I>,
}

impl<F, Fut, S, I> Authenticator for Hook<F, S, I>
where
    S: Send + Sync + 'static,
    F: Fn(ConnectRequest<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Identity<I>, SessionReject>> + Send + 'static,
    I: Send + Sync + 'static,
{
    fn authenticate(
        self: Arc<Self>,
        connect: ConnectParts,
        state: Arc<dyn Any + Send + Sync>,
    ) -> BoxFuture<'static, Authenticated> {
        let hook = self;
        Box::pin(async move {
            // The server hands its own state: the downcast cannot fail.
            let Ok(state) = state.downcast::<S>() else {
                return Err(SessionReject::temporary("internal server error"));
            };
            (hook.hook)(ConnectRequest { connect, state })
                .await
                .map(SessionIdentity::from)
        })
    }
}
