//! What the crate writes to its logs, made safe to write: peer input escaped ([`Escaped`], public,
//! for applications to print and log other users' text the same way), and
//! warnings that can repeat many times a second (an accept loop out of file descriptors)
//! throttled, with a count of what was left out ([`Throttle`]).
//!
//! The volume per connection at each level is in [`guide::logging`](crate::guide::logging).

use std::fmt::{self, Write as _};
use std::time::Duration;

use tokio::time::Instant;

/// Text a peer chose, made safe to write to a log or a terminal: its control characters and
/// invisible reordering marks shown as escapes, everything else as it is.
///
/// A terminal obeys the control characters it is given (ESC starts sequences that set the
/// window title, clear the screen or write the clipboard), a newline starts a line that looks
/// like any other (a forged log line, a forged `<alice>` in a chat), and bidirectional
/// overrides reorder what follows. The server logs every field a peer can fill (close
/// reasons, decode errors quoting a frame, refusals naming a parameter) through this; print
/// or log other users' text through it too.
///
/// Escaped are every control character (C0 including tab, CR and LF, DEL, C1) as `\n`, `\r`,
/// `\t` or `\u{…}`, and likewise the bidirectional marks, embeddings, overrides and isolates
/// and the Unicode line and paragraph separators. (`{:?}` would escape the controls too, but
/// quote the text and escape its quotes and backslashes.) A backslash is written as it is, so
/// a newline and the two characters `\n` look alike: the escapes are for reading, not for
/// parsing back. Width and precision (`{:.64}`) are not applied.
///
/// ```
/// use ws_channels::Escaped;
///
/// let name = "alice\n<bob> I owe alice 100\u{1b}[2J";
/// assert_eq!(Escaped(name).to_string(), r"alice\n<bob> I owe alice 100\u{1b}[2J");
/// assert!(!Escaped(name).is_plain());
/// assert!(Escaped("Zoë «ok»").is_plain());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: AsRef<str>> Escaped<T> {
    /// Whether the text has nothing to escape (an application's rule for names, say).
    pub fn is_plain(&self) -> bool {
        !self.0.as_ref().chars().any(needs_escape)
    }
}

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

/// See [`Escaped`]: C0, DEL and C1 controls; the bidirectional marks (U+061C, U+200E, U+200F),
/// embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069); the line and
/// paragraph separators (U+2028, U+2029).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
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
    fn escaping_shows_control_characters_as_text() {
        let escaped = |text: &str| Escaped(text).to_string();
        // OSC 52 (write the clipboard), a title change and a screen clear, ended by BEL or ST.
        assert_eq!(
            escaped("\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}]0;owned\u{1b}\\\u{1b}[2J"),
            r"\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}]0;owned\u{1b}\\u{1b}[2J"
        );
        // A forged line: the newline and carriage return show, so nothing starts a line.
        assert_eq!(escaped("hi\n<alice> my password is"), r"hi\n<alice> my password is");
        assert_eq!(escaped("a\rb\tc"), r"a\rb\tc");
        // C1 controls (CSI, NEL) and DEL, and the bidirectional overrides and isolates.
        assert_eq!(escaped("\u{9b}2J\u{85}\u{7f}"), r"\u{9b}2J\u{85}\u{7f}");
        assert_eq!(escaped("a\u{202e}b\u{2066}c\u{200f}"), r"a\u{202e}b\u{2066}c\u{200f}");
        // Everything else passes untouched, other scripts and emoji included.
        let plain = "Zoë says 你好 👋 (\"quoted\", 'single', back\\slash) 😀‍";
        assert_eq!(escaped(plain), plain);
        // Any `Display`, not only strings: the client prints errors through it too.
        assert_eq!(Escaped(format_args!("{}!", "\u{1b}c")).to_string(), r"\u{1b}c!");
    }

    #[test]
    fn no_unprintable_character_survives_escaping() {
        let every: String = (0..=0x3000u32).filter_map(char::from_u32).collect();
        let escaped = Escaped(every.as_str()).to_string();
        let left: Vec<char> = escaped.chars().filter(|&c| needs_escape(c)).collect();
        assert!(left.is_empty(), "left raw: {left:?}");
        for c in [
            '\u{1b}', '\n', '\r', '\u{0}', '\u{7f}', '\u{80}', '\u{9f}', '\u{202a}', '\u{2069}',
        ] {
            assert!(needs_escape(c), "{c:?}");
        }
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
