// Hygiene: generated code still compiles in a module that shadows `Result`, `Ok`, `Option`, `String`, `Vec` and declares `mod serde` and `mod ws_channels`.
#![deny(warnings, missing_docs, unused_qualifications)]
//! Hygiene.

/// A module that shadows the prelude names generated code could use unqualified.
pub mod shadowed {
    #![allow(dead_code)]

    /// Not `core::result::Result`.
    pub struct Result;
    /// Not `core::result::Result::Ok`.
    pub struct Ok;
    /// Not `core::result::Result::Err`.
    pub struct Err;
    /// Not `core::option::Option`.
    pub struct Option;
    /// Not `core::option::Option::Some`.
    pub struct Some;
    /// Not `core::option::Option::None`.
    pub struct None;
    /// Not `std::string::String`.
    pub struct String;
    /// Not `std::vec::Vec`.
    pub struct Vec;
    /// Not `core::fmt`.
    pub mod fmt {}
    /// Not `std::str`.
    pub mod str {}
    /// Not the `serde` crate.
    pub mod serde {}
    /// Not the `ws_channels` crate.
    pub mod ws_channels {}
    /// Not `__private`.
    pub mod __private {}
    /// Not `__wsc`.
    pub mod __wsc {}
    /// Not `core::fmt::Display`.
    pub trait Display {}
    /// Not `core::str::FromStr`.
    pub trait FromStr {}
    /// Not `core::convert::Into`.
    pub trait Into {}
    /// Not `core::marker::Send`.
    pub trait Send {}
    /// Not `core::marker::Sync`.
    pub trait Sync {}
    /// Not `core::marker::Sized`.
    pub trait Sized {}
    /// Not `core::ops::FnOnce`.
    pub trait FnOnce {}

    /// A symmetric channel.
    #[::ws_channels::channel("user/events/<userId>/<seq: u64>", validate, on_invalid = reply)]
    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub struct UserEvents {
        /// The text.
        pub text: ::std::string::String,
    }

    impl ::ws_channels::Validate for UserEvents {
        fn validate(&self) -> ::core::result::Result<(), ::ws_channels::ValidationError> {
            ::core::result::Result::Ok(())
        }
    }

    impl ::ws_channels::ErrorReply for UserEvents {
        fn error_reply(error: &::ws_channels::Error) -> Self {
            UserEvents {
                text: ::std::string::ToString::to_string(error),
            }
        }
    }

    /// An asymmetric channel.
    #[::ws_channels::channel("chat/{room}", server = UserEvents, name = "chat")]
    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub enum Chat {
        /// Say something.
        Say,
    }

    /// A server-only channel.
    #[::ws_channels::channel("notify", server_only)]
    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub enum Notify {
        /// Ping.
        Ping,
    }
}

use ::ws_channels::Channel as _;

fn main() {
    let params = shadowed::UserEventsParams::new("u1", 2u64);
    assert_eq!(params.to_string(), "user/events/u1/2");
    let server = shadowed::UserEvents::register(::ws_channels::Server::new(), |h| h);
    let server = shadowed::Chat::register(server, |h| h);
    drop(shadowed::Notify::register(server, |h| h));
}
