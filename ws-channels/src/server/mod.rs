//! The server. Start at `decision`: what every handshake gets, the same on every front end.
//! Then:
//! - the [`Server`] builder (here) and its configuration (`config`, `limits`, `router`);
//! - the front ends, each of which reads a request, has it decided and hands the upgraded
//!   socket over: `standalone` (the accept loop, over `http1`), `axum`, `upgraded` (a WebSocket
//!   the application accepted itself) and the in-memory `testing` server;
//! - a connection's task (`task`), which orchestrates its reader (`reader`, clocks in
//!   `liveness`), its writer (`writer`) and the wake plumbing between them (`wake`), over its
//!   transport (`transport`; the server's own socket is `socket`); the task is compiled once,
//!   and reaches its channel's types through the connection's binding (`bound`);
//! - what handlers see: `Handshake` in `handshake`, `Conn` in `conn`, handlers in `handler`;
//! - sessions (the Centrifugo client protocol): the builder and its hook's types in
//!   `sessions`, the endpoint's route and task in `session_task` (its wire layer is the
//!   crate's `session` folder).

#[cfg(feature = "axum")]
mod axum;
mod bound;
mod config;
mod conn;
mod decision;
mod guard;
mod handler;
mod handshake;
mod http1;
mod lifecycle;
mod limits;
mod liveness;
mod reader;
mod response;
mod router;
mod running;
mod session_clock;
mod session_task;
mod sessions;
mod socket;
mod standalone;
mod subscription;
mod task;
mod testing;
mod transport;
mod upgraded;
mod wake;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};

#[cfg(feature = "axum")]
pub use axum::{ServeApp, serve_app};
pub use config::ProxyHeader;
pub use conn::{CloseInfo, Conn, Lagged};
pub use handler::Handler;
pub use handshake::{ExtractToken, Handshake, TokenSource};
pub use lifecycle::ServerHandle;
pub use limits::{RateLimit, RateLimitAction};
pub use response::Reject;
pub use sessions::{ConnectRequest, DEFAULT_SESSIONS_PATH, Identity, SessionReject, Sessions};
pub use testing::{TestClient, TestRequest, TestServer, TestSocket};
pub use upgraded::Acceptor;

use self::config::{Config, Origin, Origins};
use self::decision::{Route, Shared};
use self::lifecycle::Lifecycle;
use self::limits::ConnectionLimits;
use self::router::Router;
use self::standalone::Wire;
use crate::channel::{Channel, Params};
use crate::error::Error;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::pattern::{Segment, Template};

