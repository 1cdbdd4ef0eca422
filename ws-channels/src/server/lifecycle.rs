//! Connection tasks and graceful shutdown, shared by every way of serving (the standalone
//! accept loop, the axum integration).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// The tasks of one server's connections, the signal that shuts them down, and how long a
/// shutdown waits for them.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    tasks: Mutex<JoinSet<()>>,
    shutdown: watch::Sender<bool>,
    /// Set once the shutdown is over (every connection ended, or the timeout dropped them):
    /// what every caller of `shutdown` waits for.
    drained: watch::Sender<bool>,
    /// Kept here, not copied into each handle, so a handle taken before the setting sees it.
    timeout: Mutex<Duration>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            tasks: Mutex::default(),
            shutdown: watch::Sender::new(false),
            drained: watch::Sender::new(false),
            timeout: Mutex::new(Duration::from_secs(10)),
        }
    }
}

impl Lifecycle {
    /// Runs a connection (handshake included) as a tracked task.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Reap finished tasks so the set holds only live connections.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// What connection tasks watch to learn of a shutdown.
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
            let lifecycle = self.clone();
            tokio::spawn(async move {
                lifecycle.drain().await;
                lifecycle.drained.send_replace(true);
            });
        }
        let _ = drained.wait_for(|drained| *drained).await;
    }

    /// Waits for every connection task, including any spawned meanwhile (an upgrade decided
    /// just before the shutdown), until the shutdown timeout.
    async fn drain(&self) {
        let timeout = *self.timeout.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
            if tasks.is_empty() {
                return;
            }
            let joined = tokio::time::timeout_at(deadline, async { while tasks.join_next().await.is_some() {} });
            if joined.await.is_err() {
                // Dropping the set aborts what is left.
                tracing::warn!(remaining = tasks.len(), "shutdown timeout: dropping connections");
                return;
            }
        }
    }
}

/// Shuts a running server down gracefully from outside: get it with
/// [`Server::handle`](crate::Server::handle) before serving. Needed with the axum integration,
/// whose upgraded connections outlive axum's own graceful shutdown.
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
