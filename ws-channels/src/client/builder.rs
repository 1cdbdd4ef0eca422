//! Opening a client connection: the address, credentials, subprotocol, timeout and TLS
//! ([`ClientBuilder`]), and the one-liner [`connect`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::driver::{self, Client, Events, Settings};
use super::opener::{CredentialsHook, Opener};
use super::reconnect::{ConnectionState, Reconnect};
use crate::channel::{Channel, Params};
use crate::codec::Codec;
use crate::error::{BoxError, Error};

/// Query values are encoded like path parameters: everything but RFC 3986 unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Connects to a channel address under `base` (`ws://host:port`, or `wss://` with a TLS
/// feature) and returns its typed halves, driven in the background: the one-liner for
/// [`ClientBuilder`] with its defaults (no reconnection).
///
/// The channel is taken from the params type, so `connect("ws://…", &UserEventsParams::new("42"))`
/// needs no turbofish. A refused handshake is [`Error::Rejected`] with the HTTP status and body.
///
/// ```no_run
/// use futures_util::StreamExt;
/// use ws_channels::{Error, Event, channel, connect};
///
/// #[channel("chat/<room>")]
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Chat { text: String }
///
/// # async fn run() -> Result<(), Error> {
/// // Opens ws://127.0.0.1:8080/chat/lobby.
/// match connect("ws://127.0.0.1:8080", &ChatParams::new("lobby")).await {
///     Ok((client, mut events)) => {
///         client.send(&Chat { text: "hi".into() }).await?;
///         while let Some(event) = events.next().await {
///             if let Event::Message(chat) = event? {
///                 println!("{}", chat.text);
///             }
///         }
///         println!("closed: {:?}", client.state());
///     }
///     Err(Error::Rejected { status: 401, body }) => eprintln!("log in first: {body}"),
///     Err(error) => return Err(error),
/// }
/// # Ok(()) }
/// ```
pub async fn connect<P: Params>(base: &str, params: &P) -> Result<(Client<P::Channel>, Events<P::Channel>), Error> {
    ClientBuilder::new(base, params).connect().await
}

/// Configures and opens a client connection to one channel address: credentials (query pairs,
/// headers, a hook that refreshes them before each attempt), the subprotocol, a connect
/// timeout, a TLS connector and [reconnection](Reconnect).
///
/// The connection is driven by a background task: pings are answered and a close is noticed
/// even when the application only sends, and [`Client::send`] after the end returns
/// [`Error::Closed`] with the close code.
///
/// By default the client offers the subprotocol `wsc.v1.<codec>.<NAME>` naming its channel, so
/// a ws-channels server refuses it (400) when the address belongs to another channel; a server
/// that answers with no subprotocol (a plain WebSocket server) is accepted anyway, and later
/// attempts to it offer none.
///
/// ```no_run
/// use std::time::Duration;
/// use ws_channels::{Client, ConnectionState, Reconnect, channel};
///
/// #[channel("notify/<userId: u64>", server_only)]
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Notification { title: String }
///
/// # async fn run() -> Result<(), ws_channels::Error> {
/// let (client, events) = Client::builder("ws://127.0.0.1:8080", &NotificationParams::new(42))
///     .query("lang", "en")
///     .bearer("s3cret")
///     .connect_timeout(Duration::from_secs(5))
///     .reconnect(Reconnect::new().max_delay(Duration::from_secs(10)))
///     .on_state(|state| match state {
///         ConnectionState::Reconnecting { attempt, delay, error } => {
///             eprintln!("attempt {attempt} in {delay:?} ({error})")
///         }
///         state => eprintln!("{state:?}"),
///     })
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a client builder does nothing until `connect` is called"]
pub struct ClientBuilder<C> {
    base: String,
    path: Result<String, crate::ParamError>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    invalid: Option<http::Error>,
    subprotocols: Vec<String>,
    offer_channel: bool,
    connect_timeout: Duration,
    connector: Option<Connector>,
    credentials: Option<CredentialsHook>,
    /// What the connection's driver keeps (reconnection, queues, the state hook).
    settings: Settings,
    _channel: PhantomData<fn() -> C>,
}

