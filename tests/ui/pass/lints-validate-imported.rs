// `validate` and `on_invalid = reply` with `Validate` and `ErrorReply` imported, under `#![deny(warnings, unused_qualifications)]`.
#![deny(warnings, unused_qualifications)]

use serde::{Deserialize, Serialize};
use ws_channels::{Error, ErrorReply, Validate, ValidationError, channel};

#[channel("user/<userId>", validate, on_invalid = reply)]
#[derive(Debug, Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

impl Validate for UserEvents {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl ErrorReply for UserEvents {
    fn error_reply(error: &Error) -> Self {
        UserEvents {
            text: error.to_string(),
        }
    }
}

fn main() {
    let _ = UserEventsParams::new("u1");
}