/// A standalone WebSocket server for typed channels, on tokio-tungstenite.
///
/// Register one [`Handler`] per channel, set limits, then [`serve`](Self::serve) a listener
/// (or mount it in axum with `into_router`, or drive it in memory with a
/// [`TestServer`](crate::TestServer)):
///
/// ```no_run
/// use std::time::Duration;
/// use ws_channels::{Channel, RateLimit, Server};
/// # #[ws_channels::channel("chat/<room>")]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Chat;
///
/// # async fn run() -> Result<(), ws_channels::Error> {
/// let server = Chat::register(Server::new(), |h| h)
///     .max_message_size(16 * 1024)
///     .rate_limit(RateLimit::per_second(20).burst(40))
///     .idle_timeout(Some(Duration::from_secs(300)));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// // Until Ctrl-C; then every connection is closed with 1001.
/// server
///     .serve_with_shutdown(listener, async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await
/// # }
/// ```
///
/// Limits refuse at the handshake, before the upgrade; here one connection per address:
///
/// ```
/// use ws_channels::{Channel, Error, Server, TestServer};
/// # #[ws_channels::channel("chat/<room>")]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Chat;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let server = Chat::register(Server::new(), |h| h).max_connections_per_address(1);
/// let test = TestServer::new(server);
/// let _first = test.connect(&ChatParams::new("lobby")).await?;
/// let second = test.connect(&ChatParams::new("lobby")).await;
/// assert!(matches!(second, Err(Error::Rejected { status: 503, .. })));
/// let elsewhere = test.connect(&ChatParams::new("kitchen")).await;
/// assert!(elsewhere.is_ok(), "another address has its own count");
/// # Ok(()) }
/// ```
///
/// A graceful shutdown closes every connection with 1001 ("going away"), after the messages
/// already queued for it:
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Channel, CloseCode, Server, TestServer};
/// # #[ws_channels::channel("chat/<room>")]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Chat;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_channels::Error> {
/// let server = Chat::register(Server::new(), |h| h);
/// let handle = server.handle(); // take it before serving
/// let test = TestServer::new(server);
/// let (_tx, mut rx) = test.connect(&ChatParams::new("lobby")).await?;
/// // The client reads on, which answers the server's close frame and lets the shutdown end.
/// let ((), end) = tokio::join!(handle.shutdown(), rx.next());
/// assert!(end.is_none());
/// assert_eq!(rx.close_code(), Some(CloseCode::Away));
/// # Ok(()) }
/// ```
///
/// Each request path is matched against every registered template:
///
/// | request | outcome |
/// |---|---|
/// | path matches no template | HTTP 404 before the upgrade |
/// | not a WebSocket upgrade | HTTP 426 (405 for a method other than GET; 400 for HTTP/1.0, or without a `Sec-WebSocket-Key` that is the base64 of 16 bytes; 426 for a version other than 13) |
/// | a parameter not percent-encoded as RFC 3986 says (`%zz`) | HTTP 400 |
/// | a browser `Origin` from another host, or not in [`allowed_origins`](Self::allowed_origins) | HTTP 403 |
/// | a parameter does not parse as its type | HTTP 400, the reason in the body |
/// | over [`max_connections`](Self::max_connections) or [`max_connections_per_address`](Self::max_connections_per_address), or the server is shutting down | HTTP 503 |
/// | `on_connect` returns a [`Reject`] | its status (401, 403…) and reason |
/// | `on_connect` panics | HTTP 500 |
/// | `on_connect` does not decide within the [handshake timeout](Self::handshake_timeout) | HTTP 408 |
/// | a request head over 16 KiB or 64 headers | HTTP 431 (standalone server; under axum, hyper answers 431 past its own limits, about 408 KiB and 100 headers) |
/// | bytes that are not HTTP | HTTP 400 |
/// | more sockets in their handshake than [`max_pending_handshakes`](Self::max_pending_handshakes), or than [`max_pending_handshakes_per_ip`](Self::max_pending_handshakes_per_ip) from one address (loopback peers and [trusted proxies](Self::trusted_proxies) exempt) | the new socket is closed at once, without a response (standalone server; axum has no such cap) |
/// | no complete request head within the handshake timeout | the socket is dropped without a response (standalone server; under axum, `serve_app`'s header read timeout does it) |
/// | otherwise | 101, then the connection task runs the handler |
///
/// Once connected, bad input never panics and never affects other connections:
///
/// | event | outcome (default) |
/// |---|---|
/// | a frame that does not decode as the client message type (JSON text, or MessagePack for `codec = msgpack`) | close 1007 (or an error reply, under `on_invalid = reply`) |
/// | a message that fails [`Validate`](crate::Validate) | close 1008 (or an error reply, under `on_invalid = reply`) |
/// | a binary frame on a JSON channel without [`on_binary`](Handler::on_binary), or a text frame on a MessagePack channel | close 1003 (or an error reply) |
/// | a text or binary message larger than [`max_message_size`](Self::max_message_size), in one frame or many | close 1009 (or an error reply, under `on_invalid = reply`) |
/// | a frame or message larger than twice that (a message that never ends, too) | close 1009, without reading further |
/// | messages faster than the [`rate_limit`](Self::rate_limit) | close 1013 (try again later), or dropped with at most one error reply per second ([`RateLimitAction::Reply`]) |
/// | a full outbound queue (a slow reader) | the channel's [`LagPolicy`](crate::LagPolicy): close 1013 (try again later) by default, though that close frame cannot reach a reader whose socket is full: it sees 1006 |
/// | no pong (nor any frame) between two [pings](Self::ping_interval) | close 1001 (`ping timeout`) |
/// | no message for the [idle timeout](Self::idle_timeout) | close 1001 (`idle timeout`) |
/// | the credentials expire ([`Handshake::expire_at`]) | close [4001](crate::CLOSE_CREDENTIALS_EXPIRED) (`credentials expired`) |
/// | a handler (or the channel's `Validate`/`ErrorReply`) returns `Err` or panics | close 1011 (`internal error`) for this connection only |
/// | invalid UTF-8 in a text frame | close 1007 (`invalid UTF-8`), even under `on_invalid = reply` |
/// | a protocol violation (reserved opcode, RSV bit, unmasked frame, stray continuation, control frame over 125 bytes) | close 1002 (`protocol error`) |
/// | a close frame with an invalid code | answered with 1002, which `on_close` sees (`by_server: false`) |
/// | shutdown | close 1001 for every connection |
/// | the peer drops mid-message or without a close frame | `on_close` sees 1006 |
/// | the peer does not answer the server's close frame | dropped after the [close timeout](Self::close_timeout) |
///
/// A reconnecting [`Client`](crate::Client) reads these codes as the
/// [`ConnectionState`](crate::ConnectionState) table says: 1001, 1011, 1013 and 4001 (and HTTP
/// 503 or 408 refusals) are retried; 1000, 1002, 1003, 1007, 1008, 1009 (and HTTP 400, 401, 403,
/// 404) are final, so a client is never refused in a loop.
///
/// Error replies are sent only when the connection's queue has room: they never overflow or
/// disconnect the client they answer (those not sent are counted in
/// [`MetricsSnapshot::error_replies_dropped`](crate::MetricsSnapshot::error_replies_dropped)).
/// Every kind of bad input, with the test that keeps its outcome, is in
/// [`guide::bad_input`](crate::guide::bad_input); what the application must add, in
/// [`guide::threat_model`](crate::guide::threat_model).
///
/// Errors (bad frames, limits, handler failures, transport errors) are also reported to
/// [`Handler::on_error`]; lag to [`Handler::on_lag`]; every end, with its code, to
/// [`Handler::on_close`] (except connections still running when a shutdown times out: they are
/// dropped, and cleaned up without it). Handlers of one connection run one at a time: a handler
/// that never returns holds its connection (and its slot under the connection limits) until the
/// connection closes (a credential expiry, a shutdown, [`Conn::close`]) and the
/// [close timeout](Self::close_timeout) passes, when it is dropped.
#[must_use = "a server does nothing until served"]
pub struct Server<S = ()> {
    router: Router<Box<dyn Route<S>>>,
    /// Every registered channel's `NAME` and Rust type: names key the hub's topics, here and
    /// on every node of a cluster, so two channels may not share one.
    channels: Vec<(&'static str, &'static str)>,
    state: Arc<S>,
    hub: Hub,
    lifecycle: Arc<Lifecycle>,
    config: Config,
}

