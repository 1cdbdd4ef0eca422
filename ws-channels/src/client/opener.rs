//! Opening one client connection, again and again: the URL, headers, subprotocol offers,
//! credentials hook, connect timeout and TLS connector a [`ClientBuilder`](super::ClientBuilder)
//! settled, owned by the connection's driver, which opens it again on every reconnect.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderValue};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::{BoxError, Error};

/// The socket type a client opens (plain TCP or TLS).
pub type ClientSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the credentials hook returns: headers to set on one attempt.
pub(crate) type CredentialsHook = Arc<dyn Fn() -> BoxFuture<'static, Result<HeaderMap, BoxError>> + Send + Sync>;

/// Everything needed to open the connection again: owned by the connection's driver.
/// Its fields are what the builder settled.
pub(crate) struct Opener {
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    /// The subprotocols offered; emptied once a server answered none.
    pub(super) offers: Vec<String>,
    pub(super) connect_timeout: Duration,
    pub(super) connector: Option<Connector>,
    pub(super) credentials: Option<CredentialsHook>,
}

impl Opener {
    /// One attempt, bounded by the connect timeout: the credentials hook included, so a hook
    /// that hangs fails the attempt (and a reconnecting client tries again) rather than stall.
    pub(crate) async fn open(&mut self) -> Result<ClientSocket, Error> {
        let timeout = self.connect_timeout;
        match tokio::time::timeout(timeout, self.attempt()).await {
            Ok(opened) => opened,
            Err(_) => Err(Error::ConnectTimeout(timeout)),
        }
    }

    async fn attempt(&mut self) -> Result<ClientSocket, Error> {
        let mut headers = self.headers.clone();
        if let Some(hook) = &self.credentials {
            let fresh = hook().await.map_err(Error::Credentials)?;
            // Every value the hook gave a name replaces that name's values (a multi-valued
            // header keeps all of them).
            for name in fresh.keys() {
                headers.remove(name);
            }
            for (name, value) in fresh.iter() {
                headers.append(name, value.clone());
            }
        }
        let opened = match self.handshake(&headers).await {
            // tungstenite fails a handshake whose answer names no subprotocol when one was
            // offered (RFC 6455 lets the client decide). A server that does not speak the
            // grammar is one we still talk to: ask again without offers, and remember.
            Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(SubProtocolError::NoSubProtocol))) => {
                self.offers.clear();
                self.handshake(&headers).await
            }
            other => other,
        };
        Ok(opened?)
    }

    async fn handshake(&self, headers: &HeaderMap) -> Result<ClientSocket, WsError> {
        let mut request = self.url.as_str().into_client_request()?;
        request.headers_mut().extend(headers.clone());
        if !self.offers.is_empty() {
            let offers = HeaderValue::try_from(self.offers.join(", ")).map_err(http::Error::from)?;
            request.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, offers);
        }
        tcp_handshake(request, self.connector.clone()).await
    }
}

/// Connects and shakes hands, through `connector` for `wss://` (or the TLS feature's default).
#[cfg(any(feature = "rustls", feature = "rustls-native-roots", feature = "native-tls"))]
async fn tcp_handshake(request: Request, connector: Option<Connector>) -> Result<ClientSocket, WsError> {
    let (socket, _response) = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector).await?;
    Ok(socket)
}

/// Connects and shakes hands. Without a TLS feature there is no connector to use (`tls` is
/// not there to set one), and a `wss://` URL fails with tungstenite's "TLS support not
/// compiled in".
#[cfg(not(any(feature = "rustls", feature = "rustls-native-roots", feature = "native-tls")))]
async fn tcp_handshake(request: Request, _connector: Option<Connector>) -> Result<ClientSocket, WsError> {
    let (socket, _response) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
    Ok(socket)
}
