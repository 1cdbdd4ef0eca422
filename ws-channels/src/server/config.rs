//! A server's tunables, each with a documented default (set through `Server`'s builder).

use std::net::IpAddr;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::limits::RateLimit;
use super::liveness::Liveness;

/// Tunables, each with a documented default.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) websocket: WebSocketConfig,
    pub(crate) max_message_size: usize,
    pub(crate) outbound_queue: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_pending_handshakes: usize,
    pub(crate) max_pending_handshakes_per_ip: usize,
    /// Peers whose forwarding header is believed, and which header they set.
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) proxy_header: ProxyHeader,
    pub(crate) close_timeout: Duration,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) liveness: Liveness,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_connections_per_address: Option<usize>,
    pub(crate) origins: Origins,
}

impl Default for Config {
    fn default() -> Self {
        let config = Self {
            websocket: WebSocketConfig::default()
                .read_buffer_size(DEFAULT_READ_BUFFER)
                .write_buffer_size(DEFAULT_WRITE_BUFFER)
                // tungstenite's buffer holds only control frames (the connection's writer frames
                // data itself, see `writer`): a cap just over the flush threshold keeps pongs
                // to a client that pings but never reads from piling up.
                .max_write_buffer_size(DEFAULT_WRITE_BUFFER + FRAME_SLACK),
            max_message_size: DEFAULT_MAX_MESSAGE,
            outbound_queue: 128,
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 1024,
            max_pending_handshakes_per_ip: 64,
            trusted_proxies: Vec::new(),
            proxy_header: ProxyHeader::XForwardedFor,
            close_timeout: Duration::from_secs(3),
            rate_limit: None,
            liveness: Liveness {
                ping_interval: Some(Duration::from_secs(30)),
                idle_timeout: None,
            },
            max_connections: None,
            max_connections_per_address: None,
            origins: Origins::SameHost,
        };
        config.with_max_message_size(DEFAULT_MAX_MESSAGE)
    }
}

impl Config {
    /// Messages up to `max` are read and checked against it (an error reply is possible);
    /// the protocol layer refuses anything over twice that without reading it (always 1009).
    pub(crate) fn with_max_message_size(mut self, max: usize) -> Self {
        let hard = max.saturating_mul(2);
        self.max_message_size = max;
        self.websocket = self.websocket.max_message_size(Some(hard)).max_frame_size(Some(hard));
        self
    }
}

/// 4 KiB per read of a socket (tungstenite's default is 128 KiB); a connection holds it from a
/// read until a read finds nothing more (see `socket::Inbox`).
const DEFAULT_READ_BUFFER: usize = 4 * 1024;
const DEFAULT_WRITE_BUFFER: usize = 8 * 1024;
/// Room for a frame header (at most 14 bytes) and a control frame (at most 127 bytes).
const FRAME_SLACK: usize = 1024;
const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// Which browser origins may open a connection (requests without an `Origin` header come from
/// non-browser clients and are always allowed).
#[derive(Debug, Clone)]
pub(crate) enum Origins {
    /// Only pages served from the host the request was sent to (its `Host` header): a page on
    /// another site cannot ride a user's cookies into a connection.
    SameHost,
    /// These origins (`https://example.com`), compared as RFC 6454 says: scheme and host
    /// without regard to case. Parsed once, when the list is set.
    List(Vec<Origin>),
    /// Any origin.
    Any,
}

/// An origin as RFC 6454 compares them: scheme and host without regard to case, the port
/// explicit (a scheme's default when none is written; none for a scheme without one, such as
/// `tauri://localhost` or `chrome-extension://<id>`), no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub(crate) fn parse(origin: &str) -> Option<Self> {
        let (scheme, rest) = origin.split_once("://")?;
        // RFC 3986 §3.1: a letter, then letters, digits, `+`, `-` and `.`.
        let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !is_scheme {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        // An allow-list entry may be written with a trailing `/`; an origin has no path.
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            // `[::1]:8080`, `example.com:8080`; not the colons inside `[::1]`.
            Some((host, port)) if !port.contains(']') => (host, Some(port.parse().ok()?)),
            _ => (authority, None),
        };
        if host.is_empty() {
            return None;
        }
        let port = port.or(match scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        });
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_by_scheme_host_and_port() {
        let parse = |o: &str| Origin::parse(o);
        assert_eq!(parse("https://Example.COM"), parse("https://example.com:443"));
        assert_eq!(
            parse("https://example.com/"),
            parse("https://example.com"),
            "a list entry's slash"
        );
        assert_ne!(parse("https://example.com"), parse("http://example.com"));
        assert_ne!(parse("https://example.com"), parse("https://example.com:8443"));
        assert_eq!(
            parse("http://[::1]:8080").map(|o| (o.host, o.port)),
            Some(("[::1]".into(), Some(8080)))
        );
        // Schemes without a default port: the port written, or none.
        assert_eq!(parse("tauri://localhost").map(|o| o.port), Some(None));
        assert_eq!(parse("TAURI://LocalHost"), parse("tauri://localhost"));
        assert_ne!(parse("app://x"), parse("app://x:1"));
        assert!(parse("chrome-extension://abcdefghijklmnop").is_some());
        for bad in [
            "null",
            "example.com",
            "https://",
            "https://:8443",
            "ht tp://a.com",
            "1http://a.com",
            "https://a.com/path",
            "https://u@a.com",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_protocol_write_buffer_is_capped_just_over_its_flush_threshold() {
        let websocket = Config::default().websocket;
        assert!(websocket.max_write_buffer_size > websocket.write_buffer_size);
        assert!(websocket.max_write_buffer_size <= websocket.write_buffer_size + FRAME_SLACK);
    }
}

/// The header a trusted reverse proxy names the client in; see
/// [`Server::trusted_proxies`](crate::Server::trusted_proxies).
///
/// Only the header the proxy itself sets may be read: a proxy that appends to
/// `X-Forwarded-For` passes a client's own `Forwarded` header through untouched (and the
/// reverse), so reading the other one would let clients choose their address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx's `$proxy_add_x_forwarded_for`, most load
    /// balancers).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}
