//! Compile tests of the `#[channel]` macro, run with [trybuild].
//!
//! - `ui/pass/*.rs` must compile (and run: each has a `main` that touches the generated items
//!   without opening any socket).
//! - `ui/fail/*.rs` must fail to compile, with exactly the diagnostics in the `.stderr` file next
//!   to each one. Every file shows one mistake (named `<area>-<mistake>.rs`, described in its
//!   first line).
//!
//! Run: `cargo test -p ws-channels-tests --test ui`.
//!
//! When a diagnostic changes on purpose (a reworded message, a new rustc), re-bless with
//! `TRYBUILD=overwrite cargo test -p ws-channels-tests --test ui`, then read the diff of
//! `tests/ui/**/*.stderr` (`git diff tests/ui`): each file must still show the macro's own
//! message, or the runtime's `#[diagnostic::on_unimplemented]` text, pointing at the token the
//! user wrote, and no cascade of unrelated errors.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
