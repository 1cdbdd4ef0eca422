//! The HTTP side of a connection: reading the upgrade request, answering it, and what
//! `on_connect` sees of it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode, Uri, header};
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::channel::Channel;

/// The most bytes of request line and headers accepted before answering 431.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The most headers accepted before answering 431.
const MAX_HEADERS: usize = 64;

/// What `on_connect` sees of a WebSocket upgrade request: typed params, query, headers,
/// the peer's address and the server's shared state.
pub struct Handshake<C: Channel, S = ()> {
    params: C::Params,
    request: Arc<http::request::Parts>,
    remote_addr: Option<SocketAddr>,
    state: Arc<S>,
}

impl<C: Channel, S> Handshake<C, S> {
    pub(crate) fn new(
        params: C::Params,
        request: Arc<http::request::Parts>,
        remote_addr: Option<SocketAddr>,
        state: Arc<S>,
    ) -> Self {
        Self {
            params,
            request,
            remote_addr,
            state,
        }
    }

    /// The typed path parameters.
    pub fn params(&self) -> &C::Params {
        &self.params
    }

    /// The request URI (path and query).
    pub fn uri(&self) -> &Uri {
        &self.request.uri
    }

    /// The raw query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.request.uri.query()
    }

    /// The first value of a query parameter, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(self.query()?, name)
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.request.headers
    }

    /// A header's value, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers.get(name)?.to_str().ok()
    }

    /// The peer's socket address, when the transport has one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// A cookie's value, from the `Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        cookie(&self.request, name)
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer_token(&self) -> Option<&str> {
        bearer_token(&self.request)
    }

    /// The first credential found in `sources`, tried in order.
    pub fn token(&self, sources: &[TokenSource]) -> Option<String> {
        sources.iter().find_map(|source| source.extract(&self.request))
    }

    /// The server's shared state.
    pub fn state(&self) -> &S {
        &self.state
    }
}

impl<C: Channel, S> fmt::Debug for Handshake<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("channel", &C::NAME)
            .field("params", &self.params)
            .field("uri", &self.request.uri)
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// Where a connection's credential is read from, for [`Handler::authenticate`](crate::Handler::authenticate)
/// and [`Handshake::token`].
#[derive(Clone)]
#[non_exhaustive]
pub enum TokenSource {
    /// A query parameter: `?token=…`.
    Query(&'static str),
    /// An `Authorization: Bearer …` header.
    Bearer,
    /// A cookie.
    Cookie(&'static str),
    /// Any header, its whole value (`X-Auth-Token: …`).
    Header(&'static str),
    /// Your own extraction from the request.
    Custom(ExtractToken),
}

/// A custom token extraction, for [`TokenSource::Custom`].
pub type ExtractToken = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;

impl TokenSource {
    /// A custom extraction.
    pub fn custom(extract: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(extract))
    }

    fn extract(&self, request: &http::request::Parts) -> Option<String> {
        let found = match self {
            Self::Query(name) => query_param(request.uri.query()?, name),
            Self::Bearer => bearer_token(request).map(str::to_owned),
            Self::Cookie(name) => cookie(request, name).map(str::to_owned),
            Self::Header(name) => request.headers.get(*name)?.to_str().ok().map(str::to_owned),
            Self::Custom(extract) => extract(request),
        };
        found.filter(|token| !token.is_empty())
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Query(name) => f.debug_tuple("Query").field(name).finish(),
            Self::Bearer => f.write_str("Bearer"),
            Self::Cookie(name) => f.debug_tuple("Cookie").field(name).finish(),
            Self::Header(name) => f.debug_tuple("Header").field(name).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

fn cookie<'a>(request: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    request
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim_matches('"'))
        })
}

fn bearer_token(request: &http::request::Parts) -> Option<&str> {
    let value = request.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn query_param(query: &str, name: &str) -> Option<String> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

/// A refusal of a WebSocket handshake: the HTTP status and a reason sent as the body.
///
/// Returned by `on_connect`; the client sees the status before any WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    status: StatusCode,
    reason: String,
}

