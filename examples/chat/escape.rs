//! What another person typed, made safe to print on a terminal.
//!
//! A terminal obeys the control characters it is given: ESC starts sequences that set the
//! window title, clear the screen or write the clipboard (OSC 52), a newline starts a line
//! that looks like anyone's (`<alice> …`), and bidirectional overrides reorder what follows.
//! Everything a peer controls (names, text, close reasons, error messages quoting them) is
//! printed through [`Escaped`], which shows such characters as text (`\u{1b}`, `\n`) instead.

use std::fmt::{self, Write};

/// Whether `c` would act on a terminal (or reorder the text around it) rather than show as a
/// glyph: every control character (C0 including tab, CR and LF; DEL; C1, U+0080 to U+009F),
/// the bidirectional marks, embeddings, overrides and isolates, and the Unicode line and
/// paragraph separators.
pub(crate) fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

/// Displays `T` with each [unprintable](is_unprintable) character written as an escape:
/// `\n`, `\r` and `\t` for those three, `\u{…}` (lower-case hex) for the others.
pub(crate) struct Escaped<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

/// Passes text on to the formatter, escaping as it goes.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| is_unprintable(c)) {
            self.0.write_str(&rest[..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}
