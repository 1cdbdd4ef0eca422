//! Contract export (feature `asyncapi`): the Rust channel types are the single source of
//! truth, and these documents are derived from them.

mod asyncapi;
mod typescript;

pub use asyncapi::AsyncApi;
