//! What `on_connect` sees of an upgrade request ([`Handshake`]), and where credentials are
//! read from ([`TokenSource`]).

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::time::Instant;

use http::{HeaderMap, Uri, header};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::channel::Channel;
use crate::error::CodecError;

/// What `on_connect` sees of a WebSocket upgrade request: typed params, query, headers,
/// the peer's address and the server's shared state.
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Channel, Error, Reject, Server, TestServer, channel};
///
/// #[channel("rooms/<room>")]
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Room { text: String }
///
/// struct Guest { name: String, lang: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let server = Room::register(Server::new(), |h| {
///     h.on_connect(|handshake| async move {
///         let name = handshake.query_param("name").ok_or_else(|| Reject::bad_request("name required"))?;
///         let lang = handshake.header("accept-language").unwrap_or("en").to_owned();
///         Ok(Guest { name, lang })
///     })
///     .on_open(|conn| async move {
///         let Guest { name, lang } = conn.data();
///         let text = format!("welcome {name} ({lang}) to {}", conn.params().room);
///         conn.send(&Room { text }).await?;
///         Ok(())
///     })
/// });
/// let test = TestServer::new(server);
/// let lobby = RoomParams::new("lobby");
/// let (_tx, mut rx) = test
///     .request(&lobby)
///     .query("name=Ann+Lee")
///     .header("accept-language", "fr")
///     .connect()
///     .await?;
/// assert_eq!(rx.next().await.expect("a welcome")?.text, "welcome Ann Lee (fr) to lobby");
/// let nameless = test.request(&lobby).connect().await;
/// assert!(matches!(nameless, Err(Error::Rejected { status: 400, .. })));
/// # Ok(()) }
/// ```
pub struct Handshake<C: Channel, S = ()> {
    params: C::Params,
    request: Arc<http::request::Parts>,
    remote_addr: Option<SocketAddr>,
    state: Arc<S>,
    /// Set by `on_connect`, read by the server once it has decided.
    expiry: Expiry,
    /// The session, when this is a session's subscription rather than a connection.
    session: Option<InSession>,
}

/// What a subscription's handshake knows of its session, beside the upgrade request.
pub(crate) struct InSession {
    pub(crate) session: Arc<SessionSide>,
    /// The `subscribe` command's token (empty when none).
    pub(crate) subscribe_token: String,
    /// The `subscribe` command's data.
    pub(crate) subscribe_data: Option<Box<RawValue>>,
}

/// A connected session, as every one of its subscriptions' handshakes sees it.
pub(crate) struct SessionSide {
    /// The user id the sessions' `authenticate` hook gave.
    pub(crate) user: String,
    /// The hook's typed identity data.
    pub(crate) data: Arc<dyn Any + Send + Sync>,
    /// The `connect` command's token (empty when none).
    pub(crate) connect_token: String,
}

