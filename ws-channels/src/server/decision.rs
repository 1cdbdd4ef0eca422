//! The handshake decision, the same for every front end (the standalone server, axum, a
//! WebSocket the application accepted, the in-memory test server). It reads top to bottom in
//! [`Shared::decide`]: shutdown (503) → route (404) → upgrade headers (405/400/426) → origin
//! (403) → subprotocol (400) → parameters (400) → connection limits (503) → `on_connect` and
//! `authorize` (401/403/…, 500 on a panic) → shutdown again (503) → accepted, with the session
//! that runs the connection once the front end has upgraded it. The steps before the
//! parameters need no `await` ([`Shared::check`]), so a front end whose handshake callback is
//! synchronous can take them first.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError};

use futures_util::future::BoxFuture;
use http::{Method, header};
use tokio::time::Instant;

use super::bound::{Binding, Bound};
use super::config::{Config, Origin, Origins, ProxyHeader};
use super::conn::{Conn, ConnInner};
use super::guard;
use super::handler::Handler;
use super::handshake::Handshake;
use super::lifecycle::Lifecycle;
use super::limits::ConnectionLimits;
use super::response::Reject;
use super::router::{Matched, Router};
use super::subscription::{Channels, Decided, Deciding, MAX_CHANNEL_LENGTH, Subscribing, reply_error};
use super::task::{self, ConnEnv};
use super::transport::BoxedTransport;
use crate::channel::{Channel, Params};
use crate::codec::Codec;
use crate::hub::Hub;
use crate::log::Escaped;
use crate::session::codes::ErrorCode;
use crate::session::protocol::ReplyError;
use crate::subprotocol::{self, Choice};

/// What every connection of one server shares, whichever front end accepted it.
pub(crate) struct Shared<S> {
    pub(crate) router: Router<Box<dyn Route<S>>>,
    pub(crate) state: Arc<S>,
    pub(crate) hub: Hub,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) config: Arc<Config>,
    pub(crate) limits: Arc<ConnectionLimits>,
}

/// What starts an accepted connection once the front end has upgraded it: it spawns the
/// connection's task, tracked by the server's lifecycle. A task of its own rather than a future
/// awaited by the front end's task: the connection's whole state is then one allocation (the
/// task), and the front end's handshake state is freed when its task ends.
pub(crate) type Session = Box<dyn FnOnce(BoxedTransport) + Send>;

/// What [`Shared::check`] found: the key to answer, the subprotocol to name, and the channel
/// the path matched (looked up once per handshake).
pub(crate) struct Checked<'a, S> {
    pub(crate) key: String,
    pub(crate) subprotocol: Option<String>,
    pub(crate) matched: Matched<'a, 'a, Box<dyn Route<S>>>,
}

/// An accepted handshake: the 101 to answer with, and the session to run after it.
pub(crate) struct Accepted {
    pub(crate) response: http::Response<String>,
    pub(crate) session: Session,
}

