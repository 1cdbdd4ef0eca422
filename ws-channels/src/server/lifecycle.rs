//! Connection tasks and graceful shutdown, shared by every way of serving (the standalone
//! accept loop, the axum integration, the acceptor for sockets accepted elsewhere).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::hub::Hub;

/// The tasks of one server's connections, the signal that shuts them down, and how long a
/// shutdown waits for them.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    tasks: Mutex<JoinSet<()>>,
    /// Set once a shutdown begins: handshakes are refused from then on, and the accept loop
    /// stops.
    shutdown: watch::Sender<bool>,
    /// The server's hub: every accepted connection is a member of it from its handshake on,
    /// so a shutdown reaches each one through its outbox (no connection holds a watcher).
    hub: Hub,
    /// Set once the shutdown is over (every connection ended, or the timeout dropped them):
    /// what every caller of `shutdown` waits for.
    drained: watch::Sender<bool>,
    /// Kept here, not copied into each handle, so a handle taken before the setting sees it.
    timeout: Mutex<Duration>,
}

impl Lifecycle {
    pub(crate) fn new(hub: Hub) -> Self {
        Self {
            tasks: Mutex::default(),
            shutdown: watch::Sender::new(false),
            hub,
            drained: watch::Sender::new(false),
            timeout: Mutex::new(Duration::from_secs(10)),
        }
    }

    /// Runs a tracked task: a socket's handshake, or an upgraded connection.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Reap finished tasks so the set holds only live connections.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// What the accept loop watches to learn of a shutdown.
    pub(crate) fn watch(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn set_timeout(&self, timeout: Duration) {
        *self.timeout.lock().unwrap_or_else(PoisonError::into_inner) = timeout;
    }

    /// Tells every connection to close with 1001, waits up to the shutdown timeout for them to
    /// finish, then drops what is left. The first call starts the drain in a task of its own,
    /// so a caller that stops waiting aborts nothing; every call returns when it is over.
    pub(crate) async fn shutdown(self: &Arc<Self>) {
        let mut drained = self.drained.subscribe();
        if !self.shutdown.send_replace(true) {
            // After the flag: a handshake registered too late to be reached here sees the flag
            // once registered, and is refused.
            self.hub.close_all(CloseCode::Away, "server shutting down");
            let lifecycle = self.clone();
            tokio::spawn(async move {
                lifecycle.drain().await;
                // Every connection is gone: the other nodes can stop counting this node's.
                lifecycle.hub.server_stopped().await;
                lifecycle.drained.send_replace(true);
            });
        }
        let _ = drained.wait_for(|drained| *drained).await;
    }

    /// Waits for every connection task, including any spawned meanwhile (an upgrade decided
    /// just before the shutdown, a connection whose handshake task has just started it), until
    /// the shutdown timeout.
    async fn drain(&self) {
        let timeout = *self.timeout.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut tasks = self.take_tasks();
            if tasks.is_empty() {
                return;
            }
            let joined = tokio::time::timeout_at(deadline, async { while tasks.join_next().await.is_some() {} });
            if joined.await.is_err() {
                // Dropping the sets aborts what is left: these tasks, and those spawned while
                // they ran (a handshake that ended meanwhile started its connection's task).
                let late = self.take_tasks();
                tracing::warn!(
                    remaining = tasks.len() + late.len(),
                    "shutdown timeout: dropping connections"
                );
                return;
            }
        }
    }

    fn take_tasks(&self) -> JoinSet<()> {
        std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Shuts a running server down gracefully from outside: get it with
/// [`Server::handle`](crate::Server::handle) before serving (or
/// [`Acceptor::handle`](crate::Acceptor::handle)). Needed with the axum integration, whose
/// upgraded connections outlive axum's own graceful shutdown, and with the acceptor, whose
/// accept loop is yours.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(crate) lifecycle: Arc<Lifecycle>,
}

impl ServerHandle {
    /// Stops the standalone server's accept loop, refuses new connections (503), closes every
    /// open one with 1001 after the messages already queued for it, and waits up to the
    /// server's shutdown timeout for them to end.
    pub async fn shutdown(&self) {
        self.lifecycle.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Sets its flag when dropped: the task holding it was aborted.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }

    #[tokio::test]
    async fn a_shutdown_timeout_drops_tasks_started_during_the_drain() {
        let lifecycle = Arc::new(Lifecycle::new(Hub::default()));
        lifecycle.set_timeout(Duration::from_millis(300));
        let dropped = Arc::new(AtomicBool::new(false));
        // A handshake task that starts its connection's task while the drain waits for it,
        // then never ends; the connection never ends either.
        let (spawner, flag) = (lifecycle.clone(), dropped.clone());
        lifecycle.spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            spawner.spawn(async move {
                let _guard = Dropped(flag);
                std::future::pending::<()>().await;
            });
            std::future::pending::<()>().await;
        });
        lifecycle.shutdown().await;
        // An aborted task is dropped when the runtime next gets to it.
        let aborted = tokio::time::timeout(Duration::from_secs(5), async {
            while !dropped.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        assert!(
            aborted.await.is_ok(),
            "the connection started during the drain was left running"
        );
    }
}
