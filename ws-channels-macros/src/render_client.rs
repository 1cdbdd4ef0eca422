//! The client's wrappers: inherent `publish` (not on `server_only` channels) and `subscribe`,
//! each a one-line call to the runtime's generic function.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::{Model, Shape};

pub(crate) fn render(model: &Model) -> TokenStream {
    let Model { ident, krate, .. } = model;
    let private = quote!(#krate::__private);
    let template = model.template.value();
    let publish = match model.shape() {
        Shape::ServerOnly => None,
        Shape::Symmetric | Shape::Asymmetric(_) => {
            let doc = format!(
                "Client: sends `message` on `{template}` over an already-connected WebSocket (any `MessageSink`, such as a tokio-tungstenite stream)."
            );
            // Not an `async fn`: that would give each channel a state machine of its own around
            // the runtime's; returning the runtime's future costs the compiler nothing more.
            Some(quote! {
                #[doc = #doc]
                pub fn publish<'__a, W: #private::MessageSink + ?::core::marker::Sized>(
                    sink: &'__a mut W,
                    message: &'__a <Self as #private::Channel>::ClientMessage,
                ) -> impl ::core::future::Future<Output = ::core::result::Result<(), #private::Error>> + '__a {
                    #private::publish::<Self, W>(sink, message)
                }
            })
        }
    };
    let subscribe_doc = format!(
        "Client: the typed messages the server sends on `{template}`; a frame that does not decode or validate is one `Err` item and the stream goes on."
    );
    quote! {
        impl #ident {
            #publish

            #[doc = #subscribe_doc]
            pub fn subscribe<R: #private::MessageStream>(stream: R) -> #private::Subscription<Self, R> {
                #private::subscribe::<Self, R>(stream)
            }
        }
    }
}
