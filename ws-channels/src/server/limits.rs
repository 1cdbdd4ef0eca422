//! Per-connection rate limits and server-wide connection limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A per-connection message rate limit (a token bucket): `rate` messages per second on
/// average, bursts of up to `burst`.
///
/// ```
/// use ws_channels::{RateLimit, RateLimitAction};
/// let limit = RateLimit::per_second(10).burst(20).on_exceed(RateLimitAction::Reply);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    action: RateLimitAction,
}

/// What happens to a message over the [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimitAction {
    /// Close the connection with 1013 (`rate limit exceeded`: try again later). The default.
    #[default]
    Close,
    /// Drop the message and, on channels declared with `on_invalid = reply`, send the
    /// channel's error reply for [`Error::RateLimited`](crate::Error::RateLimited) (at most one
    /// per second of flooding; the rest are counted in
    /// [`MetricsSnapshot::error_replies_dropped`](crate::MetricsSnapshot::error_replies_dropped));
    /// the connection stays open.
    Reply,
}

impl RateLimit {
    /// `messages` per second, with bursts of the same size.
    ///
    /// # Panics
    ///
    /// If `messages` is zero.
    pub fn per_second(messages: u32) -> Self {
        assert!(messages > 0, "a rate limit allows at least one message per second");
        Self {
            rate: f64::from(messages),
            burst: f64::from(messages),
            action: RateLimitAction::Close,
        }
    }

    /// Allows bursts of up to `messages` (at least 1).
    pub fn burst(mut self, messages: u32) -> Self {
        self.burst = f64::from(messages.max(1));
        self
    }

    /// What happens to a message over the limit.
    pub fn on_exceed(mut self, action: RateLimitAction) -> Self {
        self.action = action;
        self
    }

    pub(crate) fn action(&self) -> RateLimitAction {
        self.action
    }
}

/// At most one rate-limit error reply per this interval.
const REPLY_INTERVAL: Duration = Duration::from_secs(1);

/// A connection's bucket: starts full, refills continuously.
pub(crate) struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    refilled: Instant,
    /// When the last rate-limit error reply went out.
    replied: Option<Instant>,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            tokens: limit.burst,
            limit,
            refilled: Instant::now(),
            replied: None,
        }
    }

    /// Whether a message over the limit gets an error reply: one per second of flooding, so a
    /// flood cannot fill the sender's own queue with replies.
    pub(crate) fn reply_due(&mut self, now: Instant) -> bool {
        let due = self
            .replied
            .is_none_or(|replied| now.saturating_duration_since(replied) >= REPLY_INTERVAL);
        if due {
            self.replied = Some(now);
        }
        due
    }

    /// Takes a token for one message; `false` when the message is over the limit.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.rate).min(self.limit.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Caps sockets still in their handshake (standalone server): globally, so clients that connect
/// and never finish their request cannot exhaust file descriptors, and per peer IP, so one
/// address cannot take every slot and lock everyone else out. Peers that are trusted proxies
/// are only counted globally: they carry many clients.
#[derive(Debug)]
pub(crate) struct PendingHandshakes {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts<IpAddr>>,
}

impl PendingHandshakes {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Mutex::default(),
        }
    }

    /// A slot for one socket from `ip` (`per_ip`: whether the per-IP cap applies to it), or
    /// `None` when a cap is reached.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr, per_ip: bool) -> Option<Pending> {
        let ip = per_ip_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.max_total {
            return None;
        }
        if per_ip {
            let here = counts.per_key.entry(ip).or_default();
            if *here >= self.max_per_ip {
                return None;
            }
            *here += 1;
        }
        counts.total += 1;
        Some(Pending {
            limits: self.clone(),
            ip: per_ip.then_some(ip),
        })
    }
}

/// Whether a peer is held to the per-IP handshake cap: not trusted proxies, which carry many
/// clients, and not loopback peers (a proxy on this host, or a local process that could do
/// anything anyway).
pub(crate) fn counted_per_ip(ip: IpAddr, trusted_proxies: &[IpAddr]) -> bool {
    !ip.is_loopback() && !trusted_proxies.contains(&ip)
}

/// The key a peer is counted under: its IPv4 address, or its IPv6 /64 (one host is usually
/// given a whole /64, so counting single IPv6 addresses would let it rotate past the cap).
pub(crate) fn per_ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// One socket in its handshake; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Pending {
    limits: Arc<PendingHandshakes>,
    ip: Option<IpAddr>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.release(self.ip.as_ref(), true);
    }
}

/// Counts open connections, globally and per address, so a handshake over a limit is refused
/// with 503 before the upgrade. A slot is taken before `on_connect` and given back when the
/// connection (or the refused handshake) ends.
#[derive(Debug, Default)]
pub(crate) struct ConnectionLimits {
    max_total: Option<usize>,
    max_per_address: Option<usize>,
    counts: Mutex<Counts<Arc<str>>>,
}

/// A total and a count per key, each key forgotten when its count reaches zero.
#[derive(Debug)]
struct Counts<K> {
    total: usize,
    per_key: HashMap<K, usize>,
}

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Self {
            total: 0,
            per_key: HashMap::new(),
        }
    }
}

