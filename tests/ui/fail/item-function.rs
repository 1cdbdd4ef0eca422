// `#[channel]` on a function instead of a struct or an enum.
use ws_channels::channel;

#[channel("user/<userId>")]
fn user_events() {}

fn main() {
    user_events();
}
