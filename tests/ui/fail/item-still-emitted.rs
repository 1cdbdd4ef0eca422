// A template error: the type is still emitted, so using it later adds no "cannot find type" error.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user//events")]
#[derive(Debug, Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

impl UserEvents {
    fn text(&self) -> &str {
        &self.text
    }
}

fn main() {
    let event = UserEvents { text: "hi".into() };
    let json = serde_json::to_string(&event).unwrap();
    println!("{} {json} {event:?}", event.text());
}
