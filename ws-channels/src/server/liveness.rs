//! A connection's clocks: server pings and their deadline, the idle limit, and how long a
//! closing connection waits for the peer's close reply. The reader arms one timer for the
//! earliest of them and asks what is due when it fires.

use std::time::Duration;

use tokio::time::Instant;

/// The liveness settings: server pings and the idle limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
}

/// What is due when the timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Send a ping.
    Ping,
    /// Nothing at all was heard from the peer since the last ping: it is gone.
    PingTimeout,
    /// No message for the idle limit.
    Idle,
    /// The peer did not answer the server's close frame in time.
    CloseReply,
    /// The connection's credentials expired.
    Expired,
}

pub(crate) struct Clocks {
    settings: Liveness,
    next_ping: Option<Instant>,
    /// Whether a ping went out and nothing has been heard from the peer since: at the next
    /// tick, the peer is gone. (A flag, not a time: reading the clock for every frame costs.)
    awaiting_pong: bool,
    /// The last data message, for the idle timeout (kept only with one).
    active: Instant,
    /// Set once the connection is closing: when to stop waiting for the peer's close reply.
    closing_deadline: Option<Instant>,
    /// When the connection's credentials expire.
    expires: Option<Instant>,
}

impl Clocks {
    pub(crate) fn new(settings: Liveness, expires: Option<Instant>) -> Self {
        let now = Instant::now();
        Self {
            settings,
            next_ping: settings.ping_interval.map(|every| now + every),
            awaiting_pong: false,
            active: now,
            closing_deadline: None,
            expires,
        }
    }

    /// Something arrived from the peer; `data` for a text or binary message.
    pub(crate) fn heard(&mut self, data: bool) {
        self.awaiting_pong = false;
        if data && self.settings.idle_timeout.is_some() {
            self.active = Instant::now();
        }
    }

    /// Starts the close-reply clock (once). Pings and the idle limit stop counting.
    pub(crate) fn closing(&mut self, close_timeout: Duration) {
        if self.closing_deadline.is_none() {
            self.closing_deadline = Some(Instant::now() + close_timeout);
        }
    }

    /// When something is next due, if anything can be.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.closing_deadline.is_some() {
            return self.closing_deadline;
        }
        let idle = self.settings.idle_timeout.map(|idle| self.active + idle);
        [self.next_ping, idle, self.expires].into_iter().flatten().min()
    }

    /// What is due at `now` (expiry, then the idle limit, then a ping), and the clocks moved
    /// past it.
    pub(crate) fn due(&mut self, now: Instant) -> Option<Due> {
        if let Some(deadline) = self.closing_deadline {
            return (deadline <= now).then_some(Due::CloseReply);
        }
        if self.expires.is_some_and(|expires| expires <= now) {
            return Some(Due::Expired);
        }
        if self.settings.idle_timeout.is_some_and(|idle| self.active + idle <= now) {
            return Some(Due::Idle);
        }
        let (Some(ping), Some(every)) = (self.next_ping, self.settings.ping_interval) else {
            return None;
        };
        if ping > now {
            return None;
        }
        // Ticks missed while busy are not made up: the next ping is a full interval away.
        self.next_ping = Some(now + every);
        if self.awaiting_pong {
            return Some(Due::PingTimeout);
        }
        self.awaiting_pong = true;
        Some(Due::Ping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn clocks(ping: Option<u64>, idle: Option<u64>) -> Clocks {
        Clocks::new(
            Liveness {
                ping_interval: ping.map(Duration::from_secs),
                idle_timeout: idle.map(Duration::from_secs),
            },
            None,
        )
    }

    #[test]
    fn a_silent_peer_is_pinged_then_timed_out() {
        let mut c = clocks(Some(10), None);
        let start = c.active;
        assert_eq!(c.next_deadline(), Some(start + 10 * SECOND));
        assert_eq!(c.due(start + 5 * SECOND), None, "not yet");
        assert_eq!(c.due(start + 10 * SECOND), Some(Due::Ping));
        assert_eq!(c.next_deadline(), Some(start + 20 * SECOND));
        assert_eq!(c.due(start + 20 * SECOND), Some(Due::PingTimeout));
    }

    #[test]
    fn a_peer_heard_after_the_ping_is_pinged_again() {
        let mut c = clocks(Some(10), None);
        let start = c.active;
        assert_eq!(c.due(start + 10 * SECOND), Some(Due::Ping));
        c.heard(false);
        assert_eq!(c.due(start + 20 * SECOND), Some(Due::Ping));
    }

    #[test]
    fn idle_comes_first_and_closing_stops_the_rest() {
        let mut c = clocks(Some(10), Some(5));
        let start = c.active;
        assert_eq!(c.next_deadline(), Some(start + 5 * SECOND));
        assert_eq!(c.due(start + 5 * SECOND), Some(Due::Idle));
        c.closing(3 * SECOND);
        let deadline = c.next_deadline().unwrap();
        assert_eq!(c.due(deadline - SECOND), None);
        assert_eq!(c.due(deadline), Some(Due::CloseReply));
    }

    #[test]
    fn expiry_comes_before_everything_but_a_close() {
        let mut c = clocks(Some(10), Some(10));
        let start = c.active;
        c.expires = Some(start + 3 * SECOND);
        assert_eq!(c.next_deadline(), Some(start + 3 * SECOND));
        assert_eq!(c.due(start + 2 * SECOND), None);
        assert_eq!(c.due(start + 3 * SECOND), Some(Due::Expired));
        c.closing(100 * SECOND);
        assert_eq!(c.due(start + 3 * SECOND), None, "closing: only the close reply counts");
    }

    #[test]
    fn without_settings_nothing_is_ever_due() {
        let mut c = clocks(None, None);
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.due(Instant::now() + 1000 * SECOND), None);
    }
}
