//! The recorder behind the report: a per-thread stack of the fence locks held, and the
//! counters of edges, same-class nestings, nesting warnings and re-entries.
//!
//! The held stack is kept whether or not recording is enabled (and under loom): the fence
//! lock asks it whether the thread already holds a lock ([`enter`]) to re-enter it instead
//! of deadlocking, and the irq_work runs when it becomes empty ([`leave`]). Edges and nestings are counted only while recording is enabled, and
//! never under loom (the models are about the protocols, not lock order).
//!
//! This is a diagnostic, not part of a fence protocol: its counters are `std` atomics and
//! all `Relaxed` (each an independent statistic, read by the report without any ordering
//! promise against the operations counted); the held stack is thread-local. Nesting
//! warnings are also printed (or emitted as `tracing` events), as the kernel's `WARN_ON`
//! prints.

use std::cell::RefCell;

use super::{LockClass, Snapshot};

/// One lock this thread holds.
struct HeldLock {
    class: LockClass,
    addr: usize,
    op: &'static str,
}

crate::sync::thread_local! {
    /// This thread's stack of held locks.
    static HELD: RefCell<Vec<HeldLock>> = const { RefCell::new(Vec::new()) };
}

/// How many locks this thread holds.
pub(crate) fn held_count() -> usize {
    HELD.try_with(|h| h.borrow().len()).unwrap_or(0)
}

/// What [`enter`] found.
pub(crate) enum Entered {
    /// The thread holds this lock already: a re-entry, counted; do not take it again.
    Reentered,
    /// Recorded as held: take the lock now, and [`leave`] it after releasing.
    Taken,
}

/// Records that this thread takes the lock at `addr` for `op` (one access to the thread's
/// state, the common path of every fence lock): a re-entry if it holds it already, else one
/// edge per lock already held, when recording is on. `class` is asked only then. `nested`:
/// taken with the nested annotation (the kernel's `spin_lock_nested`, a lockdep subclass),
/// which the reverse-signal-order rule allows while a lock of a fence that signals later is
/// held; such edges are counted apart and are neither recursive locking nor cycles.
pub(crate) fn enter(
    addr: usize,
    class: impl Fn() -> LockClass,
    op: &'static str,
    nested: bool,
) -> Entered {
    // At thread exit (a fence dropped by another thread-local's destructor) the stack is
    // gone: record nothing.
    let entered = HELD.try_with(|h| {
        let mut held = h.borrow_mut();
        if let Some(first) = held.iter().find(|l| l.addr == addr) {
            counters::reentry(first.class, op, first.op);
            return Entered::Reentered;
        }
        let recording = counters::is_enabled();
        let class = if recording { class() } else { LockClass::Fence };
        if recording && !held.is_empty() {
            counters::edges(&held, class, op, nested);
        }
        held.push(HeldLock { class, addr, op });
        Entered::Taken
    });
    entered.unwrap_or(Entered::Taken)
}

/// Records the release of the lock at `addr` (after it was released); true if the thread
/// holds no lock any more.
pub(crate) fn leave(addr: usize) -> bool {
    HELD.try_with(|h| {
        let mut held = h.borrow_mut();
        // Usually the top of the stack, but guards may be dropped out of order.
        if held.last().is_some_and(|l| l.addr == addr) {
            held.pop();
        } else if let Some(i) = held.iter().rposition(|l| l.addr == addr) {
            held.remove(i);
        }
        held.is_empty()
    })
    .unwrap_or(true)
}

/// Counts one of the kernel's nesting `WARN_ON`s, and tells the user where the kernel's
/// `WARN_ON` would print: a `tracing` WARN event each time (feature `tracing`), else one
/// line on stderr per (container, member) kind pair per process.
pub(crate) fn nesting_warning(container: LockClass, member: LockClass) {
    counters::warning(container, member);
    counters::emit_warning(container, member);
}

pub(crate) use counters::{global_snapshot, is_enabled, reset, set_enabled, thread_snapshot};

#[cfg(not(loom))]
mod counters {
    use std::cell::RefCell;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::super::CLASSES;
    use super::{HeldLock, LockClass, Snapshot};

