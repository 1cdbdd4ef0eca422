// The same argument given twice.
use serde::{Deserialize, Serialize};
use ws_channels::{Validate, ValidationError, channel};

#[channel("user/<userId>", validate, validate)]
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
