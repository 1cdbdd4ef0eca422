// A typed parameter (`<id: OrderId>`) whose type has `Display` but no `FromStr`.
use std::fmt;

use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[derive(Debug, Clone)]
struct OrderId(u64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[channel("orders/<id: OrderId>")]
#[derive(Serialize, Deserialize)]
struct OrderEvents {
    text: String,
}

fn main() {
    let _ = OrderEventsParams::new(OrderId(1));
}
