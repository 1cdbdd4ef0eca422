// A template without parameters: the params struct is empty.
use serde::{Deserialize, Serialize};
use ws_channels::{Params, channel};

#[channel("health")]
#[derive(Serialize, Deserialize)]
struct Health {
    ok: bool,
}

fn main() {
    let params = HealthParams::new();
    assert_eq!(params, HealthParams {});
    assert_eq!(params.url("ws://h:1/"), "ws://h:1/health");
    assert_eq!(<HealthParams as Params>::TEMPLATE.address(), "health");
    assert!("health".parse::<HealthParams>().is_ok());
}
