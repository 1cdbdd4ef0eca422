//! The connection-agnostic edges: any `Sink`/`Stream` of tungstenite messages.

use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// Anything typed messages can be written to: a tokio-tungstenite `WebSocketStream`, its
/// `SplitSink` half, or an in-memory sink in tests.
pub trait MessageSink: Sink<WsMessage, Error = WsError> + Unpin {}

impl<T: Sink<WsMessage, Error = WsError> + Unpin> MessageSink for T {}

/// Anything typed messages can be read from: a tokio-tungstenite `WebSocketStream`, its
/// `SplitStream` half, or an in-memory stream in tests.
pub trait MessageStream: Stream<Item = Result<WsMessage, WsError>> + Unpin {}

impl<T: Stream<Item = Result<WsMessage, WsError>> + Unpin> MessageStream for T {}
