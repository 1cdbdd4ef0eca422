//! Channel address templates: matching concrete paths and formatting them, with percent-coding.
//!
//! The `#[channel]` macro parses and checks the template at compile time and hands the runtime
//! its segments, so there is one grammar (the macro's) and the runtime only walks data.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::ParamError;

/// Everything but RFC 3986 unreserved characters is encoded in a parameter value, so any value
/// (including `/`, `?`, `#`, `%` and spaces) survives a round trip through a path segment, except
/// `.` and `..`: URL parsers resolve those segments away, even percent-encoded (WHATWG's
/// `new URL("ws://h/f/%2E%2e")` has the path `/`), so they are refused at both ends
/// ([`ParamError::DotSegment`]).
const PARAM_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One `/`-separated part of an address template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// A literal segment, matched exactly (`user`, `events`).
    Static(&'static str),
    /// A parameter filling the whole segment, by its name as written in the template (`userId`).
    Param(&'static str),
}

/// A channel's address template, such as `user/events/{userId}`.
///
/// Built by the `#[channel]` macro; available as `<C::Params as Params>::TEMPLATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    address: &'static str,
    segments: &'static [Segment],
}

impl Template {
    /// Generated code only: the macro has already checked that `address` and `segments` agree.
    #[doc(hidden)]
    pub const fn __new(address: &'static str, segments: &'static [Segment]) -> Self {
        Self { address, segments }
    }

    /// The address in AsyncAPI's form, `user/events/{userId}`.
    pub const fn address(&self) -> &'static str {
        self.address
    }

    /// The segments, in order.
    pub const fn segments(&self) -> &'static [Segment] {
        self.segments
    }

    /// The parameter names, in order of appearance.
    pub fn param_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(*name),
            Segment::Static(_) => None,
        })
    }

    /// Matches a concrete path (with or without a leading `/`, without a query string) and
    /// returns the percent-decoded parameter values in template order.
    pub fn match_path(&self, path: &str) -> Result<Vec<String>, ParamError> {
        let no_match = || ParamError::NoMatch {
            template: self.address,
            path: path.to_owned(),
        };
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let mut parts = trimmed.split('/');
        // The whole shape first, then the values: a path of another shape is `NoMatch` even
        // when one of its segments is badly encoded.
        let mut raw = Vec::new();
        for segment in self.segments {
            let part = parts.next().ok_or_else(no_match)?;
            match segment {
                Segment::Static(literal) if *literal == part => {}
                Segment::Static(_) => return Err(no_match()),
                Segment::Param(_) if part.is_empty() => return Err(no_match()),
                Segment::Param(name) => raw.push((*name, part)),
            }
        }
        if parts.next().is_some() {
            return Err(no_match());
        }
        raw.into_iter()
            .map(|(name, part)| decode_value(self.address, name, part))
            .collect()
    }

    /// Formats a concrete path (no leading `/`) from parameter values in template order,
    /// percent-encoding each value. Every value must be present and non-empty.
    pub fn format<S: AsRef<str>>(&self, values: &[S]) -> Result<String, ParamError> {
        let mut given = values.iter();
        for name in self.param_names() {
            match given.next() {
                None => {
                    return Err(ParamError::Missing {
                        template: self.address,
                        name,
                    });
                }
                Some(value) if value.as_ref().is_empty() => {
                    return Err(ParamError::Empty {
                        template: self.address,
                        name,
                    });
                }
                Some(value) => check_not_dots(self.address, name, value.as_ref())?,
            }
        }
        Ok(self.render(values))
    }

    /// Like [`format`](Self::format) but never fails: a missing or empty value leaves its
    /// segment empty, an address no server matches. For `Display`, which cannot fail.
    pub(crate) fn render<S: AsRef<str>>(&self, values: &[S]) -> String {
        let mut out = String::with_capacity(self.address.len() + 16);
        let mut values = values.iter();
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            match segment {
                Segment::Static(literal) => out.push_str(literal),
                Segment::Param(_) => {
                    if let Some(value) = values.next() {
                        out.extend(utf8_percent_encode(value.as_ref(), PARAM_VALUE));
                    }
                }
            }
        }
        out
    }

    /// Percent-decodes parameter values as a router extracted them from a path, in template
    /// order.
    pub(crate) fn decode_values(&self, raw: &[&str]) -> Result<Vec<String>, ParamError> {
        self.param_names()
            .zip(raw)
            .map(|(name, value)| decode_value(self.address, name, value))
            .collect()
    }

    /// The route in the router's syntax: `/user/events/{userId}`.
    pub(crate) fn route(&self) -> String {
        format!("/{}", self.address)
    }
}

