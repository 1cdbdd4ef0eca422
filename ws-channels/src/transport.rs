//! The connection-agnostic edges: any `Sink`/`Stream` of tungstenite messages.

use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// Anything typed messages can be written to: a tokio-tungstenite `WebSocketStream`, its
/// `SplitSink` half, or an in-memory sink in tests.
pub trait MessageSink: Sink<WsMessage, Error = WsError> + Unpin {}

impl<T: Sink<WsMessage, Error = WsError> + Unpin> MessageSink for T {}

/// Anything typed messages can be read from: a tokio-tungstenite `WebSocketStream`, its
/// `SplitStream` half, or an in-memory stream in tests.
pub trait MessageStream: Stream<Item = Result<WsMessage, WsError>> + Unpin {}

impl<T: Stream<Item = Result<WsMessage, WsError>> + Unpin> MessageStream for T {}

/// A close frame with `code` and `reason`, the reason cut to the 123 bytes RFC 6455 allows (at
/// a character boundary).
pub(crate) fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    const MAX: usize = 123;
    let mut end = reason.len().min(MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = close_frame(CloseCode::Normal, &long).reason;
        assert!(cut.len() <= 123 && cut.len() >= 121);
        assert_eq!(close_frame(CloseCode::Normal, "short").reason.as_str(), "short");
    }
}
