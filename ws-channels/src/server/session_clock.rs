//! A session's clocks: what is due when (the connect deadline, pings and their pong, the
//! expiry of credentials, a handler's deadline, the close reply), read by its task whenever
//! its one timer fires.

use std::time::Duration;

use tokio::time::Instant;

use super::sessions::Settings;

/// A session's clocks: the connect deadline, pings and their pong deadline, and how long a
/// closing session waits for the peer's close reply.
pub(crate) struct Clocks {
    pub(crate) connect_by: Option<Instant>,
    pub(crate) next_ping: Option<Instant>,
    pub(crate) pong_by: Option<Instant>,
    pub(crate) closing_by: Option<Instant>,
    /// When the session's credentials expire, plus the grace for a `refresh`.
    pub(crate) expired_by: Option<Instant>,
    /// The earliest expiry of a subscription's credentials.
    pub(crate) subscription_expires: Option<Instant>,
    /// When the running handler (a subscription's `on_open`, an `on_close`) has taken its
    /// time: an `on_open` its subscribe's deadline (the SDK's call timeout on a `subscribe`
    /// would end the whole connection), an `on_close` the command timeout.
    pub(crate) handler_by: Option<Instant>,
}

/// What is due when the timer fires.
pub(crate) enum Due {
    Stale,
    Ping,
    NoPong,
    Expired,
    SubscriptionExpired,
    HandlerTimedOut,
    CloseReply,
}

impl Clocks {
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.closing_by.is_some() {
            return self.closing_by;
        }
        [
            self.connect_by,
            self.next_ping,
            self.pong_by,
            self.expired_by,
            self.subscription_expires,
            self.handler_by,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn due(&mut self, now: Instant, settings: &Settings) -> Option<Due> {
        let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if let Some(closing_by) = self.closing_by {
            return (closing_by <= now).then_some(Due::CloseReply);
        }
        if passed(self.connect_by) {
            return Some(Due::Stale);
        }
        if passed(self.pong_by) {
            return Some(Due::NoPong);
        }
        if passed(self.expired_by) {
            return Some(Due::Expired);
        }
        if passed(self.subscription_expires) {
            return Some(Due::SubscriptionExpired);
        }
        if passed(self.handler_by) {
            self.handler_by = None;
            return Some(Due::HandlerTimedOut);
        }
        if passed(self.next_ping) {
            // Ticks missed while busy are not made up: the next ping is a full interval away.
            self.next_ping = Some(now + settings.ping_interval);
            // A ping while one is unanswered does not move that one's deadline.
            self.pong_by.get_or_insert(now + settings.pong_timeout);
            return Some(Due::Ping);
        }
        None
    }
}

/// The delay to a session's first ping: `interval` scaled into [½, 1) by `random` in [0, 1).
pub(crate) fn first_ping(interval: Duration, random: f64) -> Duration {
    interval.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ping_comes_within_half_to_one_interval() {
        let interval = Duration::from_secs(25);
        assert_eq!(first_ping(interval, 0.0), Duration::from_millis(12_500));
        assert!(first_ping(interval, 0.999_999) < interval);
        assert_eq!(first_ping(interval, 7.0), interval, "clamped");
    }
}
