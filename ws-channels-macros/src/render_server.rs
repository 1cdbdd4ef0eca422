//! The server's wrapper: inherent `register`, a one-line call to the runtime.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Model;

pub(crate) fn render(model: &Model) -> TokenStream {
    let Model { ident, krate, .. } = model;
    let private = quote!(#krate::__private);
    let template = model.template.value();
    let register_doc = format!(
        "Server: handles `{template}` on `server`; `configure` sets the handler's callbacks (`on_connect`, `on_message`, …)."
    );
    quote! {
        impl #ident {
            #[doc = #register_doc]
            pub fn register<S, D>(
                server: #private::Server<S>,
                configure: impl ::core::ops::FnOnce(#private::Handler<Self, S>) -> #private::Handler<Self, S, D>,
            ) -> #private::Server<S>
            where
                S: ::core::marker::Send + ::core::marker::Sync + 'static,
                D: ::core::marker::Send + ::core::marker::Sync + 'static,
            {
                #private::register(server, configure)
            }
        }
    }
}
