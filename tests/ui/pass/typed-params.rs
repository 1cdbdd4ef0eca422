// Typed parameters: `<userId>` (a `String`, field `user_id`) and `<seq: u64>` (field `seq`).
use serde::{Deserialize, Serialize};
use ws_channels::{Params, channel};

#[channel("user/events/<userId>/<seq: u64>")]
#[derive(Serialize, Deserialize)]
struct UserEvent {
    text: String,
}

fn main() {
    let params = UserEventParams::new("u 1", 7u64);
    let UserEventParams { user_id, seq } = params.clone();
    assert_eq!(user_id, "u 1");
    assert_eq!(seq, 7);

    assert_eq!(params.to_string(), "user/events/u%201/7");
    assert_eq!(
        params.url("ws://localhost:8080"),
        "ws://localhost:8080/user/events/u%201/7"
    );
    assert_eq!(params.to_path().unwrap(), "user/events/u%201/7");

    let parsed: UserEventParams = "user/events/u%201/7".parse().unwrap();
    assert_eq!(parsed, params);
    assert_eq!(
        UserEventParams::from_path("/user/events/u%201/7").unwrap(),
        params
    );
    assert!("user/events/u1/seven".parse::<UserEventParams>().is_err());
    assert!("user/other/u1/7".parse::<UserEventParams>().is_err());

    assert_eq!(
        <UserEventParams as Params>::TEMPLATE.address(),
        "user/events/{userId}/{seq}"
    );
    let names: Vec<_> = <UserEventParams as Params>::TEMPLATE
        .param_names()
        .collect();
    assert_eq!(names, ["userId", "seq"]);
}
