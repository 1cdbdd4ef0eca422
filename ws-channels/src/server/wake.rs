//! The connection task's wake plumbing: which part of the task (the reader, the socket's
//! stream) woke since it was last polled, so that a wake for the writer alone (a publisher's
//! message) does not cost a pass through the reader.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use futures_util::{Stream, StreamExt};

/// Lets a part of the task (the reader, the stream) be polled only once it has
/// woken since it last returned `Pending`: that part is polled with the gate's own waker,
/// which records the wake before passing it on to the task.
///
/// Sound because wakers are only stored while a future is polled: everything the part waits
/// for holds the gate's waker, never the task's.
pub(super) struct Gate {
    flag: Arc<WakeFlag>,
    /// `flag` as a waker, made once.
    waker: Waker,
}

struct WakeFlag {
    woken: AtomicBool,
    /// The task the part belongs to.
    task: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    /// A gate that is open: the first poll goes through.
    pub(super) fn new() -> Self {
        let flag = Arc::new(WakeFlag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Whether the part woke since it was last let through (and lets it through now), with the
    /// task's waker registered first, so a wake after this look still reaches the task.
    pub(super) fn open(&self, cx: &Context<'_>) -> bool {
        self.flag.task.register(cx.waker());
        self.flag.woken.swap(false, Ordering::AcqRel)
    }

    /// Forgets the wakes so far: the part is about to be polled anyway. A swap, not a store:
    /// it must not be ordered after what that poll reads, or it could erase a wake that poll
    /// did not see. Only when there is a wake to forget, which the cheap look tells.
    fn clear(&self) {
        if self.flag.woken.load(Ordering::Relaxed) {
            self.flag.woken.swap(false, Ordering::AcqRel);
        }
    }

    /// Lets the part through at its next look, as a wake would.
    fn reopen(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// The context to poll the part with.
    pub(super) fn context(&self) -> Context<'_> {
        Context::from_waker(&self.waker)
    }
}

/// A stream polled again only once it has woken, or right after it yielded an item (the
/// reader draining frames already read): the reader is also woken for its handler,
/// its timers and its signals, and polling a WebSocket stream that has nothing to read is not
/// free (tungstenite prepares its read buffer, zeroing up to its size, before every read).
pub(super) struct WokenStream<S> {
    inner: S,
    gate: Gate,
    /// The inner stream returned `Pending`: it is polled again once it woke.
    waiting: bool,
}

impl<S> WokenStream<S> {
    pub(super) fn new(inner: S) -> Self {
        Self {
            inner,
            gate: Gate::new(),
            waiting: false,
        }
    }
}

impl<S: Stream + Unpin> Stream for WokenStream<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        // A stream that last yielded an item is polled again without a look at the gate (a
        // reader draining frames already read); the gate is opened, with the task's waker
        // registered, before any `Pending` is returned.
        if this.waiting && !this.gate.open(cx) {
            return Poll::Pending;
        }
        // A wake from before this poll is stale once the stream has looked.
        this.gate.clear();
        let poll = this.inner.poll_next_unpin(&mut this.gate.context());
        this.waiting = poll.is_pending();
        if poll.is_pending() && this.gate.open(cx) {
            // Woken while it was polled: come back for it, after the task's other work (a
            // stream that wakes itself as it returns `Pending` cannot spin this poll).
            this.gate.reopen();
            cx.waker().wake_by_ref();
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wake_count::WakeCount;

    #[test]
    fn a_gate_lets_a_part_through_once_per_wake_and_passes_wakes_on() {
        let (task, waker) = WakeCount::new();
        let cx = Context::from_waker(&waker);
        let gate = Gate::new();
        assert!(gate.open(&cx), "the first poll goes through");
        assert!(!gate.open(&cx), "not again before a wake");
        gate.context().waker().wake_by_ref();
        assert_eq!(task.get(), 1, "the task is woken");
        assert!(gate.open(&cx), "and the part is let through");
        assert!(!gate.open(&cx));
        // A wake before the task registered again still opens the gate.
        gate.context().waker().wake_by_ref();
        gate.context().waker().wake_by_ref();
        assert!(gate.open(&cx));
    }

    #[test]
    fn a_woken_stream_drains_without_the_gate_and_waits_behind_it() {
        let (task, waker) = WakeCount::new();
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let mut stream = WokenStream::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(task.get(), 1, "the item woke the task");
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(
            stream.poll_next_unpin(&mut cx),
            Poll::Ready(Some(2)),
            "drained without a wake"
        );
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        assert!(
            stream.poll_next_unpin(&mut cx).is_pending(),
            "not polled again before a wake"
        );
        tx.send(3).unwrap();
        assert_eq!(task.get(), 2);
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(3)));
        drop(tx);
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(None));
    }
}
