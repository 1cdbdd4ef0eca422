// The annotated type defines its own `register`, which the macro generates too.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

impl UserEvents {
    fn register(&self) {}
}

fn main() {
    UserEvents {
        text: String::new(),
    }
    .register();
}
