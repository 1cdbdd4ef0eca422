// Two different parameter names that would become the same snake_case field.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId>/<user_id>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
