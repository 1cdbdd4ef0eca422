//! A connection's clocks: server pings and their deadline, the idle limit, and how long a
//! closing connection waits for the peer's close reply.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The liveness settings: server pings and the idle limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
}

/// What is due when the ping interval ticks.
pub(crate) enum Ping {
    /// Send a ping.
    Send,
    /// Nothing at all was heard from the peer since the last ping: it is gone.
    TimedOut,
}

pub(crate) struct Clocks {
    settings: Liveness,
    pings: Option<Interval>,
    /// When the last ping went out; the peer must be heard from after it, before the next one.
    pinged: Option<Instant>,
    heard: Instant,
    /// The last data message, for the idle timeout.
    active: Instant,
    /// Set once the connection is closing: when to stop waiting for the peer's close reply.
    closing_deadline: Option<Instant>,
}

impl Clocks {
    pub(crate) fn new(settings: Liveness) -> Self {
        let now = Instant::now();
        Self {
            settings,
            pings: settings.ping_interval.map(|every| {
                let mut pings = tokio::time::interval_at(now + every, every);
                pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
                pings
            }),
            pinged: None,
            heard: now,
            active: now,
            closing_deadline: None,
        }
    }

    /// Something arrived from the peer; `data` for a text or binary message.
    pub(crate) fn heard(&mut self, data: bool) {
        self.heard = Instant::now();
        if data {
            self.active = self.heard;
        }
    }

    /// Starts the close-reply clock (once).
    pub(crate) fn closing(&mut self, close_timeout: Duration) {
        if self.closing_deadline.is_none() {
            self.closing_deadline = Some(Instant::now() + close_timeout);
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing_deadline.is_some()
    }

    /// The next ping tick (never, without pings).
    pub(crate) async fn ping_tick(&mut self) -> Ping {
        match &mut self.pings {
            Some(pings) => {
                pings.tick().await;
            }
            None => std::future::pending().await,
        }
        if self.pinged.is_some_and(|pinged| self.heard < pinged) {
            return Ping::TimedOut;
        }
        self.pinged = Some(Instant::now());
        Ping::Send
    }

    /// When the idle limit runs out (never, without one).
    pub(crate) fn idle_deadline(&self) -> Option<Instant> {
        self.settings.idle_timeout.map(|idle| self.active + idle)
    }

    /// When the peer's close reply is overdue (never, unless closing).
    pub(crate) fn close_deadline(&self) -> Option<Instant> {
        self.closing_deadline
    }
}

/// Sleeps until `deadline`, or forever without one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
