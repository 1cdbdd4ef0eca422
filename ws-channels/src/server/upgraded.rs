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
            handle: self.handle(),
            shared: Arc::new(self.into_shared()),
        }
    }
}

/// The registered channels of a [`Server`], for WebSockets accepted elsewhere
/// ([`Server::into_acceptor`]). Clones share the server.
///
/// A tokio-tungstenite server of your own, whose handshake callback keeps the request's
/// address and headers for the decision:
///
/// ```no_run
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
///         let keep = |request: &Request, response: Response| {
///             head = Some((request.uri().clone(), request.headers().clone()));
///             Ok(response)
///         };
///         let Ok(socket) = tokio_tungstenite::accept_hdr_async(tcp, keep).await else {
///             return;
///         };
///         if let Some((uri, headers)) = head {
///             // Refused (an unknown address, `on_connect` said no): closed with a code.
///             let _ = acceptor.serve_socket(&uri, &headers, Some(peer), socket).await;
///         }
///     });
/// }
/// # }
/// ```
pub struct Acceptor<S = ()> {
    shared: Arc<Shared<S>>,
    handle: ServerHandle,
}

impl<S> Clone for Acceptor<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            handle: self.handle.clone(),
        }
    }
}

impl<S: Send + Sync + 'static> Acceptor<S> {
    /// Decides `socket`, already upgraded, as if its upgrade request (`uri`, with its path and
    /// query, and `headers`) had come to the server from `remote_addr`; then runs its
    /// connection in a task of its own, as every front end does, and returns at once.
    ///
    /// The socket was upgraded before the decision, so a refusal cannot be an HTTP status: the
    /// socket is closed with the close code that says the same, its reason as the reason
    /// (cut to 123 bytes), and the refusal is returned (and counted, like every refusal):
    ///
    /// | refusal | close code |
    /// |---|---|
    /// | 408 (no decision within the handshake timeout), 503 (limits, shutting down) | 1013 (try again later: a reconnecting client retries) |
    /// | another 5xx (a panic in `on_connect`) | 1011 |
    /// | a 4xx (no such channel, a bad parameter, an origin, `on_connect`'s refusal) | 1008 (final) |
    ///
    /// The 101 your code sent named no subprotocol: a typed [`Client`](crate::Client), which
    /// offers one, then connects again without it (it does so with any such server).
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
        self.handle.clone()
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