    /// The process-wide counters.
    struct Global {
        edges: [[AtomicU64; CLASSES]; CLASSES],
        /// Written only when an edge's count goes from 0 to 1 (rare): a plain lock is fine.
        first: Mutex<[[Option<&'static str>; CLASSES]; CLASSES]>,
        same_class: [AtomicU64; CLASSES],
        warnings: [[AtomicU64; CLASSES]; CLASSES],
        nested: [[AtomicU64; CLASSES]; CLASSES],
        /// Whether a nesting warning of each kind pair has been printed (stderr: once).
        #[cfg_attr(feature = "tracing", allow(dead_code))]
        printed: [[AtomicBool; CLASSES]; CLASSES],
        reentries: AtomicU64,
    }

    static GLOBAL: Global = Global {
        edges: [const { [const { AtomicU64::new(0) }; CLASSES] }; CLASSES],
        first: Mutex::new([[None; CLASSES]; CLASSES]),
        same_class: [const { AtomicU64::new(0) }; CLASSES],
        warnings: [const { [const { AtomicU64::new(0) }; CLASSES] }; CLASSES],
        nested: [const { [const { AtomicU64::new(0) }; CLASSES] }; CLASSES],
        printed: [const { [const { AtomicBool::new(false) }; CLASSES] }; CLASSES],
        reentries: AtomicU64::new(0),
    };

    static ENABLED: AtomicBool = AtomicBool::new(true);

    std::thread_local! {
        /// This thread's own view of the counters.
        static MINE: RefCell<Snapshot> = RefCell::new(Snapshot::default());
    }

    pub(crate) fn set_enabled(on: bool) {
        // Relaxed: a switch with nothing to publish; a thread may see the change late.
        ENABLED.store(on, Ordering::Relaxed);
    }

    pub(crate) fn is_enabled() -> bool {
        // Relaxed: as in `set_enabled`.
        ENABLED.load(Ordering::Relaxed)
    }

    /// Adds one edge per held lock to the new one, and counts a same-class nesting once (a
    /// nested acquisition: one nested edge per held lock instead).
    pub(super) fn edges(held: &[HeldLock], to: LockClass, op: &'static str, nested: bool) {
        if !is_enabled() {
            return;
        }
        if nested {
            let _ = MINE.try_with(|mine| {
                let mut mine = mine.borrow_mut();
                for h in held {
                    mine.nested[h.class.index()][to.index()] += 1;
                }
            });
            for h in held {
                // Relaxed: an independent statistic.
                GLOBAL.nested[h.class.index()][to.index()].fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let _ = MINE.try_with(|mine| {
            let mut mine = mine.borrow_mut();
            let mut same_class = false;
            for h in held {
                let (i, j) = (h.class.index(), to.index());
                same_class |= h.class == to;
                mine.edges[i][j] += 1;
                mine.first[i][j].get_or_insert(op);
                // Relaxed: an independent statistic; the first-seen name is set under its
                // lock by whoever takes the count from 0.
                if GLOBAL.edges[i][j].fetch_add(1, Ordering::Relaxed) == 0 {
                    GLOBAL.first.lock().unwrap_or_else(|e| e.into_inner())[i][j].get_or_insert(op);
                }
            }
            if same_class {
                mine.same_class[to.index()] += 1;
                // Relaxed: an independent statistic.
                GLOBAL.same_class[to.index()].fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    pub(super) fn reentry(_class: LockClass, _op: &'static str, _first: &'static str) {
        let _ = MINE.try_with(|mine| mine.borrow_mut().reentries += 1);
        // Relaxed: an independent statistic.
        GLOBAL.reentries.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn warning(container: LockClass, member: LockClass) {
        let (i, j) = (container.index(), member.index());
        // Relaxed: an independent statistic.
        GLOBAL.warnings[i][j].fetch_add(1, Ordering::Relaxed);
        let _ = MINE.try_with(|mine| mine.borrow_mut().warnings[i][j] += 1);
    }

    /// What the kernel's `WARN_ON` would print, where the user sees it.
    pub(super) fn emit_warning(container: LockClass, member: LockClass) {
        #[cfg(feature = "tracing")]
        tracing::event!(
            name: "lockdep_nesting_warning",
            target: "rcu_fence",
            tracing::Level::WARN,
            container = container.name(),
            member = member.name(),
            "Locked backend: a container built over a container the kernel forbids there \
             (its WARN_ON); the object works, but the kernel's scheme may recurse or \
             deadlock with such nesting. The Rcu backend allows it."
        );
        #[cfg(not(feature = "tracing"))]
        {
            let (i, j) = (container.index(), member.index());
            // Relaxed: a print-once flag, with nothing to publish.
            if !GLOBAL.printed[i][j].swap(true, Ordering::Relaxed) {
                eprintln!(
                    "rcu-fence: Locked backend: {} built over {} (the kernel's WARN_ON \
                     forbids this nesting; the object works, but the kernel's scheme may \
                     recurse or deadlock with it; the Rcu backend allows it). Printed once \
                     per kind pair; rcu_fence::lockdep::report() counts every occurrence.",
                    article(container),
                    article(member),
                );
            }
        }
    }

    #[cfg(not(feature = "tracing"))]
    fn article(class: LockClass) -> &'static str {
        match class {
            LockClass::Fence => "a fence",
            LockClass::Array => "an array",
            LockClass::Chain => "a chain",
        }
    }

    pub(crate) fn global_snapshot() -> Option<Snapshot> {
        let mut s = Snapshot::default();
        for i in 0..CLASSES {
            for j in 0..CLASSES {
                // Relaxed: independent statistics (see the module docs).
                s.edges[i][j] = GLOBAL.edges[i][j].load(Ordering::Relaxed);
                // Relaxed: as above.
                s.warnings[i][j] = GLOBAL.warnings[i][j].load(Ordering::Relaxed);
                // Relaxed: as above.
                s.nested[i][j] = GLOBAL.nested[i][j].load(Ordering::Relaxed);
            }
            // Relaxed: as above.
            s.same_class[i] = GLOBAL.same_class[i].load(Ordering::Relaxed);
        }
        s.first = *GLOBAL.first.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed: as above.
        s.reentries = GLOBAL.reentries.load(Ordering::Relaxed);
        Some(s)
    }

    pub(crate) fn thread_snapshot() -> Option<Snapshot> {
        MINE.try_with(|mine| mine.borrow().clone()).ok()
    }

    pub(crate) fn reset() {
        for i in 0..CLASSES {
            for j in 0..CLASSES {
                // Relaxed: independent statistics.
                GLOBAL.edges[i][j].store(0, Ordering::Relaxed);
                // Relaxed: as above.
                GLOBAL.warnings[i][j].store(0, Ordering::Relaxed);
                // Relaxed: as above.
                GLOBAL.nested[i][j].store(0, Ordering::Relaxed);
            }
            // Relaxed: as above.
            GLOBAL.same_class[i].store(0, Ordering::Relaxed);
        }
        *GLOBAL.first.lock().unwrap_or_else(|e| e.into_inner()) = [[None; CLASSES]; CLASSES];
        // Relaxed: as above.
        GLOBAL.reentries.store(0, Ordering::Relaxed);
        let _ = MINE.try_with(|mine| *mine.borrow_mut() = Snapshot::default());
    }
}

#[cfg(loom)]
mod counters {
    //! Under loom nothing is counted: the models are about the protocols, not lock order.
    use super::{HeldLock, LockClass, Snapshot};

    pub(crate) fn set_enabled(_: bool) {}
    pub(crate) fn is_enabled() -> bool {
        false
    }
    pub(super) fn edges(_: &[HeldLock], _: LockClass, _: &'static str, _: bool) {}
    pub(super) fn reentry(_: LockClass, _: &'static str, _: &'static str) {}
    pub(super) fn warning(_: LockClass, _: LockClass) {}
    pub(super) fn emit_warning(_: LockClass, _: LockClass) {}
    pub(crate) fn global_snapshot() -> Option<Snapshot> {
        None
    }
    pub(crate) fn thread_snapshot() -> Option<Snapshot> {
        None
    }
    pub(crate) fn reset() {}
}
