//! [`TestServer`]: a server's channels driven in memory, for testing handlers without sockets
//! (as Phoenix's `ChannelTest` or socketioxide's dummy socket). The same handshake decision and
//! connection task run as on a real server; only the bytes travel through an in-memory pipe.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use http::{HeaderName, HeaderValue, header};
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::decision::Shared;
use super::socket::Socket;
use super::transport::BoxedTransport;
use super::{Server, ServerHandle};
use crate::channel::{Channel, Params};
use crate::client::{Publisher, Subscription, subscribe};
use crate::error::Error;
use crate::hub::Hub;
use crate::metrics::Metrics;

/// The socket a [`TestServer`] client talks over: WebSocket framing over an in-memory pipe.
pub type TestSocket = WebSocketStream<DuplexStream>;

/// A test client's typed halves, as [`connect`](crate::connect) returns them for a real socket.
pub type TestClient<C> = (
    Publisher<C, SplitSink<TestSocket, WsMessage>>,
    Subscription<C, SplitStream<TestSocket>>,
);

/// The `Host` a test request is sent to: a page at `http://ws-channels.test` is same-origin.
const HOST: &str = "ws-channels.test";

/// How many bytes the in-memory pipe buffers in each direction.
const PIPE: usize = 64 * 1024;

/// Runs a [`Server`]'s channels in memory: typed clients connect without sockets or ports, and
/// every connection goes through the same handshake checks, `on_connect`, connection task,
/// limits and hub as on a served server.
///
/// ```
/// use futures_util::StreamExt;
/// use serde::{Deserialize, Serialize};
/// use ws_channels::{Channel, Server, TestServer, channel};
///
/// /// Echoes what it hears, shouted.
/// #[channel("shout/<room>")]
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Shout { text: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_channels::Error> {
/// let server = Shout::register(Server::new(), |h| {
///     h.on_message(|conn, msg| async move {
///         conn.send(&Shout { text: msg.text.to_uppercase() }).await?;
///         Ok(())
///     })
/// });
/// let test = TestServer::new(server);
/// let (mut tx, mut rx) = test.connect(&ShoutParams::new("lobby")).await?;
/// tx.send(&Shout { text: "hi".into() }).await?;
/// assert_eq!(rx.next().await.expect("a reply")?, Shout { text: "HI".into() });
///
/// // Handshakes are checked as on a real server: a page on another site is refused.
/// let from_elsewhere = test.request(&ShoutParams::new("lobby")).header("origin", "https://evil.example");
/// assert!(matches!(from_elsewhere.connect().await, Err(ws_channels::Error::Rejected { status: 403, .. })));
/// # Ok(()) }
/// ```
#[must_use = "a test server does nothing until a client connects"]
pub struct TestServer<S = ()> {
    shared: Arc<Shared<S>>,
    handle: ServerHandle,
}

impl<S: Send + Sync + 'static> TestServer<S> {
    /// Takes a server's registrations and settings.
    pub fn new(server: Server<S>) -> Self {
        let handle = server.handle();
        Self {
            shared: Arc::new(server.into_shared()),
            handle,
        }
    }

    /// Connects a typed client to a channel address.
    pub async fn connect<P: Params>(&self, params: &P) -> Result<TestClient<P::Channel>, Error> {
        self.request(params).connect().await
    }

    /// A handshake request to a channel address, to add headers, a query string or a remote
    /// address before connecting. It is sent with `Host: ws-channels.test`.
    pub fn request<P: Params>(&self, params: &P) -> TestRequest<'_, S, P::Channel> {
        TestRequest {
            server: self,
            path: params.to_path(),
            query: None,
            headers: http::HeaderMap::new(),
            remote_addr: None,
            _channel: PhantomData,
        }
    }

    /// The hub, to publish to the test server's connections.
    pub fn hub(&self) -> Hub {
        self.shared.hub.clone()
    }

    /// The server's counters.
    pub fn metrics(&self) -> Metrics {
        self.shared.hub.metrics()
    }

    /// A handle to shut the test server down gracefully (every connection gets 1001).
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }
}

impl<S> fmt::Debug for TestServer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer").finish_non_exhaustive()
    }
}

/// A handshake request to a [`TestServer`]; see [`TestServer::request`].
#[must_use = "a request does nothing until `connect` is called"]
pub struct TestRequest<'a, S, C> {
    server: &'a TestServer<S>,
    path: Result<String, crate::ParamError>,
    query: Option<String>,
    headers: http::HeaderMap,
    remote_addr: Option<SocketAddr>,
    _channel: PhantomData<fn() -> C>,
}

impl<S: Send + Sync + 'static, C: Channel> TestRequest<'_, S, C> {
    /// Adds a request header (`authorization`, `cookie`, `origin`…). An invalid name or value
    /// is ignored.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            self.headers.append(name, value);
        }
        self
    }

    /// Sets the query string, without the `?` (`token=abc&name=ann`).
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// Sets the peer address handlers see (`None` by default: a pipe has none).
    pub fn remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// Runs the handshake; on success, runs the connection and returns the client's halves. A
    /// refusal is [`Error::Rejected`] with its status and reason.
    pub async fn connect(self) -> Result<TestClient<C>, Error> {
        let shared = &self.server.shared;
        let path = self.path?;
        let uri = match &self.query {
            Some(query) => format!("/{path}?{query}"),
            None => format!("/{path}"),
        };
        let mut request = http::Request::get(uri).body(()).map_err(|error| Error::Rejected {
            status: 400,
            body: error.to_string(),
        })?;
        let headers = request.headers_mut();
        headers.insert(header::HOST, HeaderValue::from_static(HOST));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        let offer = crate::subprotocol::offer(<C::Codec as crate::Codec>::NAME, C::NAME);
        if let Ok(offer) = HeaderValue::from_str(&offer) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, offer);
        }
        // The test's own headers last: each replaces ours of the same name (the offer too).
        headers.extend(self.headers);
        let (parts, ()) = request.into_parts();
        let deadline = Instant::now() + shared.config.handshake_timeout;
        let accepted = shared
            .decide(parts, self.remote_addr, deadline)
            .await
            .map_err(|reject| Error::Rejected {
                status: reject.status().as_u16(),
                body: reject.reason().to_owned(),
            })?;
        let (client, server) = tokio::io::duplex(PIPE);
        let config = shared.config.websocket;
        shared.lifecycle.spawn(async move {
            let socket = Socket::server(server, Vec::new(), config);
            (accepted.session)(BoxedTransport::new(socket));
        });
        let socket = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let (sink, stream) = socket.split();
        Ok((Publisher::new(sink), subscribe(stream)))
    }
}