/// When an accepted connection must end, as `on_connect` said.
pub(crate) type Expiry = Arc<Mutex<Option<Instant>>>;

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
            expiry: Expiry::default(),
            session: None,
        }
    }

    /// The handshake of a session's subscription.
    pub(crate) fn in_session(mut self, session: InSession) -> Self {
        self.session = Some(session);
        self
    }

    /// Where `expire_at` writes, for the server to read after `on_connect`.
    pub(crate) fn expiry(&self) -> Expiry {
        self.expiry.clone()
    }

    /// Ends the connection when its credentials do: at `at` (a token's `exp`), the server
    /// closes it with [`CLOSE_CREDENTIALS_EXPIRED`](crate::CLOSE_CREDENTIALS_EXPIRED) (4001),
    /// which tells a client to refresh its credentials and reconnect. A time already past closes
    /// the connection right after it opens. The last call counts.
    ///
    /// In a session's subscription it ends the subscription instead, with the `unsubscribe`
    /// push 2501 "subscription expired", after which a Centrifugo SDK subscribes again.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use ws_channels::{Handler, Reject, TokenSource};
    /// # #[ws_channels::channel("feed/<id>")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Feed;
    /// struct Claims { user: String, exp: SystemTime }
    /// fn verify(token: &str) -> Option<Claims> {
    ///     Some(Claims { user: token.to_owned(), exp: SystemTime::now() + Duration::from_secs(900) })
    /// }
    ///
    /// let handler = Handler::<Feed>::new().authenticate([TokenSource::Bearer], |token, handshake| async move {
    ///     let claims = verify(&token).ok_or_else(|| Reject::unauthorized("invalid token"))?;
    ///     handshake.expire_at(claims.exp);
    ///     Ok(claims.user)
    /// });
    /// ```
    pub fn expire_at(&self, at: SystemTime) {
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        // A time too far off to represent never comes: no expiry.
        let at = Instant::now().checked_add(left);
        *self.expiry.lock().unwrap_or_else(PoisonError::into_inner) = at;
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
        sources.iter().find_map(|source| {
            let in_session = self.session.as_ref();
            let found = match source {
                TokenSource::Connect => in_session.map(|s| s.session.connect_token.clone()),
                TokenSource::Subscribe => in_session.map(|s| s.subscribe_token.clone()),
                _ => return source.extract(&self.request),
            };
            found.filter(|token| !token.is_empty())
        })
    }

    /// Whether this is a session's `subscribe` to the channel (see
    /// [`Sessions`](crate::Sessions)) rather than a WebSocket of its own. The request's URI,
    /// headers, cookies and peer address are then those of the session's WebSocket.
    pub fn is_session(&self) -> bool {
        self.session.is_some()
    }

    /// The session's user id, as the sessions' [`authenticate`](crate::Sessions::authenticate)
    /// hook said; `None` outside a session.
    pub fn session_user(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.session.user.as_str())
    }

    /// The session's identity data (the `I` of the [`Identity`](crate::Identity) the
    /// sessions' hook returned); `None` outside a session, or if it is not an `I`.
    pub fn session_data<I: 'static>(&self) -> Option<&I> {
        self.session.as_ref()?.session.data.downcast_ref()
    }

    /// The `subscribe` command's token (centrifuge-js: the subscription's `token` or
    /// `getToken`); `None` outside a session or when the client sent none.
    pub fn subscribe_token(&self) -> Option<&str> {
        let token = self.session.as_ref()?.subscribe_token.as_str();
        (!token.is_empty()).then_some(token)
    }

    /// The `subscribe` command's `data`, as raw JSON; `None` outside a session or when the
    /// client sent none.
    pub fn subscribe_raw_data(&self) -> Option<&str> {
        self.session.as_ref()?.subscribe_data.as_deref().map(RawValue::get)
    }

    /// The `subscribe` command's `data`, decoded as `T`; `Ok(None)` outside a session or when
    /// the client sent none.
    pub fn subscribe_data<T: DeserializeOwned>(&self) -> Result<Option<T>, CodecError> {
        self.subscribe_raw_data()
            .map(|raw| serde_json::from_str(raw).map_err(CodecError::new))
            .transpose()
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
/// and [`Handshake::token`]. An empty value counts as none.
///
/// ```
/// use ws_channels::{Channel, Error, Reject, Server, TestServer, TokenSource, channel};
///
/// #[channel("rooms/<room>")]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Room;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Browsers send the session cookie; scripts send an API key. The first found is verified.
/// let sources = [TokenSource::Cookie("session"), TokenSource::Header("x-api-key")];
/// let server = Room::register(Server::new(), |h| {
///     h.authenticate(sources, |token, _handshake| async move {
///         match token.as_str() {
///             "s3cret" => Ok(()),
///             _ => Err(Reject::unauthorized("invalid token")),
///         }
///     })
/// });
/// let test = TestServer::new(server);
/// let lobby = RoomParams::new("lobby");
/// let status = |result: Result<_, Error>| match result {
///     Ok(_) => 101,
///     Err(Error::Rejected { status, .. }) => status,
///     Err(error) => panic!("{error}"),
/// };
/// let cookie = test.request(&lobby).header("cookie", "theme=dark; session=s3cret");
/// assert_eq!(status(cookie.connect().await), 101);
/// let api_key = test.request(&lobby).header("x-api-key", "s3cret");
/// assert_eq!(status(api_key.connect().await), 101);
/// let forged = test.request(&lobby).header("x-api-key", "guess");
/// assert_eq!(status(forged.connect().await), 401);
/// assert_eq!(status(test.request(&lobby).connect().await), 401, "missing credentials");
/// # }
/// ```
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
    /// In a session's subscription, the session's `connect` token (nothing on a connection
    /// of its own): one token for the session and its channels.
    Connect,
    /// In a session's subscription, the `subscribe` command's own token (nothing on a
    /// connection of its own).
    Subscribe,
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
            // The handshake reads these from its session.
            Self::Connect | Self::Subscribe => None,
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
            Self::Connect => f.write_str("Connect"),
            Self::Subscribe => f.write_str("Subscribe"),
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
}
