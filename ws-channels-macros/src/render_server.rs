//! The server's wrapper: inherent `register`, a one-line call to the runtime. Written as a
//! function of the one inherent impl `expand` opens; `private` is the path to the runtime's
//! `__private`.

use crate::ast::Model;
use crate::source::Source;

pub(crate) fn render(model: &Model, private: &str, out: &mut Source) {
    let template = model.template.value();
    let register_doc = format!(
        "Server: handles `{template}` on `server`; `configure` sets the handler's callbacks (`on_connect`, `on_message`, …)."
    );
    out.write(format_args!(
        "#[doc = {register_doc:?}]
        pub fn register<S, D>(
            server: {private}::Server<S>,
            configure: impl {private}::FnOnce({private}::Handler<Self, S>) -> {private}::Handler<Self, S, D>,
        ) -> {private}::Server<S>
        where
            S: {private}::Send + {private}::Sync + 'static,
            D: {private}::Send + {private}::Sync + 'static,
        {{
            {private}::register(server, configure)
        }}"
    ));
}