/// Decodes one matched path segment. A `%` not followed by two hex digits is refused rather
/// than kept as it is (which `percent_decode_str` would do): kept, `%zz` would decode to the same
/// value as `%25zz`, two addresses for one topic.
fn decode_value(template: &'static str, name: &'static str, raw: &str) -> Result<String, ParamError> {
    if !is_well_formed(raw) {
        return Err(ParamError::InvalidEncoding { template, name });
    }
    let value = percent_decode_str(raw)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| ParamError::InvalidEncoding { template, name })?;
    check_not_dots(template, name, &value)?;
    Ok(value)
}

/// Whether every `%` in `raw` starts a `%XX` triplet (RFC 3986 §2.1).
fn is_well_formed(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut at = 0;
    while let Some(found) = bytes[at..].iter().position(|&b| b == b'%') {
        let start = at + found;
        match bytes.get(start + 1..start + 3) {
            Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => at = start + 3,
            _ => return false,
        }
    }
    true
}

/// `.` and `..` cannot travel in a URL path (see [`PARAM_VALUE`]).
fn check_not_dots(template: &'static str, name: &'static str, value: &str) -> Result<(), ParamError> {
    let value = match value {
        "." => ".",
        ".." => "..",
        _ => return Ok(()),
    };
    Err(ParamError::DotSegment { template, name, value })
}

