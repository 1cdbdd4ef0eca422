//! [`ConnId`]: a connection's identity, below both the hub (which addresses connections by
//! it) and the server (which assigns it).

use std::fmt;

/// A connection's id, unique within one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The id as a number (to send to a client, to log).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for ConnId {
    /// An id as a client reported it back; sending to an id no connection has is a no-op.
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
