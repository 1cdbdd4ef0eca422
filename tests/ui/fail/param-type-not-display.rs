// A typed parameter (`<slug: Slug>`) whose type has `FromStr` but no `Display`.
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[derive(Debug, Clone, PartialEq)]
struct Slug(String);

impl FromStr for Slug {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Slug(s.to_owned()))
    }
}

#[channel("posts/<slug: Slug>")]
#[derive(Serialize, Deserialize)]
struct PostEvents {
    text: String,
}

fn main() {
    let _ = PostEventsParams::new(Slug("hello".into()));
}