/// Joins a base URL (`ws://host:port`, with or without a trailing `/`) and a concrete address.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TWO: Template = Template::__new(
        "user/events/{userId}/{eventType}",
        &[
            Segment::Static("user"),
            Segment::Static("events"),
            Segment::Param("userId"),
            Segment::Param("eventType"),
        ],
    );

    #[test]
    fn matches_and_extracts_in_order() {
        assert_eq!(TWO.match_path("/user/events/123/signup").unwrap(), ["123", "signup"]);
        assert_eq!(TWO.match_path("user/events/123/signup").unwrap(), ["123", "signup"]);
        assert_eq!(TWO.param_names().collect::<Vec<_>>(), ["userId", "eventType"]);
    }

    #[test]
    fn rejects_other_shapes() {
        for path in [
            "/user/events/123",
            "/user/events/123/signup/extra",
            "/user/events//signup",
            "/user/event/123/signup",
            "/user/events/123/signup/",
            "",
        ] {
            assert!(
                matches!(TWO.match_path(path), Err(ParamError::NoMatch { .. })),
                "{path}"
            );
        }
    }

    #[test]
    fn percent_coding_round_trips_reserved_characters() {
        let path = TWO.format(&["a/b c", "50%?#"]).unwrap();
        assert_eq!(path, "user/events/a%2Fb%20c/50%25%3F%23");
        assert_eq!(TWO.match_path(&path).unwrap(), ["a/b c", "50%?#"]);
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        assert_eq!(
            TWO.match_path("/user/events/%FF/x"),
            Err(ParamError::InvalidEncoding {
                template: TWO.address(),
                name: "userId"
            })
        );
    }

    #[test]
    fn a_percent_without_two_hex_digits_is_refused() {
        // Kept as they were, these would share a topic with their `%25` spellings.
        for path in [
            "/user/events/%zz/x",
            "/user/events/a%/x",
            "/user/events/a%2/x",
            "/user/events/x/%%41",
        ] {
            assert!(
                matches!(TWO.match_path(path), Err(ParamError::InvalidEncoding { .. })),
                "{path}: {:?}",
                TWO.match_path(path)
            );
        }
        assert_eq!(TWO.match_path("/user/events/%25zz/%41").unwrap(), ["%zz", "A"]);
    }

    #[test]
    fn a_path_of_another_shape_is_no_match_even_with_a_bad_escape() {
        // Found by tests/fuzz.rs: these were `InvalidEncoding`, decoded before the shape was
        // known, so a path of no channel's shape was reported as a bad parameter of this one.
        for path in [
            "/user/events/%FF",
            "/user/events/%FF/x/",
            "/user/events/%FF/x/extra",
            "/user/events/%FF/",
        ] {
            assert!(
                matches!(TWO.match_path(path), Err(ParamError::NoMatch { .. })),
                "{path}: {:?}",
                TWO.match_path(path)
            );
        }
    }

    #[test]
    fn format_rejects_empty_and_missing_values() {
        assert!(matches!(
            TWO.format(&["", "x"]),
            Err(ParamError::Empty { name: "userId", .. })
        ));
        assert!(matches!(
            TWO.format(&["x"]),
            Err(ParamError::Missing { name: "eventType", .. })
        ));
    }

    #[test]
    fn dot_segments_are_refused_both_ways() {
        for value in [".", ".."] {
            assert!(
                matches!(
                    TWO.format(&[value, "x"]),
                    Err(ParamError::DotSegment { name: "userId", .. })
                ),
                "{value}"
            );
        }
        for path in [
            "/user/events/./x",
            "/user/events/x/..",
            "/user/events/%2E/x",
            "/user/events/%2e%2E/x",
        ] {
            assert!(
                matches!(TWO.match_path(path), Err(ParamError::DotSegment { .. })),
                "{path}: {:?}",
                TWO.match_path(path)
            );
        }
        // Dots inside a value are ordinary characters.
        assert_eq!(TWO.match_path("/user/events/.../a.b").unwrap(), ["...", "a.b"]);
        assert_eq!(TWO.format(&["...", ".a"]).unwrap(), "user/events/.../.a");
    }

    #[test]
    fn join_url_handles_trailing_slash() {
        assert_eq!(join_url("ws://h:1/", "a/b"), "ws://h:1/a/b");
        assert_eq!(join_url("ws://h:1", "a/b"), "ws://h:1/a/b");
    }

    /// RFC 3986 §2.1 decoding: `%XX` is a byte, any other `%` makes the input invalid, and
    /// the bytes must be UTF-8.
    fn strict_decode(raw: &str) -> Option<String> {
        let mut bytes = Vec::new();
        let mut rest = raw.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            if first == b'%' {
                let hex = tail.get(..2).filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))?;
                bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                rest = &tail[2..];
            } else {
                bytes.push(first);
                rest = tail;
            }
        }
        String::from_utf8(bytes).ok()
    }

    fn leak_template(segments: Vec<(bool, String)>) -> Template {
        let segments: Vec<Segment> = segments
            .into_iter()
            .map(|(is_param, s)| {
                let s: &'static str = Box::leak(s.into_boxed_str());
                if is_param {
                    Segment::Param(s)
                } else {
                    Segment::Static(s)
                }
            })
            .collect();
        let address = segments
            .iter()
            .map(|s| match s {
                Segment::Static(s) => s.to_string(),
                Segment::Param(p) => format!("{{{p}}}"),
            })
            .collect::<Vec<_>>()
            .join("/");
        Template::__new(
            Box::leak(address.into_boxed_str()),
            Box::leak(segments.into_boxed_slice()),
        )
    }

    proptest! {
        /// format → match gives back exactly the values, whatever characters they hold.
        #[test]
        fn format_then_match_round_trips(
            shape in prop::collection::vec((any::<bool>(), "[a-z][a-zA-Z0-9_]{0,6}"), 1..6),
            raw_values in prop::collection::vec(".{1,12}", 6),
        ) {
            let template = leak_template(shape);
            let n = template.param_names().count();
            let values = &raw_values[..n];
            prop_assume!(values.iter().all(|v| v != "." && v != ".."));
            let path = template.format(values).unwrap();
            prop_assert_eq!(template.match_path(&path).unwrap(), values.to_vec());
            // The router sees the same path with a leading slash.
            let slashed = format!("/{path}");
            prop_assert_eq!(template.match_path(&slashed).unwrap(), values.to_vec());
        }

        /// No two accepted paths share a topic unless they decode to the same values: what
        /// is accepted is exactly RFC 3986 percent-encoding, decoded as a strict decoder
        /// (written here, independently) decodes it, and its topic (the values encoded again)
        /// decodes back to the same values.
        #[test]
        fn accepted_paths_decode_strictly_and_their_topic_is_theirs(
            segment in "([a-z]|%|[0-9A-Fa-f]|z|é|%25|%2[fF]|%[0-9A-F]{2}){0,8}",
        ) {
            let path = format!("/user/events/{segment}/x");
            let strict = strict_decode(&segment);
            match TWO.match_path(&path) {
                Ok(values) => {
                    prop_assert_eq!(Some(values[0].clone()), strict.clone());
                    let topic = TWO.format(&values).unwrap();
                    prop_assert_eq!(TWO.match_path(&topic).unwrap(), values);
                }
                Err(ParamError::InvalidEncoding { .. }) => prop_assert!(
                    strict.is_none(),
                    "{} refused, though it decodes to {:?}", segment, strict
                ),
                Err(other) => prop_assert!(
                    segment.is_empty() || matches!(strict.as_deref(), Some("." | "..")),
                    "{}: {:?}", segment, other
                ),
            }
        }

        /// Matching arbitrary input never panics.
        #[test]
        fn matching_arbitrary_paths_never_panics(path in ".{0,40}") {
            let _ = TWO.match_path(&path);
        }
    }
}
