//! A waker that counts its wakes, for the tests of what wakes whom.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

/// How many times its waker was woken.
pub(crate) struct WakeCount(AtomicUsize);

impl WakeCount {
    /// A counter, and a waker that counts on it.
    pub(crate) fn new() -> (Arc<Self>, Waker) {
        let count = Arc::new(Self(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// The wakes so far.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