impl<S: Send + Sync + 'static> Shared<S> {
    /// Decides a handshake from the socket's `peer`, by `deadline` (else 408). A refusal is
    /// counted and logged here.
    pub(crate) async fn decide(
        self: &Arc<Self>,
        request: http::request::Parts,
        peer: Option<SocketAddr>,
        deadline: Instant,
    ) -> Result<Accepted, Reject> {
        let remote_addr = client_addr(&self.config, &request.headers, peer);
        let decided = tokio::time::timeout_at(deadline, self.decide_now(request, remote_addr))
            .await
            .unwrap_or_else(|_| Err(Reject::timeout()));
        decided.inspect_err(|reject| self.refused(remote_addr, reject))
    }

    /// Counts and logs a refused handshake.
    pub(crate) fn refused(&self, remote_addr: Option<SocketAddr>, reject: &Reject) {
        self.hub.counters().refused(reject.status());
        // The reason may quote the request (a parameter's value, a malformed head).
        tracing::debug!(?remote_addr, reject = %Escaped(reject), "handshake refused");
    }

    async fn decide_now(
        self: &Arc<Self>,
        request: http::request::Parts,
        remote_addr: Option<SocketAddr>,
    ) -> Result<Accepted, Reject> {
        let request = Arc::new(request);
        let Checked {
            key,
            subprotocol,
            matched,
        } = self.check(&request)?;
        let session = matched
            .route
            .accept(self, request.clone(), &matched.values, remote_addr)
            .await?;
        // `on_connect` may have taken a while: refuse if a shutdown began meanwhile.
        self.check_running()?;
        Ok(Accepted {
            response: super::response::switching_protocols(&key, subprotocol.as_deref()),
            session,
        })
    }

    /// The part of the decision that needs no `await`: shutdown, route, upgrade headers,
    /// origin, subprotocol. Not counted here: the caller's refusal is.
    pub(crate) fn check<'a>(&'a self, request: &'a http::request::Parts) -> Result<Checked<'a, S>, Reject> {
        self.check_running()?;
        let matched = self.router.at(request.uri.path()).ok_or_else(Reject::not_found)?;
        let key = check_upgrade(request)?;
        self.check_origin(request)?;
        let subprotocol = check_subprotocol(request, &**matched.route)?;
        Ok(Checked {
            key,
            subprotocol,
            matched,
        })
    }

    fn check_running(&self) -> Result<(), Reject> {
        match self.lifecycle.is_shutting_down() {
            true => Err(Reject::shutting_down()),
            false => Ok(()),
        }
    }

    /// Browser origins: see [`Origins`].
    fn check_origin(&self, request: &http::request::Parts) -> Result<(), Reject> {
        let Some(origin) = request.headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().ok().and_then(Origin::parse);
        let allowed = match (&self.config.origins, origin) {
            (Origins::Any, _) => true,
            // `null` (a sandboxed page, a file) and anything unparsable is no allowed origin.
            (_, None) => false,
            (Origins::List(allowed), Some(origin)) => allowed.contains(&origin),
            (Origins::SameHost, Some(origin)) => request
                .headers
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .and_then(|host| Origin::parse(&format!("{}://{host}", origin.scheme)))
                .is_some_and(|host| host == origin),
        };
        match allowed {
            true => Ok(()),
            false => Err(Reject::origin_not_allowed()),
        }
    }

    /// The environment of an accepted connection, built once.
    pub(crate) fn env(
        &self,
        remote_addr: Option<SocketAddr>,
        slot: super::limits::Slot,
        expires: Option<Instant>,
    ) -> ConnEnv<S> {
        ConnEnv {
            id: self.hub.next_conn_id(),
            remote_addr,
            state: self.state.clone(),
            hub: self.hub.clone(),
            config: self.config.clone(),
            slot,
            expires,
        }
    }
}

/// The client's address: the socket's peer or, when the peer is a trusted proxy, the rightmost
/// address in the proxy's forwarding header that is not a trusted proxy. IPv4-mapped addresses
/// are taken as IPv4.
fn client_addr(config: &Config, headers: &http::HeaderMap, peer: Option<SocketAddr>) -> Option<SocketAddr> {
    let peer = peer.map(|peer| SocketAddr::new(peer.ip().to_canonical(), peer.port()))?;
    let trusted = &config.trusted_proxies;
    if !trusted.contains(&peer.ip()) {
        return Some(peer);
    }
    let name = match config.proxy_header {
        ProxyHeader::XForwardedFor => "x-forwarded-for",
        ProxyHeader::Forwarded => "forwarded",
    };
    let hops: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let node = match config.proxy_header {
            ProxyHeader::XForwardedFor => Some(*hop),
            // `for=…` among `;`-separated pairs; parameter names are case-insensitive.
            ProxyHeader::Forwarded => hop.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for").then(|| value.trim_matches('"'))
            }),
        };
        match node.and_then(parse_node) {
            Some(addr) if trusted.contains(&addr.ip()) => continue,
            Some(addr) => return Some(addr),
            // `unknown`, an obfuscated name, garbage: the chain cannot be followed further.
            None => break,
        }
    }
    Some(peer)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711` (port 0 when absent).
fn parse_node(node: &str) -> Option<SocketAddr> {
    node.parse::<SocketAddr>()
        .ok()
        .or_else(|| node.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0)))
        .or_else(|| {
            let ip = node.strip_prefix('[')?.strip_suffix(']')?;
            ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
        })
        .map(|addr| SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}

/// The subprotocol to answer with, as the route decides from what the client offered.
fn check_subprotocol<S: 'static>(
    request: &http::request::Parts,
    route: &dyn Route<S>,
) -> Result<Option<String>, Reject> {
    route.subprotocol(&subprotocol_offers(request))
}

/// The subprotocols a client offers: every `Sec-WebSocket-Protocol` header, comma-separated,
/// in order.
pub(crate) fn subprotocol_offers(request: &http::request::Parts) -> Vec<&str> {
    request
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect()
}

/// RFC 6455 §4.2.1: what a server must see before switching protocols. Returns the key.
fn check_upgrade(request: &http::request::Parts) -> Result<String, Reject> {
    let has_token = |name: header::HeaderName, token: &str| {
        request.headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if request.method != Method::GET {
        return Err(Reject::method_not_get());
    }
    // Only HTTP/1.1 has the upgrade mechanism (an HTTP/1.0 server may not even switch
    // protocols: hyper refuses to hand the socket over), so refuse before any hook runs.
    if request.version != http::Version::HTTP_11 {
        return Err(Reject::not_http11());
    }
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(Reject::not_an_upgrade());
    }
    if request.headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(Reject::unsupported_version());
    }
    let key = request
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(Reject::missing_key)?;
    match is_websocket_key(key.as_bytes()) {
        true => Ok(String::from_utf8_lossy(key.as_bytes()).into_owned()),
        false => Err(Reject::invalid_key()),
    }
}

/// RFC 6455 §4.2.1: the key "MUST be a nonce consisting of a randomly selected 16-byte value
/// that has been base64-encoded", which is 22 characters of the base64 alphabet and `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    let is_base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(is_base64) && key[22..] == *b"=="
}

