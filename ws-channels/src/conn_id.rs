//! [`ConnId`]: a connection's identity, below both the hub (which addresses connections by
//! it) and the server (which assigns it).

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;

/// A connection's id, unique across every node of a cluster, so a hub on any node can address
/// it ([`Hub::send`](crate::Hub::send)).
///
/// The layout is fixed: the 64-bit id of the node (the [`Hub`](crate::Hub)) that accepted the
/// connection, chosen at random when the hub is created ([`Hub::node_id`](crate::Hub::node_id)),
/// and a 64-bit counter of that node, starting at 1. Its string form is the node id in 16 lowercase hex digits, a `-`, and the
/// counter in decimal: `3f2a9c1d5e6b7a80-17`. That is its `Display`, its `FromStr` and its
/// serde form (a string: JavaScript numbers lose precision above 2^53), so it travels to a
/// client and back, and reads the same in logs.
///
/// ```
/// use ws_channels::ConnId;
///
/// let id = ConnId::new(0x3f2a_9c1d_5e6b_7a80, 17);
/// assert_eq!(id.to_string(), "3f2a9c1d5e6b7a80-17");
/// assert_eq!("3f2a9c1d5e6b7a80-17".parse::<ConnId>(), Ok(id));
/// assert_eq!(serde_json::to_string(&id).unwrap(), r#""3f2a9c1d5e6b7a80-17""#);
/// assert!("17".parse::<ConnId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    node: u64,
    seq: u64,
}

impl ConnId {
    /// The id of connection `seq` of node `node` (for an id kept elsewhere as two numbers;
    /// sending to an id no connection has is reported, never an error).
    pub const fn new(node: u64, seq: u64) -> Self {
        Self { node, seq }
    }

    /// The id of the node that accepted the connection.
    pub const fn node(self) -> u64 {
        self.node
    }

    /// The connection's number on its node.
    pub const fn seq(self) -> u64 {
        self.seq
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.node, self.seq)
    }
}

/// Why a string is not a [`ConnId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a connection id (expected 16 hex digits, `-`, a decimal counter)")]
pub struct ParseConnIdError(String);

impl FromStr for ConnId {
    type Err = ParseConnIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s.split_once('-').and_then(|(node, seq)| {
            let digits = |part: &str, hex: bool| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| if hex { b.is_ascii_hexdigit() } else { b.is_ascii_digit() })
            };
            // Exactly the printed form: no sign, no `0x`, no spaces (`from_str_radix` allows a `+`).
            if node.len() != 16 || !digits(node, true) || !digits(seq, false) {
                return None;
            }
            Some(Self::new(u64::from_str_radix(node, 16).ok()?, seq.parse().ok()?))
        });
        parsed.ok_or_else(|| ParseConnIdError(s.chars().take(64).collect()))
    }
}

impl serde::Serialize for ConnId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ConnId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A node id for a hub created without one: random, so nodes sharing an engine differ. The
/// standard library's hasher keys are random per process (and per call), which is all the
/// randomness this needs; the clock and process id make two processes differ even so.
pub(crate) fn random_node_id() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_form_round_trips_at_the_extremes() {
        for id in [
            ConnId::new(0, 1),
            ConnId::new(u64::MAX, u64::MAX),
            ConnId::new(1 << 60, 42),
        ] {
            assert_eq!(id.to_string().parse::<ConnId>(), Ok(id));
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<ConnId>(&json).unwrap(), id);
        }
        assert_eq!(ConnId::new(1, 2).to_string(), "0000000000000001-2");
    }

    #[test]
    fn anything_but_the_printed_form_is_refused() {
        for bad in [
            "",
            "17",
            "0000000000000001",
            "0000000000000001-",
            "000000000000001-2",
            "00000000000000001-2",
            "+000000000000001-2",
            "0000000000000001-+2",
            "0000000000000001--2",
            "0000000000000001-2 ",
            "000000000000000g-2",
            "0000000000000001-18446744073709551616",
        ] {
            assert!(bad.parse::<ConnId>().is_err(), "{bad:?} parsed");
        }
        assert!(serde_json::from_str::<ConnId>("17").is_err(), "a number is not an id");
    }

    #[test]
    fn random_node_ids_differ() {
        assert_ne!(random_node_id(), random_node_id());
    }
}
