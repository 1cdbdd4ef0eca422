//! A front end of the application's own: a WebSocket it accepted itself (another framework, a
//! tokio-tungstenite `accept_hdr_async`, a custom transport), decided and run as the other
//! front ends' are.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::decision::Shared;
use super::transport::{BoxedTransport, Upgraded};
use super::{Reject, Server, ServerHandle};
use crate::hub::Hub;
use crate::transport::{MessageSink, MessageStream, close_frame};

impl<S: Send + Sync + 'static> Server<S> {
    /// Serves the registered channels over WebSockets that your own code accepted: another
    /// HTTP framework's upgrade, a tokio-tungstenite `accept_hdr_async` of your own, a custom
    /// transport. Each socket gets the same decision as on the standalone server and axum
    /// (routing, origin, limits, `on_connect`) and then the same connection task; see
    /// [`Acceptor::serve_socket`].
    pub fn into_acceptor(self) -> Acceptor<S> {
        Acceptor {
            shared: Arc::new(self.into_shared()),
        }
    }
}

/// The registered channels of a [`Server`], for WebSockets accepted elsewhere
/// ([`Server::into_acceptor`]). Clones share the server.
///
/// Two calls make a front end: [`check`](Self::check) in the upgrade's handshake callback
/// (synchronous: the route, the upgrade headers, the origin and the subprotocol, refused with
/// an HTTP status before the upgrade), then [`serve_socket`](Self::serve_socket) once upgraded
/// (the parameters, the limits and `on_connect`, then the connection). A tokio-tungstenite
/// server of your own:
///
/// ```no_run
/// use std::time::Duration;
/// use ws_channels::http::header::SEC_WEBSOCKET_PROTOCOL;
/// use ws_channels::tungstenite::handshake::server::{Request, Response};
/// use ws_channels::{Channel, Server};
/// # #[ws_channels::channel("chat/<room>")]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Chat;
///
/// # async fn run() -> std::io::Result<()> {
/// let acceptor = Chat::register(Server::new(), |h| h).into_acceptor();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (tcp, peer) = listener.accept().await?;
///     let acceptor = acceptor.clone();
///     tokio::spawn(async move {
///         let mut head = None;
///         let check = |request: &Request, mut response: Response| match acceptor.check(request) {
///             Ok(protocol) => {
///                 if let Some(protocol) = protocol {
///                     response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, protocol);
///                 }
///                 head = Some((request.uri().clone(), request.headers().clone()));
///                 Ok(response)
///             }
///             // 404, 403, 400…: an HTTP answer, before the upgrade.
///             Err(reject) => Err(reject.to_response().map(Some)),
///         };
///         // The server's limits on message and frame sizes, and a bounded handshake.
///         let config = Some(acceptor.websocket_config());
///         let handshake = tokio_tungstenite::accept_hdr_async_with_config(tcp, check, config);
///         let Ok(Ok(socket)) = tokio::time::timeout(Duration::from_secs(10), handshake).await else {
///             return;
///         };
///         if let Some((uri, headers)) = head {
///             // Refused now (the limits, `on_connect`): closed with a code.
///             let _ = acceptor.serve_socket(&uri, &headers, Some(peer), socket).await;
///         }
///     });
/// }
/// # }
/// ```
///
/// What your accept loop owns, which the standalone server does for its own sockets: a bound
/// on the time to the upgrade (above: 10 s), and on the sockets in their handshake at once
/// (the standalone server's [`max_pending_handshakes`](Server::max_pending_handshakes)).
pub struct Acceptor<S = ()> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Acceptor<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Send + Sync + 'static> Acceptor<S> {
    /// The part of the decision an upgrade's handshake callback can take, before the 101: the
    /// server is not shutting down (else 503), the path is a channel's (404), the request is
    /// a WebSocket upgrade (405, 400, 426), its origin is allowed (403), and a typed client's
    /// subprotocol offer is this channel's (400). `Ok` carries the subprotocol to name in the
    /// 101 (`Sec-WebSocket-Protocol`), if any: without it a typed [`Client`](crate::Client)
    /// refuses the 101 and connects again without offering one. A refusal is counted, and
    /// [`Reject::to_response`] is the answer to send.
    pub fn check<B>(&self, request: &http::Request<B>) -> Result<Option<http::HeaderValue>, Reject> {
        let mut head = http::Request::new(());
        *head.method_mut() = request.method().clone();
        *head.uri_mut() = request.uri().clone();
        *head.version_mut() = request.version();
        *head.headers_mut() = request.headers().clone();
        let (head, ()) = head.into_parts();
        let checked = self
            .shared
            .check(&head)
            .inspect_err(|reject| self.shared.refused(None, reject))?;
        Ok(checked
            .subprotocol
            .and_then(|protocol| http::HeaderValue::from_str(&protocol).ok()))
    }

    /// The WebSocket settings of the server, for the upgrade your code makes
    /// (tokio-tungstenite's defaults accept messages of 64 MiB): the read limits of
    /// [`max_message_size`](Server::max_message_size) (a frame or message over twice it is
    /// refused unread), and a write buffer bounded by a flush threshold plus one message of
    /// [`max_outgoing_message_size`](Server::max_outgoing_message_size). (The server's own
    /// sockets write data frames beside tungstenite's buffer; a socket of yours writes every
    /// frame through it.)
    pub fn websocket_config(&self) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        let config = self.shared.config.websocket;
        // Room for one whole frame of the largest message over the flush threshold.
        let bound = config
            .write_buffer_size
            .saturating_add(self.shared.hub.max_outgoing())
            .saturating_add(16);
        config.max_write_buffer_size(bound)
    }

    /// Decides `socket`, already upgraded, as if its upgrade request (`uri`, with its path and
    /// query, and `headers`, as the client sent them: the decision checks the upgrade headers
    /// too) had come to the server from `remote_addr`; then starts its connection in a task of
    /// its own, as every front end does. Returns once decided (after `on_connect`), or once a
    /// refused socket is closed.
    ///
    /// The socket was upgraded before this decision, so a refusal cannot be an HTTP status: the
    /// socket is closed with the close code that says the same, its reason as the reason
    /// (cut to 123 bytes), and the refusal is returned (and counted, like every refusal):
    ///
    /// | refusal | close code |
    /// |---|---|
    /// | 408 (no decision within the handshake timeout), 429, 503 (limits, shutting down) | 1013 (try again later: a reconnecting client retries) |
    /// | another 5xx (a panic in `on_connect`) | 1011 |
    /// | a 4xx (no such channel, a bad parameter, an origin, `on_connect`'s refusal) | 1008 (final) |
    pub async fn serve_socket<T>(
        &self,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        remote_addr: Option<SocketAddr>,
        socket: T,
    ) -> Result<(), Reject>
    where
        T: MessageSink + MessageStream + Send + 'static,
    {
        // What the socket's upgrade was: a GET over HTTP/1.1 (the defaults of a new request).
        let mut request = http::Request::new(());
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        let (request, ()) = request.into_parts();
        let deadline = Instant::now() + self.shared.config.handshake_timeout;
        match self.shared.decide(request, remote_addr, deadline).await {
            Ok(accepted) => {
                (accepted.session)(BoxedTransport::new(Upgraded(socket)));
                Ok(())
            }
            Err(reject) => {
                self.close_refused(socket, &reject).await;
                Err(reject)
            }
        }
    }

    /// The hub, to publish to these connections from anywhere.
    pub fn hub(&self) -> Hub {
        self.shared.hub.clone()
    }

    /// A handle to shut the server down gracefully: every connection is closed with 1001.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            lifecycle: self.shared.lifecycle.clone(),
        }
    }

    /// Closes a refused socket with the close code of its refusal, and waits (up to the close
    /// timeout) for the peer's close reply, so the close handshake completes.
    async fn close_refused<T: MessageSink + MessageStream>(&self, mut socket: T, reject: &Reject) {
        let close = close_frame(reject.close_code(), reject.reason());
        let closing = async {
            if socket.send(WsMessage::Close(Some(close))).await.is_ok() {
                while let Some(Ok(_)) = socket.next().await {}
            }
        };
        let _ = tokio::time::timeout(self.shared.config.close_timeout, closing).await;
    }
}