impl Server<()> {
    /// A server without shared state.
    pub fn new() -> Self {
        Self::with_state(())
    }
}

impl Default for Server<()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Send + Sync + 'static> Server<S> {
    /// A server whose handlers share `state` (through `conn.state()` and `handshake.state()`).
    pub fn with_state(state: S) -> Self {
        let hub = Hub::default();
        Self {
            router: Router::new(),
            channels: Vec::new(),
            state: Arc::new(state),
            lifecycle: Arc::new(Lifecycle::new(hub.clone())),
            hub,
            config: Config::default(),
        }
    }

    /// A handle to shut the server down gracefully once it is serving.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// The hub, to publish to this server's connections from anywhere (HTTP routes,
    /// background tasks). Take it before serving; it stays valid while the server runs.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// The server's counters (connections, messages, drops).
    pub fn metrics(&self) -> Metrics {
        self.hub.metrics()
    }

    /// Attaches a handler to its channel's address template.
    ///
    /// [`Channel::register`] (`UserEvents::register(server, |h| …)`) calls this.
    ///
    /// # Panics
    ///
    /// When the template overlaps one already registered, that is when some path would match
    /// both: the same shape (`chat/<room>` and `chat/<id>`), or a static segment where the other
    /// has a parameter (`files/list` and `files/<name>`: a client of `files/<name>` sending
    /// `list` would land on the other channel). A programming error, caught at startup; give
    /// the channels distinct static segments (`files/by-name/<name>`).
    ///
    /// When another registered channel has the same `NAME` (two types called `Chat` in two
    /// modules): topics are keyed by it, on every node, so their messages would mix. Give
    /// one of them another with `#[channel(…, name = "…")]`.
    pub fn register<C: Channel, D: Send + Sync + 'static>(mut self, handler: Handler<C, S, D>) -> Self {
        let this = std::any::type_name::<C>();
        if let Some((_, other)) = self.channels.iter().find(|(name, _)| *name == C::NAME) {
            panic!(
                "cannot register channel `{this}`: channel `{other}` has the same name `{}` (topics are \
                 keyed by it); give one of them another with `#[channel(…, name = \"…\")]`",
                C::NAME
            );
        }
        self.channels.push((C::NAME, this));
        self.router
            .insert(C::Params::TEMPLATE, C::NAME, Box::new(Arc::new(handler)));
        self
    }

    /// Mounts [`Sessions`] at their path (`/connection/websocket` by default): clients of the
    /// Centrifugo protocol (any Centrifugo SDK) connect there, beside the channels, through
    /// the same handshake checks (origins, connection limits, shutdown). See [`Sessions`] for
    /// what a session does and every way it ends.
    ///
    /// # Panics
    ///
    /// When sessions are already mounted, when their path overlaps a channel's template, or
    /// when their pong timeout is not shorter than their ping interval.
    pub fn sessions(mut self, sessions: Sessions<S>) -> Self {
        let Sessions {
            path,
            settings,
            authenticator,
            ..
        } = sessions;
        assert!(
            settings.pong_timeout < settings.ping_interval,
            "the sessions' pong timeout ({:?}) must be shorter than their ping interval ({:?})",
            settings.pong_timeout,
            settings.ping_interval,
        );
        // Their metrics label is a channel name: no channel may have it, nor other sessions.
        if let Some((_, other)) = self.channels.iter().find(|(name, _)| *name == session_task::LABEL) {
            panic!(
                "cannot mount sessions at `{path}`: `{other}` already has the name `{}`",
                session_task::LABEL
            );
        }
        self.channels.push((session_task::LABEL, "sessions"));
        let endpoint = session_task::Endpoint::new(settings, authenticator, &path);
        // The router keeps templates for the server's life; a path is fixed, so its template
        // is one static segment per part. Leaked once per server built.
        let address: &'static str = Box::leak(path.trim_start_matches('/').to_owned().into_boxed_str());
        let segments: Vec<Segment> = address.split('/').map(Segment::Static).collect();
        let template = Template::__new(address, Box::leak(segments.into_boxed_slice()));
        self.router.insert(template, session_task::LABEL, Box::new(endpoint));
        self
    }

    /// The largest text message accepted, in bytes. A larger one gets the channel's
    /// invalid-input outcome: close 1009, or an error reply under `on_invalid = reply`, the
    /// connection staying open. Frames over twice the limit are refused by the protocol layer
    /// without being read (always 1009), so memory per connection stays bounded.
    /// Default: 64 KiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config = self.config.with_max_message_size(bytes);
        self
    }

    /// The largest message the server sends, in bytes: a larger one is refused with
    /// [`Error::OutgoingTooLarge`](crate::Error::OutgoingTooLarge) by `send`, `broadcast` and
    /// the hub, and nothing is queued. Default: 1 MiB.
    ///
    /// A connection's memory for writing is bounded apart from this: at most
    /// [`outbound_queue`](Self::outbound_queue) messages wait for its writer, the writer
    /// buffers at most 8 KiB of frames plus the one being added before it writes them, and
    /// control frames waiting to be written (pongs to a client that pings but never reads)
    /// are capped at 9 KiB.
    pub fn max_outgoing_message_size(self, bytes: usize) -> Self {
        self.hub.set_max_outgoing(bytes);
        self
    }

    /// How many bytes one read of a connection's socket asks for. Default: 4 KiB. A
    /// connection holds this buffer from a read of its socket until a later read finds
    /// nothing more (so also while a handler awaits between the two): an idle connection holds
    /// none, whatever this size, and a busy one reuses one buffer read after read.
    /// (tungstenite's own default is a 128 KiB buffer held for the connection's life; here the
    /// frame buffer it keeps is 512 bytes, and grows to the largest frame received.) A message
    /// larger than this takes several reads, each a system call.
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config.websocket = self.config.websocket.read_buffer_size(bytes);
        self
    }

    /// How many outgoing messages may wait for a connection's writer. When a slow reader's
    /// queue is full, its channel's [`LagPolicy`](crate::LagPolicy) decides. Default: 128.
    ///
    /// # Panics
    ///
    /// If `messages` is zero.
    pub fn outbound_queue(mut self, messages: usize) -> Self {
        assert!(messages > 0, "the outbound queue needs room for at least one message");
        self.config.outbound_queue = messages;
        self
    }

    /// Limits each connection's message rate (text and binary frames). Default: no limit.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = Some(limit);
        self
    }

    /// The most connections open at once; a handshake over it is refused with 503 before the
    /// upgrade. A session counts as one, however many channels it subscribes to. Default: no
    /// limit.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.config.max_connections = Some(connections);
        self
    }

    /// The most connections open at once to one concrete address (`chat/lobby`); a handshake
    /// over it is refused with 503 before the upgrade. A session's subscription to the address
    /// counts as one of them (over the limit, its `subscribe` gets error 106); sessions
    /// themselves, which share their path, are not counted per address. Default: no limit.
    pub fn max_connections_per_address(mut self, connections: usize) -> Self {
        self.config.max_connections_per_address = Some(connections);
        self
    }

    /// Allows browser pages from exactly these origins (`"https://example.com"`; scheme and
    /// host compare without regard to case, as RFC 6454 says) and refuses others with 403.
    /// Requests without an `Origin` header (non-browser clients) are always allowed.
    ///
    /// Default: only pages from the host the request was sent to (the `Origin`'s host and port
    /// must equal the `Host` header), as Phoenix's `check_origin` does. Browsers send cookies
    /// with a cross-site WebSocket handshake, so without this check a page on any site could
    /// open a connection as your logged-in user (cross-site WebSocket hijacking).
    ///
    /// # Panics
    ///
    /// When an entry is not an origin (`"example.com"` without its scheme, a path, a user, no
    /// host; a scheme without a default port, such as `tauri://localhost`, is one):
    /// such an entry could never match, and every browser would get 403 with no other word.
    /// A configuration mistake, caught when the server is built rather than at the first
    /// browser's handshake.
    ///
    /// ```should_panic
    /// // Panics: "allowed origin `example.com` is not an origin (scheme://host[:port])".
    /// let server = ws_channels::Server::new().allowed_origins(["example.com"]);
    /// ```
    pub fn allowed_origins<I: IntoIterator<Item = O>, O: AsRef<str>>(mut self, origins: I) -> Self {
        let parsed = origins
            .into_iter()
            .map(|origin| {
                let origin = origin.as_ref();
                Origin::parse(origin)
                    .unwrap_or_else(|| panic!("allowed origin `{origin}` is not an origin (scheme://host[:port])"))
            })
            .collect();
        self.config.origins = Origins::List(parsed);
        self
    }

    /// Allows browser pages from any origin. Only for channels that authenticate without
    /// cookies (a token the page must send explicitly): see [`allowed_origins`](Self::allowed_origins).
    pub fn allow_any_origin(mut self) -> Self {
        self.config.origins = Origins::Any;
        self
    }

    /// How often the server pings each connection; a connection from which nothing (not even
    /// a pong) was heard between two pings is closed with 1001 (`ping timeout`). `None`
    /// disables pings. Default: 30 s.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.liveness.ping_interval = interval;
        self
    }

    /// Closes a connection with 1001 (`idle timeout`) when the client sent no message (text
    /// or binary; pongs do not count) for this long. Default: none.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.liveness.idle_timeout = timeout;
        self
    }

    /// How many accepted sockets may be in their handshake at once (standalone server). Over
    /// it, a new socket is closed at once, so clients that connect and never finish their
    /// request cannot exhaust file descriptors; each is also bounded by the
    /// [handshake timeout](Self::handshake_timeout). Default: 1024.
    ///
    /// # Panics
    ///
    /// If `handshakes` is zero.
    pub fn max_pending_handshakes(mut self, handshakes: usize) -> Self {
        assert!(handshakes > 0, "at least one handshake must be allowed");
        self.config.max_pending_handshakes = handshakes;
        self
    }

    /// How many accepted sockets from one IP address may be in their handshake at once
    /// (standalone server), so one address cannot hold every slot of
    /// [`max_pending_handshakes`](Self::max_pending_handshakes) and lock everyone else out.
    /// [Trusted proxies](Self::trusted_proxies) and loopback peers (a proxy on the same host)
    /// are exempt: they carry many clients. Over it, a new socket is closed at once. Default: 64.
    ///
    /// # Panics
    ///
    /// If `handshakes` is zero.
    pub fn max_pending_handshakes_per_ip(mut self, handshakes: usize) -> Self {
        assert!(handshakes > 0, "at least one handshake per address must be allowed");
        self.config.max_pending_handshakes_per_ip = handshakes;
        self
    }

    /// The reverse proxies (load balancers) in front of this server, and the header they name
    /// the client in. A request whose socket comes from one of them is attributed to the
    /// client the proxy names: the first address in `header`, read from the right, that is not
    /// itself a trusted proxy. That address is what [`Handshake::remote_addr`],
    /// [`Conn::remote_addr`] and the logs see (with port 0 when the header gives none). From
    /// any other peer the header is ignored (anyone can send it), and the other forwarding
    /// header is always ignored (a proxy passes a client's own copy of it through). Addresses
    /// compare as IPv4 when they are IPv4-mapped IPv6 (`::ffff:10.0.0.9`). Default: none.
    ///
    /// ```
    /// use ws_channels::{ProxyHeader, Server};
    /// let server = Server::new().trusted_proxies(ProxyHeader::XForwardedFor, ["10.0.0.9".parse().unwrap()]);
    /// ```
    pub fn trusted_proxies<I: IntoIterator<Item = std::net::IpAddr>>(
        mut self,
        header: ProxyHeader,
        proxies: I,
    ) -> Self {
        self.config.trusted_proxies = proxies.into_iter().map(|ip| ip.to_canonical()).collect();
        self.config.proxy_header = header;
        self
    }

    /// How long a client has to send its upgrade request and `on_connect` has to decide.
    /// Default: 10 s. A request head that is not complete by then is dropped without a
    /// response (standalone server); an `on_connect` that has not decided gets 408.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// How long a connection waits for the peer's close reply after the server closed it.
    /// A peer that does not read at all (its socket full, so the close frame cannot even be
    /// written) is dropped after twice this: once waiting for the reply, once more for the
    /// writer. Default: 3 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for connections to finish closing before dropping
    /// them. Default: 10 s.
    pub fn shutdown_timeout(self, timeout: Duration) -> Self {
        self.lifecycle.set_timeout(timeout);
        self
    }

    /// Binds `addr` and serves until the process ends.
    pub async fn listen(self, addr: impl ToSocketAddrs) -> Result<(), Error> {
        let listener = TcpListener::bind(addr).await?;
        self.serve(listener).await
    }

    /// Serves connections from `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) -> Result<(), Error> {
        self.serve_with_shutdown(listener, std::future::pending()).await
    }

    /// Serves connections from `listener` until `signal` completes, then shuts down
    /// gracefully: stops accepting, closes every connection with 1001 (after the messages
    /// already queued for it), and waits up to the [shutdown timeout](Self::shutdown_timeout)
    /// for them to finish.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        self.serve_on(listener, Wire::Plain, signal).await
    }

    /// Serves `wss://` connections from `listener` until the process ends: each socket's TLS
    /// handshake, then its WebSocket handshake, must finish within the
    /// [handshake timeout](Self::handshake_timeout). `tls` is a rustls server configuration
    /// (certificate chain and key); set its `alpn_protocols` to `http/1.1` or leave them
    /// empty. Feature `rustls`.
    ///
    /// ```no_run
    /// # #[ws_channels::channel("chat/<room>")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Chat;
    /// use std::sync::Arc;
    /// use ws_channels::{Channel, Server};
    ///
    /// # async fn run(certs: Vec<rustls::pki_types::CertificateDer<'static>>, key: rustls::pki_types::PrivateKeyDer<'static>) -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key)?;
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
    /// Chat::register(Server::new(), |h| h).serve_tls(listener, Arc::new(tls)).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(any(feature = "rustls", feature = "rustls-native-roots"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub async fn serve_tls(self, listener: TcpListener, tls: Arc<rustls::ServerConfig>) -> Result<(), Error> {
        self.serve_tls_with_shutdown(listener, tls, std::future::pending())
            .await
    }

    /// [`serve_tls`](Self::serve_tls) until `signal` completes, then a graceful shutdown as in
    /// [`serve_with_shutdown`](Self::serve_with_shutdown). Feature `rustls`.
    #[cfg(any(feature = "rustls", feature = "rustls-native-roots"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub async fn serve_tls_with_shutdown(
        self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        self.serve_on(listener, Wire::Rustls(tokio_rustls::TlsAcceptor::from(tls)), signal)
            .await
    }

    async fn serve_on(
        self,
        listener: TcpListener,
        wire: Wire,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        if self.router.is_empty() {
            tracing::warn!("serving with no channel registered: every request gets 404");
        }
        let handle = self.handle();
        standalone::serve(Arc::new(self.into_shared()), listener, wire, signal).await;
        handle.shutdown().await;
        Ok(())
    }

    fn into_shared(self) -> Shared<S> {
        let config = self.config;
        Shared {
            limits: Arc::new(ConnectionLimits::new(
                config.max_connections,
                config.max_connections_per_address,
            )),
            router: self.router,
            state: self.state,
            hub: self.hub,
            lifecycle: self.lifecycle,
            config: Arc::new(config),
        }
    }
}