impl<K: Eq + std::hash::Hash> Counts<K> {
    /// Releases one count of `key`, and of the total if it was counted there.
    fn release(&mut self, key: Option<&K>, in_total: bool) {
        if in_total {
            self.total = self.total.saturating_sub(1);
        }
        if let Some(key) = key
            && let Some(n) = self.per_key.get_mut(key)
        {
            *n -= 1;
            if *n == 0 {
                self.per_key.remove(key);
            }
        }
    }
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Server,
    Address,
}

impl ConnectionLimits {
    pub(crate) fn new(max_total: Option<usize>, max_per_address: Option<usize>) -> Self {
        Self {
            max_total,
            max_per_address,
            counts: Mutex::default(),
        }
    }

    /// `address` is the connection's own (shared, not copied, by its slot).
    pub(crate) fn acquire(self: &Arc<Self>, address: &Arc<str>) -> Result<Slot, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if self.max_total.is_some_and(|max| counts.total >= max) {
            return Err(Full::Server);
        }
        let here = counts.per_key.get(address).copied().unwrap_or(0);
        if self.max_per_address.is_some_and(|max| here >= max) {
            return Err(Full::Address);
        }
        counts.total += 1;
        *counts.per_key.entry(address.clone()).or_default() += 1;
        Ok(Slot {
            limits: self.clone(),
            address: Some(address.clone()),
            in_total: true,
        })
    }

    /// A session: a connection, counted toward the server's total only. Its path is no
    /// address of a room (every session shares it); its subscriptions count toward theirs
    /// ([`acquire_member`](Self::acquire_member)).
    pub(crate) fn acquire_session(self: &Arc<Self>) -> Result<Slot, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if self.max_total.is_some_and(|max| counts.total >= max) {
            return Err(Full::Server);
        }
        counts.total += 1;
        Ok(Slot {
            limits: self.clone(),
            address: None,
            in_total: true,
        })
    }

    /// A session's subscription to `address`: counted toward the address's limit (a room's
    /// members, direct or not), not the server's total, which counts connections (the session
    /// is one).
    pub(crate) fn acquire_member(self: &Arc<Self>, address: &Arc<str>) -> Result<Slot, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let here = counts.per_key.get(address).copied().unwrap_or(0);
        if self.max_per_address.is_some_and(|max| here >= max) {
            return Err(Full::Address);
        }
        *counts.per_key.entry(address.clone()).or_default() += 1;
        Ok(Slot {
            limits: self.clone(),
            address: Some(address.clone()),
            in_total: false,
        })
    }
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    limits: Arc<ConnectionLimits>,
    /// The address it counts toward (none for a session).
    address: Option<Arc<str>>,
    /// Counted toward the server's total (a connection), or only its address's (a session's
    /// subscription).
    in_total: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.release(self.address.as_ref(), self.in_total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::per_second(2).burst(3));
        bucket.refilled = start;
        assert_eq!(
            (0..4).map(|_| bucket.take(start)).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert!(
            bucket.take(start + Duration::from_millis(500)),
            "one token after half a second"
        );
        assert!(!bucket.take(start + Duration::from_millis(600)));
    }

    #[test]
    fn a_flood_gets_one_reply_per_second() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::per_second(1));
        assert!(bucket.reply_due(start));
        assert!(!bucket.reply_due(start + Duration::from_millis(999)));
        assert!(bucket.reply_due(start + Duration::from_secs(1)));
    }

    #[test]
    fn pending_handshakes_are_capped_per_ip_except_for_proxies() {
        let pending = Arc::new(PendingHandshakes::new(4, 2));
        let (a, b, proxy): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.9".parse().unwrap(),
        );
        let a1 = pending.acquire(a, true).unwrap();
        let _a2 = pending.acquire(a, true).unwrap();
        assert!(pending.acquire(a, true).is_none(), "a third from one address");
        let _b = pending.acquire(b, true).unwrap();
        let _p = pending.acquire(proxy, false).unwrap();
        assert!(
            pending.acquire(proxy, false).is_none(),
            "the global cap holds for proxies"
        );
        drop(a1);
        assert!(pending.acquire(a, true).is_some());
    }

    #[test]
    fn ipv6_peers_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(per_ip_key(a), per_ip_key(b));
        assert_ne!(per_ip_key(a), per_ip_key(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(per_ip_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn proxies_and_loopback_peers_are_not_counted_per_ip() {
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(counted_per_ip("203.0.113.1".parse().unwrap(), &[proxy]));
        assert!(!counted_per_ip(proxy, &[proxy]));
        assert!(!counted_per_ip("127.0.0.2".parse().unwrap(), &[]));
        assert!(!counted_per_ip("::1".parse().unwrap(), &[]));
    }

    #[test]
    fn slots_count_globally_and_per_address_and_free_on_drop() {
        let limits = Arc::new(ConnectionLimits::new(Some(3), Some(2)));
        let [a, b, c]: [Arc<str>; 3] = ["a".into(), "b".into(), "c".into()];
        let a1 = limits.acquire(&a).unwrap();
        let _a2 = limits.acquire(&a).unwrap();
        assert_eq!(limits.acquire(&a).unwrap_err(), Full::Address);
        let _b = limits.acquire(&b).unwrap();
        assert_eq!(limits.acquire(&c).unwrap_err(), Full::Server);
        drop(a1);
        assert!(limits.acquire(&a).is_ok());
    }
}
