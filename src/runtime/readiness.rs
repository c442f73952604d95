//! Readiness of the watches. Each watch holds a [`Handle`] until its first list is done, and
//! the controller is ready once every handle issued is done. The wiring holds one handle of its
//! own until every watch has been started and given its handle, so the count cannot reach zero
//! while a watch that starts late (after an API discovery call, say) has not listed yet
//! (kubert's `Initialized` pattern).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Readiness as a whole, and per watch scope (one namespace of `--namespaces`, or all), so that
/// reloads in namespaces whose watches have listed proceed while another cannot list.
pub(crate) struct Readiness {
    pending: AtomicUsize,
    ready: tokio::sync::watch::Sender<bool>,
    /// Handles not done yet, per scope (`None`: the cluster-wide watches and the wiring).
    scopes: Mutex<HashMap<Option<String>, usize>>,
    /// The wiring has given every watch its handle: a scope at zero is then really ready.
    wired: AtomicBool,
}

/// One thing that must finish before the controller (and its scope) is ready.
pub(crate) struct Handle {
    readiness: Arc<Readiness>,
    scope: Option<String>,
    done: bool,
}

impl Readiness {
    pub(crate) fn new() -> Arc<Readiness> {
        Arc::new(Readiness {
            pending: AtomicUsize::new(0),
            ready: tokio::sync::watch::channel(false).0,
            scopes: Mutex::new(HashMap::new()),
            wired: AtomicBool::new(false),
        })
    }

    /// A handle of the cluster-wide scope (the wiring, cluster-wide watches).
    pub(crate) fn handle(self: &Arc<Self>) -> Handle {
        self.handle_in(None)
    }

    /// A handle of one watch scope.
    pub(crate) fn handle_in(self: &Arc<Self>, scope: Option<String>) -> Handle {
        self.pending.fetch_add(1, Ordering::SeqCst);
        *self.scopes.lock().expect("readiness lock").entry(scope.clone()).or_default() += 1;
        Handle { readiness: self.clone(), scope, done: false }
    }

    /// The wiring is done: every watch has its handle.
    pub(crate) fn wired(&self) {
        self.wired.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Whether the watches that cover `namespace` have all listed: its own scope's with
    /// `--namespaces`, otherwise the cluster-wide ones.
    pub(crate) fn scope_ready(&self, namespace: &str) -> bool {
        if !self.wired.load(Ordering::SeqCst) {
            return false;
        }
        let scopes = self.scopes.lock().expect("readiness lock");
        match scopes.get(&Some(namespace.to_string())) {
            Some(n) => *n == 0,
            None => scopes.get(&None).is_none_or(|n| *n == 0),
        }
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ready.subscribe()
    }
}

impl Handle {
    /// Marks this one done (again: no effect). Returns whether its scope has now listed
    /// completely (after the wiring), so that its workloads can be looked at.
    pub(crate) fn done(&mut self) -> bool {
        if self.done {
            return false;
        }
        self.done = true;
        if self.readiness.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.readiness.ready.send_replace(true);
        }
        let mut scopes = self.readiness.scopes.lock().expect("readiness lock");
        let n = scopes.entry(self.scope.clone()).or_default();
        *n = n.saturating_sub(1);
        *n == 0 && self.readiness.wired.load(Ordering::SeqCst)
    }

    pub(crate) fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
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
        let failing = self.failing.lock().expect("health lock");
        if !self.readiness.is_ready() {
            let mut why = "initial list of the watches not complete".to_string();
            if !failing.is_empty() {
                let names: Vec<&str> = failing.iter().map(String::as_str).collect();
                why = format!("{why}; failing: {}", names.join(", "));
            }
            return Some(why);
        }
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
        assert!(!configmaps.done(), "not wired yet");
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

    #[test]
    fn a_namespace_is_ready_when_its_own_watches_have_listed() {
        let r = Readiness::new();
        let mut wiring = r.handle();
        let mut a = [r.handle_in(Some("a".into())), r.handle_in(Some("a".into()))];
        let mut b = r.handle_in(Some("b".into()));
        assert!(!a[0].done());
        assert!(!r.scope_ready("a"), "a watch of a has not listed");
        r.wired();
        wiring.done();
        assert!(a[1].done(), "a's last watch listed: a is ready now");
        assert!(r.scope_ready("a"));
        assert!(!r.scope_ready("b"), "b cannot list");
        assert!(!r.is_ready(), "as a whole, not ready");
        assert!(b.done());
        assert!(r.scope_ready("b") && r.is_ready());
    }
}