impl Reject {
    /// Refuses with any status (4xx or 5xx).
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
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
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for Reject {}

/// A parsed request head and whatever bytes followed it.
pub(crate) struct RequestHead {
    pub(crate) parts: http::request::Parts,
    pub(crate) leftover: Vec<u8>,
}

/// Reads the request head. `Ok(None)`: the peer left before sending one.
pub(crate) async fn read_request_head<IO: AsyncRead + Unpin>(io: &mut IO) -> Result<Option<RequestHead>, Reject> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let n = io.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        // The head ends with an empty line: until a chunk brings a line end, parsing the whole
        // buffer again would only find it incomplete (and cost quadratic time on a trickle).
        if !chunk[..n].contains(&b'\n') && buf.len() < MAX_REQUEST_HEAD {
            continue;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let parts = to_parts(&request)?;
                return Ok(Some(RequestHead {
                    parts,
                    leftover: buf.split_off(len),
                }));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST_HEAD => continue,
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err(Reject::new(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request head too large",
                ));
            }
            Err(error) => {
                return Err(Reject::bad_request(format!("malformed HTTP request: {error}")));
            }
        }
    }
}

fn to_parts(request: &httparse::Request<'_, '_>) -> Result<http::request::Parts, Reject> {
    let mut builder = http::Request::builder()
        .method(request.method.unwrap_or("GET"))
        .uri(request.path.unwrap_or("/"));
    for header in request.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    builder
        .body(())
        .map(|r| r.into_parts().0)
        .map_err(|e| Reject::bad_request(format!("malformed HTTP request: {e}")))
}

/// RFC 6455 §4.2.1: what a server must see before switching protocols. Returns the key.
pub(crate) fn check_upgrade(parts: &http::request::Parts) -> Result<String, Reject> {
    let has_token = |name: header::HeaderName, token: &str| {
        parts.headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if parts.method != Method::GET {
        return Err(Reject::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "WebSocket upgrades use GET",
        ));
    }
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(Reject::new(
            StatusCode::UPGRADE_REQUIRED,
            "this address only speaks WebSocket",
        ));
    }
    if parts.headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(Reject::new(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version (13 required)",
        ));
    }
    parts
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| Reject::bad_request("missing Sec-WebSocket-Key"))
}

/// Writes `101 Switching Protocols`.
pub(crate) async fn accept<IO: AsyncWrite + Unpin>(io: &mut IO, key: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    io.write_all(response.as_bytes()).await?;
    io.flush().await
}

/// Writes a refusal and ends the response.
pub(crate) async fn refuse<IO: AsyncWrite + Unpin>(io: &mut IO, reject: &Reject) -> std::io::Result<()> {
    let status = reject.status();
    let extra = if status == StatusCode::UPGRADE_REQUIRED {
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {} {}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        reject.reason().len(),
        reject.reason(),
    );
    io.write_all(response.as_bytes()).await?;
    io.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::request::Builder) -> http::request::Parts {
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tokens_come_from_each_source_in_order() {
        let request = parts(
            http::Request::builder()
                .uri("/x?token=q&other=1")
                .header("authorization", "Bearer  b ")
                .header("cookie", "a=1; session=c")
                .header("x-auth-token", "h"),
        );
        let sources = [
            TokenSource::Query("token"),
            TokenSource::Bearer,
            TokenSource::Cookie("session"),
            TokenSource::Header("x-auth-token"),
            TokenSource::custom(|p| p.uri.query().map(|q| q.len().to_string())),
        ];
        let found: Vec<_> = sources.iter().map(|s| s.extract(&request)).collect();
        assert_eq!(
            found,
            [Some("q"), Some("b"), Some("c"), Some("h"), Some("15")].map(|s| s.map(str::to_owned))
        );
        let bare = parts(
            http::Request::builder()
                .uri("/x?token=")
                .header("authorization", "Basic abc"),
        );
        assert!(
            sources[..4].iter().all(|s| s.extract(&bare).is_none()),
            "empty and non-bearer are no token"
        );
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param("a=1&name=J%C3%B6rg+K", "name").as_deref(), Some("Jörg K"));
        assert_eq!(query_param("flag&b=2", "flag").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "b"), None);
    }

    #[tokio::test]
    async fn a_plain_http_get_is_told_to_upgrade() {
        let mut input: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let head = read_request_head(&mut input).await.unwrap().unwrap();
        let reject = check_upgrade(&head.parts).unwrap_err();
        assert_eq!(reject.status(), StatusCode::UPGRADE_REQUIRED);
    }

    #[tokio::test]
    async fn garbage_is_a_bad_request() {
        let mut input: &[u8] = b"\x00\x01 nonsense\r\n\r\n";
        let reject = read_request_head(&mut input).await.err().unwrap();
        assert_eq!(reject.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn an_endless_head_is_refused() {
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_REQUEST_HEAD + 10));
        let reject = read_request_head(&mut long.as_slice()).await.err().unwrap();
        assert_eq!(reject.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}
