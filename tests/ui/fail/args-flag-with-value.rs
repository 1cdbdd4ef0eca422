// A flag (`validate`) given a value, as if it were a boolean setting.
use serde::{Deserialize, Serialize};
use ws_channels::{Validate, ValidationError, channel};

#[channel("user/<userId>", validate = true)]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

impl Validate for UserEvents {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

fn main() {}
