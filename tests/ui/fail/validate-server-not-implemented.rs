// `validate` on an asymmetric channel whose server message type does not implement `Validate`.
use serde::{Deserialize, Serialize};
use ws_channels::{Validate, ValidationError, channel};

#[channel("chat/<room>", server = ChatEvent, validate)]
#[derive(Serialize, Deserialize)]
struct ChatCommand {
    text: String,
}

impl Validate for ChatCommand {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct ChatEvent {
    text: String,
}

fn main() {}