impl<C: Channel> Client<C> {
    /// A [`ClientBuilder`] for the channel address `params` names under `base`.
    pub fn builder<P: Params<Channel = C>>(base: &str, params: &P) -> ClientBuilder<C> {
        ClientBuilder::new(base, params)
    }
}

impl<C: Channel> ClientBuilder<C> {
    /// A builder for the channel address `params` names under `base` (`ws://host:port`, with or
    /// without a path prefix). A parameter no URL can carry (empty, `.`, `..`) is reported by
    /// [`connect`](Self::connect) as [`Error::Param`].
    pub fn new<P: Params<Channel = C>>(base: &str, params: &P) -> Self {
        Self {
            base: base.to_owned(),
            path: params.to_path(),
            query: Vec::new(),
            headers: HeaderMap::new(),
            invalid: None,
            subprotocols: Vec::new(),
            offer_channel: true,
            connect_timeout: Duration::from_secs(10),
            connector: None,
            credentials: None,
            settings: Settings::default(),
            _channel: PhantomData,
        }
    }

    /// Adds a query pair (percent-encoded), such as a token: `?token=…`.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a request header. A name or value that is not valid HTTP makes
    /// [`connect`](Self::connect) fail with [`Error::WebSocket`] (`HttpFormat`).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName, Error: Into<http::Error>>,
        V: TryInto<HeaderValue, Error: Into<http::Error>>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            (Err(error), _) => self.invalid = self.invalid.or(Some(error.into())),
            (_, Err(error)) => self.invalid = self.invalid.or(Some(error.into())),
        }
        self
    }

    /// Sends `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION, format!("Bearer {token}"))
    }

    /// Adds a cookie (`Cookie: name=value`; several calls join into one header). The value is
    /// sent as given: a name that is empty or holds anything but a token's characters, or a
    /// value holding a character a cookie value cannot (a space, `"`, `,`, `;`, `\` or a
    /// control character, RFC 6265), would change the header's meaning and makes
    /// [`connect`](Self::connect) fail with [`Error::WebSocket`] (`HttpFormat`); encode such a
    /// value (percent-encoding, base64) first.
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        if !valid_cookie(name, value) {
            // Refused as any malformed header is (no header value holds a NUL byte), so the
            // error is the one `header` documents.
            return self.header(header::COOKIE, "\0");
        }
        let pair = format!("{name}={value}");
        let joined = match self.headers.get(header::COOKIE).and_then(|v| v.to_str().ok()) {
            Some(existing) => format!("{existing}; {pair}"),
            None => pair,
        };
        self.headers.remove(header::COOKIE);
        self.header(header::COOKIE, joined)
    }

    /// Offers another subprotocol, after the channel's own (`wsc.v1.<codec>.<NAME>`).
    pub fn subprotocol(mut self, protocol: &str) -> Self {
        self.subprotocols.push(protocol.to_owned());
        self
    }

    /// Does not offer the channel's subprotocol, as a plain WebSocket client would not.
    pub fn without_channel_subprotocol(mut self) -> Self {
        self.offer_channel = false;
        self
    }

    /// How long one attempt may take, the [credentials hook](Self::credentials), TCP connect,
    /// TLS and WebSocket handshakes together; past it the attempt fails with
    /// [`Error::ConnectTimeout`] (and a reconnecting client tries again). Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The TLS connector for `wss://` URLs: a `rustls` client configuration (your roots, client
    /// certificates) or a `native-tls` connector. Without one, `wss://` uses the feature's
    /// default roots (webpki's with `rustls`, the system's with `rustls-native-roots` or
    /// `native-tls`; with both kinds of feature enabled, `native-tls` is the default).
    #[cfg(any(feature = "rustls", feature = "rustls-native-roots", feature = "native-tls"))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(feature = "rustls", feature = "rustls-native-roots", feature = "native-tls")))
    )]
    pub fn tls(mut self, connector: Connector) -> Self {
        self.connector = Some(connector);
        self
    }

    /// Reconnects after a retried end (see [`ConnectionState`]) with this policy. Without it, an
    /// end is final. The first attempt ([`connect`](Self::connect)) is not retried: its error
    /// is returned.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.settings.reconnect = Some(policy);
        self
    }

    /// Refreshes credentials before every attempt, the first included: the headers it returns
    /// replace those of the same name (an `Authorization` with a fresh token). An error makes
    /// the attempt fail for good ([`Error::Credentials`]).
    ///
    /// ```no_run
    /// # #[ws_channels::channel("chat/<room>")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Chat;
    /// use ws_channels::http::{HeaderMap, HeaderValue, header};
    ///
    /// # async fn fetch_token() -> Result<String, ws_channels::BoxError> { Ok("t".into()) }
    /// let builder = ws_channels::Client::builder("ws://127.0.0.1:8080", &ChatParams::new("lobby"))
    ///     .credentials(|| async {
    ///         let token = fetch_token().await?;
    ///         let mut headers = HeaderMap::new();
    ///         headers.insert(header::AUTHORIZATION, HeaderValue::try_from(format!("Bearer {token}"))?);
    ///         Ok(headers)
    ///     });
    /// ```
    pub fn credentials<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HeaderMap, BoxError>> + Send + 'static,
    {
        self.credentials = Some(Arc::new(move || Box::pin(hook())));
        self
    }

    /// Calls `observe` with every state the connection goes through, in order, from the
    /// background task (keep it quick: it runs between reads).
    pub fn on_state(mut self, observe: impl Fn(&ConnectionState) + Send + Sync + 'static) -> Self {
        self.settings.on_state = Some(Arc::new(observe));
        self
    }

    /// How many messages [`Client::send`] may queue while the connection is not open (or
    /// while the socket is slower than the sender); past that, while reconnecting, `send`
    /// returns [`Error::Closed`]. Queued messages are sent, in order, once the connection
    /// (re)opens. Default: 64.
    pub fn send_queue(mut self, messages: usize) -> Self {
        self.settings.send_queue = messages.max(1);
        self
    }

    /// How many received messages wait for the application to read [`Events`]. When they are
    /// all unread, the client stops reading the socket (the server then applies its lag
    /// policy; pings go unanswered meanwhile, so a server's ping timeout may end the
    /// connection) while [`Client::send`] and [`Client::close`] keep working; nothing is
    /// dropped. Dropping [`Events`] instead discards what arrives. Default: 256.
    pub fn receive_buffer(mut self, messages: usize) -> Self {
        self.settings.receive_buffer = messages.max(1);
        self
    }

    /// Opens the connection (one attempt, with the connect timeout) and starts the background
    /// task that drives it.
    pub async fn connect(mut self) -> Result<(Client<C>, Events<C>), Error> {
        let mut opener = self.opener()?;
        if let Some(observe) = &self.settings.on_state {
            observe(&ConnectionState::Connecting);
        }
        let socket = opener.open().await?;
        Ok(driver::start(self.settings, opener, socket))
    }

    fn opener(&mut self) -> Result<Opener, Error> {
        if let Some(error) = self.invalid.take() {
            return Err(WsError::HttpFormat(error).into());
        }
        let path = std::mem::replace(&mut self.path, Ok(String::new()))?;
        let mut url = crate::pattern::join_url(&self.base, &path);
        for (i, (name, value)) in self.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.extend(utf8_percent_encode(name, QUERY_VALUE));
            url.push('=');
            url.extend(utf8_percent_encode(value, QUERY_VALUE));
        }
        let mut offers = Vec::new();
        if self.offer_channel {
            offers.push(crate::subprotocol::offer(<C::Codec as Codec>::NAME, C::NAME));
        }
        offers.append(&mut self.subprotocols);
        Ok(Opener {
            url,
            headers: std::mem::take(&mut self.headers),
            offers,
            connect_timeout: self.connect_timeout,
            connector: self.connector.take(),
            credentials: self.credentials.take(),
        })
    }
}

/// Whether `name=value` is one cookie pair (RFC 6265 §4.1.1: a token, and a value of
/// cookie-octets, optionally in double quotes), so that joining it into the header with `; `
/// cannot add or break another pair.
fn valid_cookie(name: &str, value: &str) -> bool {
    let token = |c: u8| c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&c);
    let octet = |c: u8| c.is_ascii_graphic() && !b"\",;\\".contains(&c);
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    !name.is_empty() && name.bytes().all(token) && value.bytes().all(octet)
}