/// What a path serves, with its types erased: a registered channel, or the sessions endpoint
/// (`session_task`). The per-route part of the decision.
pub(crate) trait Route<S>: Send + Sync + 'static {
    /// The subprotocol to answer with, from the client's `offers` (in order), or the refusal
    /// of a client that expects something else at this path.
    fn subprotocol(&self, offers: &[&str]) -> Result<Option<String>, Reject>;

    /// Parses the params (from the values the router matched), takes a connection-limit slot
    /// and runs `on_connect`; on success returns what runs the connection.
    fn accept(
        &self,
        shared: &Arc<Shared<S>>,
        request: Arc<http::request::Parts>,
        raw_values: &[&str],
        remote_addr: Option<SocketAddr>,
    ) -> BoxFuture<'static, Result<Session, Reject>>;

    /// Starts deciding a session's subscription to the channel string this route matched
    /// (`raw_values`, as for `accept`), or refuses it at once (see [`Channels`]).
    fn subscribe(
        &self,
        state: &Arc<S>,
        raw_values: &[&str],
        subscribing: &mut Subscribing<'_>,
    ) -> Result<Deciding, ReplyError>;
}

impl<S: Send + Sync + 'static> Channels for Shared<S> {
    fn subscribe(&self, subscribing: &mut Subscribing<'_>) -> Result<Deciding, ReplyError> {
        let channel = subscribing.channel;
        if channel.len() > MAX_CHANNEL_LENGTH {
            let message = format!("channel name over {MAX_CHANNEL_LENGTH} bytes");
            return Err(reply_error(ErrorCode::BadRequest, message));
        }
        let path = format!("/{channel}");
        let matched = self
            .router
            .at(&path)
            .ok_or_else(|| reply_error(ErrorCode::UnknownChannel, ""))?;
        let deciding = matched.route.subscribe(&self.state, &matched.values, subscribing)?;
        // A room's members are counted whether they came directly or through a session.
        let address: Arc<str> = subscribing.channel.into();
        let member = self
            .limits
            .acquire_member(&address)
            .map_err(|_| reply_error(ErrorCode::LimitExceeded, ""))?;
        subscribing.member = Some(member);
        Ok(deciding)
    }
}

/// Runs a channel's `on_connect` and `authorize` on a handshake (of a connection or of a
/// session's subscription): the connection's data, or the refusal. The callbacks are called
/// inside the caught future, so a panic in their synchronous part is caught too, and refuses
/// with 500.
async fn decide<C, S, D>(
    handler: &Handler<C, S, D>,
    handshake: Handshake<C, S>,
    params: &C::Params,
) -> Result<D, Reject>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    let decided = guard::catch(async {
        let data = (handler.on_connect)(handshake).await?;
        if let Some(authorize) = &handler.authorize {
            authorize(&data, params)?;
        }
        Ok(data)
    })
    .await;
    decided.unwrap_or_else(|panic| {
        tracing::warn!(channel = C::NAME, panic = %Escaped(panic), "on_connect or authorize panicked");
        Err(Reject::handler_panicked())
    })
}

