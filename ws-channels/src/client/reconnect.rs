//! When a client reconnects: the backoff policy, the connection's states, and the one rule
//! that says which ends are final.

use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::error::Error;

/// What observes every state change ([`ClientBuilder::on_state`](super::ClientBuilder::on_state)).
pub(crate) type StateHook = Arc<dyn Fn(&ConnectionState) + Send + Sync>;

/// Opt-in reconnection for a [`ClientBuilder`](crate::ClientBuilder): exponential backoff with
/// full jitter, a maximum delay, and an optional attempt limit.
///
/// Before attempt `n` (from 1) the client waits a random delay between zero and
/// `min(max_delay, initial_delay × 2ⁿ⁻¹)` ("full jitter": clients that lost the same server
/// do not come back in step). Attempts go on until one opens, an end is final (see
/// [`ConnectionState`]), or `max_attempts` attempts in a row have failed. A connection that
/// opens counts as a success, and resets the count, only once it has stayed open for
/// [`stable_after`](Self::stable_after) (default 5 s): one the server closes sooner (a 1011,
/// 1012 or 1013 right after the upgrade) counts as a failed attempt, so such a server is not
/// hammered at the initial delay and `max_attempts` applies.
///
/// ```
/// use std::time::Duration;
/// use ws_channels::Reconnect;
///
/// let policy = Reconnect::new()
///     .initial_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(10))
///     .max_attempts(20);
/// assert!(policy.delay(1) <= Duration::from_millis(200));
/// assert!(policy.delay(30) <= Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Reconnect {
    initial_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    stable_after: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self::new()
    }
}

impl Reconnect {
    /// 500 ms initial delay, 30 s maximum, no attempt limit, a connection counts as open after
    /// 5 s.
    pub fn new() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: None,
            stable_after: Duration::from_secs(5),
        }
    }

    /// The cap of the first attempt's delay; each further attempt doubles it. Default: 500 ms.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The largest cap, however many attempts failed. Default: 30 s.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Give up after this many failed attempts in a row. Default: never.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// How long a connection must stay open before the attempt that opened it counts as a
    /// success (the next loss then starts again from attempt 1, at the initial delay). Shorter
    /// connections count as failed attempts. Default: 5 s; never less than the initial delay.
    pub fn stable_after(mut self, duration: Duration) -> Self {
        self.stable_after = duration;
        self
    }

    /// How long a connection must stay open to reset the count.
    pub(crate) fn stable(&self) -> Duration {
        self.stable_after.max(self.initial_delay)
    }

    /// The delay before attempt `attempt` (from 1): random, up to the attempt's cap.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let cap = self.initial_delay.saturating_mul(1 << doublings).min(self.max_delay);
        // Whole microseconds are precise enough for a backoff and keep the range in a u64.
        let micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }

    /// Whether `attempt` (from 1) is still allowed.
    pub(crate) fn allows(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempt <= max)
    }
}

/// Where a [`Client`](crate::Client)'s connection is. Observe every change with
/// [`ClientBuilder::on_state`](crate::ClientBuilder::on_state), or read the current one with
/// [`Client::state`](crate::Client::state).
///
/// A connection ends **for good** (`Closed`) when the application closes it, when it ends
/// without [`Reconnect`], when the attempts run out, or when the end is final. Final ends are
/// those where trying again would get the same answer:
///
/// | end | final or retried |
/// |---|---|
/// | HTTP 400, 401, 403, 404 (and every other 4xx but 408 and 429) refusing the handshake | final |
/// | HTTP 408, 429 and 5xx (503: the server is full or shutting down) | retried |
/// | close 1000 (normal: the server ended the conversation) | final |
/// | close 1002 protocol error, 1003 unsupported data, 1007 invalid data, 1008 policy, 1009 too big, 1010 | final |
/// | close 1001 going away (shutdown, ping or idle timeout), 1011 server error, 1012 restart, 1013 try again later (slow consumer, rate limit), 1014 | retried |
/// | close [4001](crate::CLOSE_CREDENTIALS_EXPIRED) credentials expired (the [credentials hook](crate::ClientBuilder::credentials) refreshes them) | retried |
/// | any other close code (3000–4999 applications' own) | final |
/// | no close frame (1006: the connection dropped, the server vanished), an I/O error, a connect timeout, a refused TCP connection | retried |
/// | a TLS error (an untrusted or expired certificate, a refused TLS handshake), a bad URL, a protocol violation by the server (garbage instead of frames), a subprotocol mismatch, a failing credentials hook | final |
///
/// A final end is never retried, so a refusal never turns into a loop.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The first attempt is under way.
    Connecting,
    /// The connection is open: messages flow.
    Open,
    /// The connection ended and the client waits `delay` before attempt `attempt` (from 1).
    Reconnecting {
        /// The attempt about to be made: from 1 after a connection that stayed open
        /// [`stable_after`](Reconnect::stable_after), counting on after a shorter one.
        attempt: u32,
        /// How long the client waits first.
        delay: Duration,
        /// Why the last connection or attempt ended.
        error: Arc<Error>,
    },
    /// The connection ended for good: nothing more is sent or received.
    Closed {
        /// The close code, when a close frame ended it (the peer's, or the client's own).
        code: Option<CloseCode>,
        /// The close frame's reason (possibly empty).
        reason: String,
        /// Why it ended, unless the client closed it itself: a refusal ([`Error::Rejected`]),
        /// the close ([`Error::Closed`]) or a transport error.
        error: Option<Arc<Error>>,
    },
}

