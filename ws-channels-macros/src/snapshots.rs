//! Expansion snapshots: what the macro generates for each channel shape, pretty-printed and
//! checked in under `tests/expand/` so a reviewer can read it. Re-bless after an intended
//! change with `BLESS=1 cargo test -p ws-channels-macros snapshots`, then read the diff.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

fn assert_snapshot(name: &str, args: TokenStream, item: TokenStream) {
    let expanded = crate::expand::channel(args, item);
    let file: syn::File = syn::parse2(expanded).unwrap_or_else(|e| panic!("{name}: the expansion does not parse: {e}"));
    let pretty = prettyplease::unparse(&file);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/expand/{name}.expanded.rs"));
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &pretty).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {}: run with BLESS=1", path.display()));
    assert!(
        expected == pretty,
        "the expansion of `{name}` changed; re-bless with BLESS=1 and review the diff\n--- expected\n{expected}\n--- actual\n{pretty}"
    );
}

#[test]
fn symmetric() {
    assert_snapshot(
        "symmetric",
        quote!("user/events/<userId>"),
        quote! {
            /// A user signed up.
            #[derive(Serialize, Deserialize)]
            #[serde(rename_all = "camelCase")]
            pub struct UserSignedUp {
                /// The user identifier.
                user_id: String,
                email: String,
            }
        },
    );
}

#[test]
fn asymmetric() {
    assert_snapshot(
        "asymmetric",
        quote!("chat/<room>", server = ChatEvent),
        quote! {
            #[derive(Serialize, Deserialize)]
            #[serde(tag = "type", rename_all = "snake_case")]
            pub enum ChatCommand { Say { text: String }, Typing }
        },
    );
}

#[test]
fn server_only() {
    assert_snapshot(
        "server_only",
        quote!("notifications/<userId: u64>", server_only),
        quote! {
            #[derive(Serialize, Deserialize)]
            pub struct Notification { title: String }
        },
    );
}

#[test]
fn validated_with_error_replies() {
    assert_snapshot(
        "validated_with_error_replies",
        quote!(
            "orders/{orderId}/<line: u32>",
            server = OrderEvent,
            validate,
            on_invalid = reply,
            on_lag = drop_oldest,
            name = "orders"
        ),
        quote! {
            #[derive(Serialize, Deserialize)]
            pub(crate) struct OrderCommand { quantity: u32 }
        },
    );
}

#[test]
fn errors_keep_the_item() {
    let expanded = crate::expand::channel(
        quote!("a//<b", bogus),
        quote!(
            struct Kept;
        ),
    )
    .to_string();
    assert!(expanded.starts_with("struct Kept ;"), "{expanded}");
    assert_eq!(expanded.matches("compile_error").count(), 3, "{expanded}");
}

/// A broken declaration still generates what code elsewhere uses (the fallback), from the
/// best guess: here `<userId` is read as the parameter it was meant to be.
#[test]
fn fallback_after_errors() {
    assert_snapshot(
        "fallback_after_errors",
        quote!("user//events/<userId", server = UserReply, bogus = 1),
        quote! {
            #[derive(Serialize, Deserialize)]
            pub struct UserEvents { text: String }
        },
    );
}

/// Generic types get no fallback: impls without the generics would be errors of their own. A
/// `where` clause alone counts as generic too.
#[test]
fn no_fallback_for_generic_types() {
    for (item, params) in [
        (
            quote!(
                struct Generic<T>(T);
            ),
            "GenericParams",
        ),
        (
            quote!(
                struct Bounded
                where
                    u8: Copy,
                {
                    t: u8,
                }
            ),
            "BoundedParams",
        ),
    ] {
        let expanded = crate::expand::channel(quote!("user/<userId>"), item).to_string();
        assert_eq!(expanded.matches("compile_error").count(), 1, "{expanded}");
        assert!(!expanded.contains(params), "{expanded}");
    }
}
