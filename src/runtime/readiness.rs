//! Readiness of the watches. Each watch holds a [`Handle`] until its first list is done, and
//! the controller is ready once every handle issued is done. The wiring holds one handle of its
//! own until every watch has been started and given its handle, so the count cannot reach zero
//! while a watch that starts late (after an API discovery call, say) has not listed yet
//! (kubert's `Initialized` pattern).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct Readiness {
    pending: AtomicUsize,
    ready: tokio::sync::watch::Sender<bool>,
}

/// One thing that must finish before the controller is ready.
pub(crate) struct Handle {
    readiness: Arc<Readiness>,
    done: bool,
}

impl Readiness {
    pub(crate) fn new() -> Arc<Readiness> {
        Arc::new(Readiness { pending: AtomicUsize::new(0), ready: tokio::sync::watch::channel(false).0 })
    }

    pub(crate) fn handle(self: &Arc<Self>) -> Handle {
        self.pending.fetch_add(1, Ordering::SeqCst);
        Handle { readiness: self.clone(), done: false }
    }

    pub(crate) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ready.subscribe()
    }
}

impl Handle {
    /// Marks this one done (again: no effect).
    pub(crate) fn done(&mut self) {
        if !self.done {
            self.done = true;
            if self.readiness.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.readiness.ready.send_replace(true);
            }
        }
    }
}

/// Whether this replica is ready: its watches have listed, none is failing, it is not stopping.
pub(crate) struct Health {
    pub(crate) readiness: Arc<Readiness>,
    /// Watches currently failing (by description).
    failing: std::sync::Mutex<std::collections::BTreeSet<String>>,
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Health {
    pub(crate) fn new() -> Health {
        Health { readiness: Readiness::new(), failing: Default::default(), shutting_down: Default::default() }
    }

    pub(crate) fn watch_failed(&self, what: &str) {
        self.failing.lock().expect("health lock").insert(what.to_string());
    }

    pub(crate) fn watch_ok(&self, what: &str) {
        let mut f = self.failing.lock().expect("health lock");
        if !f.is_empty() {
            f.remove(what);
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Why this replica is not ready, or `None`.
    pub(crate) fn not_ready(&self) -> Option<String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Some("shutting down".into());
        }
        if !self.readiness.is_ready() {
            return Some("initial list of the watches not complete".into());
        }
        let failing = self.failing.lock().expect("health lock");
        (!failing.is_empty())
            .then(|| format!("watches failing: {}", failing.iter().map(String::as_str).collect::<Vec<_>>().join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_handle_issued_is_done_and_the_wiring_too() {
        let r = Readiness::new();
        assert!(!r.is_ready(), "nothing issued yet is not ready");
        let mut wiring = r.handle();
        let mut configmaps = r.handle();
        configmaps.done();
        assert!(!r.is_ready(), "the wiring has not finished starting watches");
        // A watch started late (after an await in the wiring) still counts.
        let mut rollouts = r.handle();
        wiring.done();
        assert!(!r.is_ready(), "the late watch has not listed");
        rollouts.done();
        assert!(r.is_ready());
        rollouts.done();
        assert!(r.is_ready(), "done twice changes nothing");
    }
}
