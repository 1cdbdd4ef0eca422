//! Running user code (handlers, hooks, a channel's `Validate`) so that a panic stays inside
//! its connection: caught, turned into a message, never unwinding into the runtime.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

/// Runs a future, catching a panic in any of its polls; `Err` carries the panic's message.
pub(crate) async fn catch<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|panic| panic_message(panic.as_ref()))
}

/// Runs synchronous user code (a channel's `Validate` or `ErrorReply` impl), catching a
/// panic; `Err` carries the panic's message. Inlined: it wraps every message's decode, and
/// whether the compiler inlines it on its own changes with unrelated edits to the crate.
#[inline]
pub(crate) fn catch_sync<R>(run: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(AssertUnwindSafe(run)).map_err(|panic| panic_message(panic.as_ref()))
}

/// Runs an observer (`on_error`, `on_lag`): it cannot change the outcome, so a panic is only
/// logged.
pub(crate) fn observe(channel: &'static str, callback: &'static str, run: &mut dyn FnMut()) {
    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(run)) {
        tracing::warn!(
            channel,
            callback,
            panic = %crate::log::Escaped(panic_message(panic.as_ref())),
            "callback panicked"
        );
    }
}

/// The message a panic carried.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        assert_eq!(catch(async { 1 }).await, Ok(1));
        let caught = catch(async { panic!("boom {}", 7) }).await;
        assert_eq!(caught, Err::<(), _>("boom 7".to_owned()));
        observe("T", "on_error", &mut || panic!("ignored"));
    }
}
