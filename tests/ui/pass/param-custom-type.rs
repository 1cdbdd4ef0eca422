// A parameter type with exactly the documented bounds (`FromStr + Display + Debug + Clone + Send + Sync`), and an integer literal passed to `new`.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[derive(Debug, Clone)]
struct OrderId(u64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "o-{}", self.0)
    }
}

impl FromStr for OrderId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("o-")
            .ok_or_else(|| format!("`{s}` does not start with `o-`"))?;
        digits.parse().map(OrderId).map_err(|e| format!("{e}"))
    }
}

#[channel("orders/<id: OrderId>/<line: u32>")]
#[derive(Serialize, Deserialize)]
struct OrderEvents {
    text: String,
}

fn main() {
    let params = OrderEventsParams::new(OrderId(7), 3u32);
    assert_eq!(params.to_string(), "orders/o-7/3");
    let parsed: OrderEventsParams = "orders/o-7/3".parse().unwrap();
    assert_eq!(parsed.id.0, 7);
    assert!("orders/7/3".parse::<OrderEventsParams>().is_err());
}