impl<C, S, D> Route<S> for Arc<Handler<C, S, D>>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    /// A typed client names the codec and channel it expects (see `subprotocol`), and one
    /// that landed on another channel is refused with 400.
    fn subprotocol(&self, offers: &[&str]) -> Result<Option<String>, Reject> {
        let (name, codec) = (C::NAME, <C::Codec as Codec>::NAME);
        match subprotocol::choose(offers.iter().copied(), codec, name) {
            Choice::None => Ok(None),
            Choice::Accept(offer) => Ok(Some(offer.to_owned())),
            Choice::Mismatch => Err(Reject::subprotocol_mismatch(name, codec)),
        }
    }

    fn accept(
        &self,
        shared: &Arc<Shared<S>>,
        request: Arc<http::request::Parts>,
        raw_values: &[&str],
        remote_addr: Option<SocketAddr>,
    ) -> BoxFuture<'static, Result<Session, Reject>> {
        let params = C::Params::TEMPLATE
            .decode_values(raw_values)
            .and_then(|values| C::Params::from_values(&values))
            .map_err(|error| Reject::bad_param(&error));
        let handler = self.clone();
        let shared = shared.clone();
        Box::pin(async move {
            let params = params?;
            // Counted from before `on_connect`, so concurrent handshakes cannot overshoot.
            // One copy, shared by the connection's handle and its limit slot.
            let address: Arc<str> = params.to_string().into();
            let slot = shared.limits.acquire(&address)?;
            let handshake = Handshake::new(params.clone(), request, remote_addr, shared.state.clone());
            let expiry = handshake.expiry();
            let data = decide(&handler, handshake, &params).await?;
            let expires = *expiry.lock().unwrap_or_else(PoisonError::into_inner);
            let env = shared.env(remote_addr, slot, expires);
            let session: Session = {
                // Registered now, before the 101 is written: a client that has its 101 is a
                // member of its address's topic.
                let registered = task::register(handler, params, address, data, env);
                let lifecycle = shared.lifecycle.clone();
                Box::new(move |transport| lifecycle.spawn(task::run(registered, transport)))
            };
            Ok(session)
        })
    }

    /// Only JSON channels travel over a session (108 otherwise), by the canonical form of
    /// their address (107 otherwise: one string per topic, so pushes echo what the client
    /// subscribed with and share one frame per publish).
    fn subscribe(
        &self,
        state: &Arc<S>,
        raw_values: &[&str],
        subscribing: &mut Subscribing<'_>,
    ) -> Result<Deciding, ReplyError> {
        if <C::Codec as Codec>::BINARY {
            return Err(reply_error(ErrorCode::NotAvailable, ""));
        }
        let params = C::Params::TEMPLATE
            .decode_values(raw_values)
            .and_then(|values| C::Params::from_values(&values))
            .map_err(|error| reply_error(ErrorCode::BadRequest, error.to_string()))?;
        let canonical = params.to_string();
        if canonical != subscribing.channel {
            let message = format!("not the canonical address, use `{canonical}`");
            return Err(reply_error(ErrorCode::BadRequest, message));
        }
        let handshake = Handshake::new(
            params.clone(),
            subscribing.request.clone(),
            subscribing.remote_addr,
            state.clone(),
        )
        .in_session(subscribing.in_session());
        let expiry = handshake.expiry();
        let core = subscribing.core(C::NAME, C::LAG_POLICY);
        let (handler, state) = (self.clone(), state.clone());
        Ok(Box::pin(async move {
            let data = decide(&handler, handshake, &params).await?;
            let conn = Conn::new(ConnInner { core, params, state }, data);
            let binding: Box<dyn Binding> = Box::new(Bound::new(handler, conn));
            let expires = *expiry.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(Decided { binding, expires })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    fn config(header: ProxyHeader) -> Config {
        Config {
            trusted_proxies: vec!["10.0.0.9".parse().unwrap(), "10.0.0.8".parse().unwrap()],
            proxy_header: header,
            ..Config::default()
        }
    }

    #[test]
    fn proxy_headers_are_believed_only_from_trusted_proxies() {
        let proxy: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.9]:5000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.7:5000".parse().unwrap();
        let xff = config(ProxyHeader::XForwardedFor);
        let chain = headers(&[("x-forwarded-for", "198.51.100.1, 192.0.2.4, 10.0.0.8")]);
        let client = Some("192.0.2.4:0".parse().unwrap());
        assert_eq!(
            client_addr(&xff, &chain, Some(proxy)),
            client,
            "the rightmost untrusted hop"
        );
        assert_eq!(client_addr(&xff, &chain, Some(mapped)), client, "IPv4-mapped is IPv4");
        assert_eq!(
            client_addr(&xff, &chain, Some(stranger)),
            Some(stranger),
            "anyone can send it"
        );
        let forwarded = config(ProxyHeader::Forwarded);
        let chain = headers(&[(
            "forwarded",
            r#"for=198.51.100.1;proto=https, For="[2001:db8::17]:4711""#,
        )]);
        assert_eq!(
            client_addr(&forwarded, &chain, Some(proxy)),
            Some("[2001:db8::17]:4711".parse().unwrap()),
            "with its port, whatever the parameter's case"
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_addr(&forwarded, &unknown, Some(proxy)), Some(proxy));
    }

    #[test]
    fn a_client_cannot_choose_its_address_with_the_other_header() {
        // nginx appends to X-Forwarded-For and passes the client's own Forwarded through.
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.5"), ("forwarded", "for=127.0.0.1")]);
        let proxy: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        assert_eq!(
            client_addr(&config(ProxyHeader::XForwardedFor), &spoofed, Some(proxy)),
            Some("203.0.113.5:0".parse().unwrap())
        );
    }
}
