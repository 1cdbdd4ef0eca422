//! Every HTTP response a handshake can get, declared once as an [`http::Response`]: the
//! standalone server serializes it, axum passes it through.

use std::fmt;

use http::{HeaderValue, Response, StatusCode, header};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::limits::Full;

/// A refusal of a WebSocket handshake: the HTTP status and a reason sent as the body.
///
/// Returned by `on_connect`; the client sees the status before any WebSocket frame.
///
/// ```
/// use ws_channels::Reject;
/// use ws_channels::http::StatusCode;
///
/// let reject = Reject::forbidden("not your room");
/// assert_eq!(reject.status(), StatusCode::FORBIDDEN);
/// assert_eq!(reject.to_string(), "403 Forbidden: not your room");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    status: StatusCode,
    reason: String,
    /// The credentials were valid but have expired (see [`Reject::token_expired`]).
    token_expired: bool,
}

impl Reject {
    /// Refuses with any status (4xx or 5xx).
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            token_expired: false,
        }
    }

    /// 401 Unauthorized for credentials that were valid but have expired. A direct client
    /// sees a 401; a session's subscription is refused with error 109 "token expired", on which
    /// a Centrifugo SDK fetches a new subscription token (its `getToken`) and subscribes again,
    /// where any other 4xx (103) is final.
    pub fn token_expired(reason: impl Into<String>) -> Self {
        Self {
            token_expired: true,
            ..Self::unauthorized(reason)
        }
    }

    /// Whether this refuses expired credentials ([`Reject::token_expired`]).
    pub fn is_token_expired(&self) -> bool {
        self.token_expired
    }

    /// 400 Bad Request.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 401 Unauthorized: no or invalid credentials.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason)
    }

    /// 403 Forbidden: valid credentials, but not for this address.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason, sent as the response body.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    // Every refusal the server itself makes, named once, in the order of the decision (the
    // server's documentation has them as a table).

    /// The server is shutting down.
    pub(crate) fn shutting_down() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    }

    /// The path matches no channel.
    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "no channel at this address")
    }

    /// A method other than GET.
    pub(crate) fn method_not_get() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "WebSocket upgrades use GET")
    }

    /// HTTP/1.0 (or anything but HTTP/1.1), which has no upgrade.
    pub(crate) fn not_http11() -> Self {
        Self::bad_request("WebSocket upgrades need HTTP/1.1")
    }

    /// No `Upgrade: websocket` and `Connection: upgrade`.
    pub(crate) fn not_an_upgrade() -> Self {
        Self::new(StatusCode::UPGRADE_REQUIRED, "this address only speaks WebSocket")
    }

    /// A `Sec-WebSocket-Version` other than 13.
    pub(crate) fn unsupported_version() -> Self {
        Self::new(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version (13 required)",
        )
    }

    /// No `Sec-WebSocket-Key`.
    pub(crate) fn missing_key() -> Self {
        Self::bad_request("missing Sec-WebSocket-Key")
    }

    /// A `Sec-WebSocket-Key` that is not the base64 of 16 bytes.
    pub(crate) fn invalid_key() -> Self {
        Self::bad_request("Sec-WebSocket-Key is not the base64 of 16 bytes")
    }

    /// A browser page of an origin not allowed.
    pub(crate) fn origin_not_allowed() -> Self {
        Self::forbidden("origin not allowed")
    }

    /// A typed client that expects another channel or codec at this address.
    pub(crate) fn subprotocol_mismatch(name: &str, codec: &str) -> Self {
        Self::bad_request(format!(
            "this address is channel `{name}` ({codec}), not the one the client expects (Sec-WebSocket-Protocol)"
        ))
    }

    /// A parameter that does not parse (its error says which and why).
    pub(crate) fn bad_param(error: &crate::error::ParamError) -> Self {
        Self::bad_request(error.to_string())
    }

    /// `on_connect` or `authorize` panicked.
    pub(crate) fn handler_panicked() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// No decision within the handshake timeout.
    pub(crate) fn timeout() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "handshake timeout")
    }

    /// The HTTP stack cannot hand this request's connection over (axum).
    #[cfg(feature = "axum")]
    pub(crate) fn not_upgradable() -> Self {
        Self::bad_request("this connection cannot be upgraded")
    }

    /// A request head over the standalone server's limits.
    pub(crate) fn head_too_large() -> Self {
        Self::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
    }

    /// Bytes that are not an HTTP request.
    pub(crate) fn malformed_request(error: impl fmt::Display) -> Self {
        Self::bad_request(format!("malformed HTTP request: {error}"))
    }

    /// The close code that says the same as this refusal, for a socket refused after its
    /// upgrade (see [`Acceptor::serve_socket`](crate::Acceptor::serve_socket)): 1013 for a
    /// refusal worth retrying (408, 429, 503, as a reconnecting client retries those
    /// statuses), 1011 for another server error, 1008 for the rest.
    pub(crate) fn close_code(&self) -> CloseCode {
        match self.status {
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                CloseCode::Again
            }
            status if status.is_server_error() => CloseCode::Error,
            _ => CloseCode::Policy,
        }
    }

    /// The response a client gets: the reason as a plain-text body; a 426 also names the
    /// protocol to upgrade to (RFC 6455 §4.2.2). For a front end of your own (see
    /// [`Acceptor::check`](crate::Acceptor::check)).
    pub fn to_response(&self) -> Response<String> {
        let mut response = Response::new(self.reason.clone());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.status == StatusCode::UPGRADE_REQUIRED {
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

impl From<Full> for Reject {
    /// A full server or address answers 503.
    fn from(full: Full) -> Self {
        let reason = match full {
            Full::Server => "too many connections",
            Full::Address => "too many connections to this address",
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for Reject {}

/// `101 Switching Protocols` for a request with `Sec-WebSocket-Key: key`, with the chosen
/// subprotocol if any.
pub(crate) fn switching_protocols(key: &str, subprotocol: Option<&str>) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(Ok(protocol)) = subprotocol.map(HeaderValue::from_str) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_101_carries_the_accept_key() {
        // RFC 6455 §1.3's example.
        let response = switching_protocols("dGhlIHNhbXBsZSBub25jZQ==", Some("wsc.v1.json"));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_PROTOCOL], "wsc.v1.json");
    }

    #[test]
    fn a_426_names_the_protocol() {
        let response = Reject::new(StatusCode::UPGRADE_REQUIRED, "x").to_response();
        assert_eq!(response.headers()[header::UPGRADE], "websocket");
        assert_eq!(response.body(), "x");
    }
}