impl ConnectionState {
    /// Whether the connection is open.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open)
    }

    /// Whether the connection ended for good.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed { .. })
    }
}

/// How one connection (or one attempt to open one) ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The application closed it (or dropped both halves): final, not an error.
    Local(CloseFrame),
    /// The peer's close frame.
    Closed(CloseFrame),
    /// Anything else: a transport error, no close frame, a refused attempt. (Shared: the
    /// states that report it are cloned.)
    Failed(Arc<Error>),
}

impl End {
    /// The [`ConnectionState`] table, as code.
    pub(crate) fn is_final(&self) -> bool {
        match self {
            Self::Local(_) => true,
            Self::Closed(frame) => !retried_close(frame.code),
            Self::Failed(error) => !retried_error(error),
        }
    }

    /// The state a connection that ends for good this way is left in.
    pub(crate) fn into_state(self) -> ConnectionState {
        match self {
            Self::Local(frame) => ConnectionState::Closed {
                code: Some(frame.code),
                reason: frame.reason.to_string(),
                error: None,
            },
            Self::Closed(frame) => ConnectionState::Closed {
                code: Some(frame.code),
                reason: frame.reason.to_string(),
                error: Some(Arc::new(Error::closed(Some(&frame)))),
            },
            Self::Failed(error) => ConnectionState::Closed {
                code: None,
                reason: String::new(),
                error: Some(error),
            },
        }
    }

    /// The error a reconnecting state reports.
    pub(crate) fn into_error(self) -> Arc<Error> {
        match self {
            Self::Local(frame) | Self::Closed(frame) => Arc::new(Error::closed(Some(&frame))),
            Self::Failed(error) => error,
        }
    }
}

fn retried_close(code: CloseCode) -> bool {
    match u16::from(code) {
        1001 | 1006 | 1011 | 1012 | 1013 | 1014 => true,
        code => code == u16::from(crate::CLOSE_CREDENTIALS_EXPIRED),
    }
}

fn retried_error(error: &Error) -> bool {
    match error {
        Error::Rejected { status, .. } => matches!(status, 408 | 429 | 500..=599),
        Error::ConnectTimeout(_) => true,
        Error::Io(error) | Error::WebSocket(WsError::Io(error)) => !is_tls_error(error),
        Error::WebSocket(error) => matches!(
            error,
            WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        ),
        _ => false,
    }
}

/// Whether an I/O error is a TLS failure (an untrusted or expired certificate, a handshake
/// the server refused): `rustls` reports those through the I/O error it wraps, with kind
/// `InvalidData` — data that will not become valid by asking again. (`native-tls` reports them
/// as `WsError::Tls`.)
fn is_tls_error(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::InvalidData
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(code: u16) -> End {
        End::Closed(CloseFrame {
            code: code.into(),
            reason: "".into(),
        })
    }

    fn rejected(status: u16) -> End {
        End::Failed(Arc::new(Error::Rejected {
            status,
            body: String::new(),
        }))
    }

    #[test]
    fn the_taxonomy_is_final_or_retried_as_documented() {
        for code in [1000, 1002, 1003, 1007, 1008, 1009, 1010, 3000, 4000, 4999] {
            assert!(close(code).is_final(), "close {code} is final");
        }
        for code in [1001, 1006, 1011, 1012, 1013, 1014, 4001] {
            assert!(!close(code).is_final(), "close {code} is retried");
        }
        for status in [400, 401, 403, 404, 405, 426] {
            assert!(rejected(status).is_final(), "HTTP {status} is final");
        }
        for status in [408, 429, 500, 502, 503] {
            assert!(!rejected(status).is_final(), "HTTP {status} is retried");
        }
        let failed = |error: Error| End::Failed(Arc::new(error));
        assert!(!failed(Error::ConnectTimeout(Duration::from_secs(1))).is_final());
        assert!(!failed(Error::WebSocket(WsError::Io(std::io::Error::other("reset")))).is_final());
        let certificate = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate");
        assert!(failed(Error::WebSocket(WsError::Io(certificate))).is_final());
        assert!(
            !failed(Error::WebSocket(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )))
            .is_final()
        );
        assert!(failed(Error::WebSocket(WsError::Protocol(ProtocolError::InvalidOpcode(3)))).is_final());
        assert!(failed(Error::Credentials("no token".into())).is_final());
        assert!(
            failed(Error::WebSocket(WsError::Url(
                tokio_tungstenite::tungstenite::error::UrlError::UnsupportedUrlScheme
            )))
            .is_final()
        );
    }

    #[test]
    fn delays_grow_to_the_cap_with_full_jitter() {
        let policy = Reconnect::new()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1));
        for attempt in 1..200 {
            let cap = Duration::from_millis(100 * (1u64 << (attempt - 1).min(20))).min(Duration::from_secs(1));
            assert!(policy.delay(attempt) <= cap, "attempt {attempt}");
        }
        // Jitter: a thousand draws at the cap are not all the same.
        let draws: std::collections::HashSet<_> = (0..1000).map(|_| policy.delay(10)).collect();
        assert!(draws.len() > 100, "{} distinct delays", draws.len());
        assert!(Reconnect::new().max_attempts(3).allows(3));
        assert!(!Reconnect::new().max_attempts(3).allows(4));
    }
}
