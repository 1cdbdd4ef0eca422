// A parameter named after a keyword (`<type>`, and `<gen>`, reserved by edition 2024): its field
// is the raw identifier `r#type`.
use serde::{Deserialize, Serialize};
use ws_channels::{Params, channel};

#[channel("events/<type>/<match>/<gen>")]
#[derive(Serialize, Deserialize)]
struct Events {
    text: String,
}

fn main() {
    let params = EventsParams::new("created", "m1", "g1");
    assert_eq!(params.r#type, "created");
    assert_eq!(params.r#match, "m1");
    assert_eq!(params.r#gen, "g1");
    assert_eq!(params.to_string(), "events/created/m1/g1");
    assert_eq!(
        <EventsParams as Params>::TEMPLATE.address(),
        "events/{type}/{match}/{gen}"
    );
    assert_eq!(
        "events/deleted/m2/g2".parse::<EventsParams>().unwrap().r#type,
        "deleted"
    );
}
