//! Contract export (feature `asyncapi`): the Rust channel types are the single source of
//! truth, and these documents are derived from them.

mod asyncapi;
mod typescript;

pub use asyncapi::AsyncApi;

/// A name as a JSON pointer segment inside a URI fragment (`#/channels/...`): `~` → `~0`,
/// `/` → `~1` (RFC 6901 §4), then percent-encoding of what a fragment cannot hold (§6).
pub(crate) fn pointer(name: &str) -> String {
    const FRAGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let escaped = name.replace('~', "~0").replace('/', "~1");
    percent_encoding::utf8_percent_encode(&escaped, FRAGMENT).to_string()
}

/// The inverse of [`pointer`], for a segment read back from a `$ref`.
pub(crate) fn unpointer(segment: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    decoded.replace("~1", "/").replace("~0", "~")
}
