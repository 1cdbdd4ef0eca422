// `#[channel]` on a union, which serde cannot (de)serialize.
use ws_channels::channel;

#[channel("user/<userId>")]
union UserEvents {
    id: u64,
    bits: f64,
}

fn main() {}
