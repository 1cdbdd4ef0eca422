//! What the crate writes to its logs, made safe to write: peer input escaped ([`Escaped`]), and
//! warnings that can repeat many times a second (an accept loop out of file descriptors)
//! throttled, with a count of what was left out ([`Throttle`]).
//!
//! The volume per connection at each level is in the logging guide.

use std::fmt::{self, Write as _};
use std::time::Duration;

use tokio::time::Instant;

/// Text a peer chose (a close reason, a decode error quoting the frame, a refusal naming a
/// parameter's value), formatted with its control characters escaped: a `\n` in it cannot start
/// a forged log line, an ESC cannot reach an operator's terminal, a bidirectional override
/// cannot reorder what is shown. Everything else is written as it is, so logs stay readable
/// (`?` would also quote the text and escape its quotes).
pub(crate) struct Escaped<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

/// A writer that escapes what [`Escaped`] promises, passing runs of other characters on whole.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, c) in text.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            self.0.write_str(&text[plain..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                _ => write!(self.0, "{}", c.escape_unicode())?,
            }
            plain = at + c.len_utf8();
        }
        self.0.write_str(&text[plain..])
    }
}

/// C0 and C1 controls (ESC, newlines, …), DEL, and the bidirectional embeddings, overrides
/// and isolates (U+202A–U+202E, U+2066–U+2069).
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Lets a repeated warning through at most once per interval, and counts the ones held back
/// so the next line can say how many there were.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub(crate) const fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log now, `n` lines having been held back since the last; `None`: hold this
    /// one back.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// How often a failing accept loop may warn: out of file descriptors, `accept` fails every
/// time the loop tries (every 50 ms), which would otherwise be 20 lines a second.
const ACCEPT_WARNINGS: Duration = Duration::from_secs(10);

/// What an accept loop does when `accept` fails (out of file descriptors and similar): warns,
/// at most once per ten seconds with the count of failures left out, then backs off 50 ms
/// instead of spinning. Shared by the standalone server and `serve_app`.
pub(crate) async fn accept_failed(throttle: &mut Throttle, error: &std::io::Error) {
    if let Some(suppressed) = throttle.allow(Instant::now()) {
        tracing::warn!(%error, suppressed, "accept failed: backing off");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// A throttle for an accept loop's warnings (see [`accept_failed`]).
pub(crate) const fn accept_throttle() -> Throttle {
    Throttle::new(ACCEPT_WARNINGS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let forged = "bye\nINFO connection opened\r\t\u{1b}]52;c;ZXZpbA==\u{7}\u{9b}2J \u{202E}évil\u{7f}";
        assert_eq!(
            Escaped(forged).to_string(),
            "bye\\nINFO connection opened\\r\\t\\u{1b}]52;c;ZXZpbA==\\u{7}\\u{9b}2J \\u{202e}évil\\u{7f}"
        );
        assert_eq!(Escaped("plain «text»").to_string(), "plain «text»");
    }

    #[test]
    fn a_throttle_lets_one_line_through_per_interval_and_counts_the_rest() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.allow(start), Some(0));
        for ms in (50..10_000).step_by(50) {
            assert_eq!(throttle.allow(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.allow(start + Duration::from_secs(10)), Some(199));
        assert_eq!(throttle.allow(start + Duration::from_secs(11)), None);
        assert_eq!(throttle.allow(start + Duration::from_secs(25)), Some(1));
    }
}
