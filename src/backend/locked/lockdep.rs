//! A lock-dependency recorder for the `Locked` backend: the kernel's lockdep in miniature.
//!
//! Every lock the classic scheme takes belongs to a [`LockClass`], one per kind of lock (a
//! plain fence's lock, an array's, a chain link's, a container's member slot). Acquiring a
//! lock while holding others records one *edge* per held lock, "class A held while taking
//! class B", with a count and the operation that first created it. From those the recorder
//! reports what the kernel's lockdep would:
//!
//! - **same-class nesting**: taking a lock of class A while holding another lock of class
//!   A ("possible recursive locking"): an array enabling a nested array, a callback on one
//!   plain fence signalling another;
//! - **cycles** between classes (A → B and B → A: a potential ABBA deadlock);
//! - **self-deadlock**: taking a lock this thread already holds (a callback calling
//!   `remove_callback` on its own fence). The lock is not re-entrant, so this would hang
//!   forever; the recorder counts it and panics with a message instead. The panic unwinds
//!   through the guards of the locks already held, which release them.
//!
//! It also counts the kernel's nesting `WARN_ON`s (see [`LockdepReport`]): containers built
//! over containers the kernel forbids.
//!
//! # Views
//! [`report`] is the process-wide view. [`thread_report`] is what the calling thread itself
//! caused since it started or last called [`reset`]; tests running in parallel assert on
//! that one. Work deferred to the irq_work thread is counted only in the global view.
//!
//! # Cost
//! Taking a lock pushes one entry on a thread-local stack and releasing it pops it; only
//! when other locks are held does the acquire scan them and add to the edge counters. There
//! are four classes, so the graph is a fixed 4×4 matrix of counters: no map, no global lock
//! on the hot path. [`set_enabled`] turns recording off (the kernel's lockdep is a debug
//! option too).
//!
//! # Synchronisation
//! This is a diagnostic, not part of any fence protocol: it uses `std` atomics and
//! thread-locals directly (not the loom shim), and under `cfg(loom)` it records nothing.
//! All counters are `Relaxed`: each is an independent statistic, read by [`report`] without
//! any ordering promise against the operations counted (a report taken while other threads
//! run is a snapshot, not a linearisation).

use std::fmt;

/// A kind of lock taken by the `Locked` backend (the kernel's lock class key).
///
/// ```
/// use rcu_fence::lockdep::LockClass;
/// assert_eq!(LockClass::Array.to_string(), LockClass::Array.name());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockClass {
    /// The lock of a plain fence (a timeline, driver or stub fence).
    Fence,
    /// The lock of an array's own fence.
    Array,
    /// The lock of a chain link's own fence.
    Chain,
    /// The lock of one member slot of a container (an array member, a chain's `prev` or
    /// `fence`). The kernel reads these under RCU; the classic scheme here guards them.
    Member,
}

const CLASSES: usize = 4;
const ALL: [LockClass; CLASSES] = [
    LockClass::Fence,
    LockClass::Array,
    LockClass::Chain,
    LockClass::Member,
];

impl LockClass {
    /// The class's name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            LockClass::Fence => "fence",
            LockClass::Array => "array",
            LockClass::Chain => "chain",
            LockClass::Member => "member",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for LockClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One recorded dependency: `from` was held while `to` was taken.
///
/// ```
/// use rcu_fence::{FenceArray, Locked, Timeline, context_alloc, lockdep};
/// let tl = Timeline::new_in("gpu", Locked);
/// let array = FenceArray::create(vec![tl.fence(1)], context_alloc(1), 1, false).unwrap();
/// array.enable_sw_signaling(); // takes the member's lock under the array's
/// let deps = lockdep::thread_report().dependencies;
/// assert!(deps.iter().any(|d| d.from == lockdep::LockClass::Array && d.count > 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The class already held.
    pub from: LockClass,
    /// The class taken inside it.
    pub to: LockClass,
    /// How many acquisitions recorded it.
    pub count: u64,
    /// The operation that first recorded it (for example `"add_callback"`).
    pub first_seen: &'static str,
}

/// A container built over a container the kernel forbids there (its `WARN_ON`).
///
/// ```
/// use rcu_fence::{FenceArray, Locked, Timeline, context_alloc, lockdep::{self, LockClass}};
/// let tl = Timeline::new_in("gpu", Locked);
/// let inner = FenceArray::create(vec![tl.fence(1)], context_alloc(1), 1, false).unwrap();
/// let _outer = FenceArray::create(vec![inner], context_alloc(1), 1, false).unwrap();
/// let warnings = lockdep::thread_report().nesting_warnings;
/// assert!(warnings.iter().any(|w| w.container == LockClass::Array && w.member == LockClass::Array));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NestingWarning {
    /// The container being built: [`LockClass::Array`] or [`LockClass::Chain`].
    pub container: LockClass,
    /// The offending member's kind: [`LockClass::Array`] or [`LockClass::Chain`].
    pub member: LockClass,
    /// How many members triggered it.
    pub count: u64,
}

/// What the recorder has seen: see [`report`] and [`thread_report`].
///
/// ```
/// use rcu_fence::{FenceArray, Locked, Timeline, context_alloc, lockdep::{self, LockClass}};
/// let tl = Timeline::new_in("gpu", Locked);
/// let array = FenceArray::create(vec![tl.fence(1), tl.fence(2)], context_alloc(1), 1, false).unwrap();
/// array.enable_sw_signaling(); // the array's lock held while each member's is taken
/// let mine = lockdep::thread_report();
/// assert!(mine.edge_count(LockClass::Array, LockClass::Fence) >= 2);
/// assert!(mine.cycles.is_empty());
/// println!("{mine}");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockdepReport {
    /// Every dependency recorded, ordered by class.
    pub dependencies: Vec<Dependency>,
    /// Per class, how many acquisitions took it while another lock of the same class was
    /// held (classes with none are left out).
    pub same_class: Vec<(LockClass, u64)>,
    /// Cycles of two or more distinct classes in the dependency graph, each listed from its
    /// smallest class (a potential ABBA deadlock). Same-class nesting is in `same_class`.
    pub cycles: Vec<Vec<LockClass>>,
    /// The kernel's nesting `WARN_ON`s, per (container, member) kind.
    pub nesting_warnings: Vec<NestingWarning>,
    /// Attempts to take a lock the thread already held (each one panicked).
    pub self_deadlocks: u64,
}

impl LockdepReport {
    /// The count of the dependency `from` → `to` (0 if never seen).
    pub fn edge_count(&self, from: LockClass, to: LockClass) -> u64 {
        self.dependencies
            .iter()
            .find(|d| d.from == from && d.to == to)
            .map_or(0, |d| d.count)
    }

    /// How many same-class nestings of `class` were recorded.
    pub fn same_class_count(&self, class: LockClass) -> u64 {
        self.same_class
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(0, |(_, n)| *n)
    }

    /// The total number of nesting warnings.
    pub fn nesting_warning_count(&self) -> u64 {
        self.nesting_warnings.iter().map(|w| w.count).sum()
    }

    /// True if a cycle through exactly these classes was found (in any rotation).
    pub fn has_cycle(&self, classes: &[LockClass]) -> bool {
        let mut wanted = classes.to_vec();
        if let Some(start) = (0..wanted.len()).min_by_key(|&i| wanted[i]) {
            wanted.rotate_left(start);
        }
        self.cycles.contains(&wanted)
    }

    /// True if nothing at all was recorded.
    pub fn is_empty(&self) -> bool {
        self.dependencies.is_empty() && self.nesting_warnings.is_empty() && self.self_deadlocks == 0
    }

    fn from_counts(counts: &Snapshot) -> LockdepReport {
        let mut report = LockdepReport::default();
        for from in ALL {
            for to in ALL {
                let count = counts.edges[from.index()][to.index()];
                if count > 0 {
                    let first_seen = counts.first[from.index()][to.index()].unwrap_or("?");
                    report.dependencies.push(Dependency {
                        from,
                        to,
                        count,
                        first_seen,
                    });
                }
                let warnings = counts.warnings[from.index()][to.index()];
                if warnings > 0 {
                    report.nesting_warnings.push(NestingWarning {
                        container: from,
                        member: to,
                        count: warnings,
                    });
                }
            }
            let same = counts.same_class[from.index()];
            if same > 0 {
                report.same_class.push((from, same));
            }
        }
        report.cycles = cycles(&counts.edges);
        report.self_deadlocks = counts.self_deadlocks;
        report
    }
}

impl fmt::Display for LockdepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let same: u64 = self.same_class.iter().map(|(_, n)| n).sum();
        writeln!(
            f,
            "lockdep: {} dependencies, {} same-class nestings, {} cycles, {} nesting warnings, {} self-deadlocks",
            self.dependencies.len(),
            same,
            self.cycles.len(),
            self.nesting_warning_count(),
            self.self_deadlocks,
        )?;
        for d in &self.dependencies {
            writeln!(
                f,
                "  {:>6} -> {:<6} {:>10}  first: {}",
                d.from, d.to, d.count, d.first_seen
            )?;
        }
        for (class, n) in &self.same_class {
            writeln!(
                f,
                "  possible recursive locking: {class} inside {class}, {n} times"
            )?;
        }
        for cycle in &self.cycles {
            let path: Vec<&str> = cycle
                .iter()
                .chain(cycle.first())
                .map(|c| c.name())
                .collect();
            writeln!(f, "  possible circular locking: {}", path.join(" -> "))?;
        }
        for w in &self.nesting_warnings {
            writeln!(
                f,
                "  nesting warning: {} containing {}, {} times",
                w.container, w.member, w.count
            )?;
        }
        Ok(())
    }
}

/// Every simple cycle of two or more classes, each starting at its smallest class.
fn cycles(edges: &[[u64; CLASSES]; CLASSES]) -> Vec<Vec<LockClass>> {
    fn extend(
        edges: &[[u64; CLASSES]; CLASSES],
        start: usize,
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<LockClass>>,
    ) {
        let last = *path.last().expect("a path starts with its start");
        for next in start..CLASSES {
            if next == last || edges[last][next] == 0 {
                continue;
            }
            if next == start {
                if path.len() >= 2 {
                    found.push(path.iter().map(|&i| ALL[i]).collect());
                }
            } else if !path.contains(&next) {
                path.push(next);
                extend(edges, start, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    for start in 0..CLASSES {
        extend(edges, start, &mut vec![start], &mut found);
    }
    found
}

/// Plain counters, as a report reads them.
#[derive(Default)]
struct Snapshot {
    edges: [[u64; CLASSES]; CLASSES],
    first: [[Option<&'static str>; CLASSES]; CLASSES],
    same_class: [u64; CLASSES],
    warnings: [[u64; CLASSES]; CLASSES],
    self_deadlocks: u64,
}

/// The process-wide view.
///
/// ```
/// use rcu_fence::lockdep;
/// lockdep::reset();
/// println!("{}", lockdep::report());
/// ```
pub fn report() -> LockdepReport {
    imp::global_snapshot()
        .map(|s| LockdepReport::from_counts(&s))
        .unwrap_or_default()
}

/// What the calling thread caused since it started or last called [`reset`].
pub fn thread_report() -> LockdepReport {
    imp::thread_snapshot()
        .map(|s| LockdepReport::from_counts(&s))
        .unwrap_or_default()
}

/// Clears the process-wide view and the calling thread's view. Other threads' views are
/// left alone, so that tests running in parallel do not disturb each other.
pub fn reset() {
    imp::reset();
}

/// How many `Locked` backend locks the calling thread holds right now (0 outside any fence
/// operation; a lock left held after a caught panic would show here).
pub fn held_locks() -> usize {
    imp::held_locks()
}

/// Turns the recording of lock acquisitions on or off for the whole process; it is on by
/// default. The kernel's lockdep is a debug option, off in production builds: benchmarks
/// may turn it off to time the bare classic scheme. While it is off, a self-deadlock
/// hangs as it would in the kernel. Nesting warnings are counted either way (they cost
/// nothing on the lock paths). Locks taken before a change are released correctly.
///
/// ```no_run
/// rcu_fence::lockdep::set_enabled(false); // time the bare scheme
/// ```
pub fn set_enabled(on: bool) {
    imp::set_enabled(on);
}

/// True if lock acquisitions are being recorded (see [`set_enabled`]).
pub fn is_enabled() -> bool {
    imp::is_enabled()
}

/// Counts one of the kernel's nesting `WARN_ON`s: `container` built over `member`.
pub(crate) fn nesting_warning(container: LockClass, member: LockClass) {
    imp::nesting_warning(container, member);
}

/// A token for one recorded acquisition; dropping it records the release.
#[derive(Debug)]
#[must_use = "dropping the token records the release"]
pub(crate) struct Held {
    #[cfg_attr(loom, allow(dead_code))]
    addr: usize,
    #[cfg_attr(loom, allow(dead_code))]
    pushed: bool,
}

/// Records that this thread is about to take the lock at `addr` of class `class`, for
/// `op`. Panics (after counting it) if the thread already holds that very lock.
pub(crate) fn acquire(class: LockClass, addr: usize, op: &'static str) -> Held {
    imp::acquire(class, addr, op)
}

impl Drop for Held {
    fn drop(&mut self) {
        imp::release(self);
    }
}

/// A lock of the `Locked` backend that reports to the recorder: the kernel's spinlock with
/// its lockdep map.
pub(crate) struct Lock<T> {
    class: LockClass,
    mutex: crate::sync::Mutex<T>,
}

/// The guard of a [`Lock`]: unlocks, then records the release, then (for the outermost
/// lock of the thread) runs the irq_work queued meanwhile.
pub(crate) struct LockGuard<'a, T> {
    // Field order matters: the mutex is unlocked before the release is recorded, and the
    // queued irq_work runs with no lock held.
    guard: crate::sync::MutexGuard<'a, T>,
    _held: Held,
    _section: super::irq_work::Section,
}

impl<T> Lock<T> {
    pub(crate) fn new(class: LockClass, value: T) -> Self {
        Lock {
            class,
            mutex: crate::sync::Mutex::new(value),
        }
    }

    pub(crate) fn class(&self) -> LockClass {
        self.class
    }

    /// Changes the class of a lock nobody holds yet.
    pub(crate) fn set_class(&mut self, class: LockClass) {
        self.class = class;
    }

    /// Takes the lock for `op`, recording the acquisition first (so that a self-deadlock
    /// panics instead of blocking).
    pub(crate) fn lock(&self, op: &'static str) -> LockGuard<'_, T> {
        // Counted first, so that a recorder panic (a self-deadlock) leaves no count raised.
        let section = super::irq_work::Section::enter();
        let held = acquire(self.class, self as *const Self as usize, op);
        LockGuard {
            guard: self.mutex.lock(),
            _held: held,
            _section: section,
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.mutex.get_mut()
    }
}

impl<T> std::ops::Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(loom)]
mod imp {
    //! Under loom nothing is recorded: the models are about the protocols, not lock order.
    use super::*;

    pub(super) fn global_snapshot() -> Option<Snapshot> {
        None
    }
    pub(super) fn thread_snapshot() -> Option<Snapshot> {
        None
    }
    pub(super) fn reset() {}
    pub(super) fn set_enabled(_: bool) {}
    pub(super) fn is_enabled() -> bool {
        false
    }
    pub(super) fn held_locks() -> usize {
        0
    }
    pub(super) fn nesting_warning(_: LockClass, _: LockClass) {}
    pub(super) fn acquire(_: LockClass, addr: usize, _: &'static str) -> Held {
        Held {
            addr,
            pushed: false,
        }
    }
    pub(super) fn release(_: &Held) {}
}

#[cfg(not(loom))]
mod imp {
    use std::cell::RefCell;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    /// The process-wide counters.
    struct Global {
        edges: [[AtomicU64; CLASSES]; CLASSES],
        /// Written only when an edge's count goes from 0 to 1 (rare): a plain lock is fine.
        first: Mutex<[[Option<&'static str>; CLASSES]; CLASSES]>,
        same_class: [AtomicU64; CLASSES],
        warnings: [[AtomicU64; CLASSES]; CLASSES],
        self_deadlocks: AtomicU64,
    }

    static GLOBAL: Global = Global {
        edges: [const { [const { AtomicU64::new(0) }; CLASSES] }; CLASSES],
        first: Mutex::new([[None; CLASSES]; CLASSES]),
        same_class: [const { AtomicU64::new(0) }; CLASSES],
        warnings: [const { [const { AtomicU64::new(0) }; CLASSES] }; CLASSES],
        self_deadlocks: AtomicU64::new(0),
    };

    static ENABLED: AtomicBool = AtomicBool::new(true);

    pub(super) fn set_enabled(on: bool) {
        // Relaxed: a switch with nothing to publish; a thread may see the change late.
        ENABLED.store(on, Ordering::Relaxed);
    }

    pub(super) fn is_enabled() -> bool {
        // Relaxed: as in `set_enabled`.
        ENABLED.load(Ordering::Relaxed)
    }

    /// One lock this thread holds.
    struct HeldLock {
        class: LockClass,
        addr: usize,
        op: &'static str,
    }

    /// This thread's stack of held locks and its own view of the counters.
    struct ThreadState {
        held: Vec<HeldLock>,
        counts: Snapshot,
    }

    std::thread_local! {
        static THREAD: RefCell<ThreadState> = RefCell::new(ThreadState {
            held: Vec::new(),
            counts: Snapshot::default(),
        });
    }

    pub(super) fn global_snapshot() -> Option<Snapshot> {
        let mut s = Snapshot::default();
        for i in 0..CLASSES {
            for j in 0..CLASSES {
                // Relaxed: independent statistics (see the module's Synchronisation).
                s.edges[i][j] = GLOBAL.edges[i][j].load(Ordering::Relaxed);
                // Relaxed: as above.
                s.warnings[i][j] = GLOBAL.warnings[i][j].load(Ordering::Relaxed);
            }
            // Relaxed: as above.
            s.same_class[i] = GLOBAL.same_class[i].load(Ordering::Relaxed);
        }
        s.first = *GLOBAL.first.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed: as above.
        s.self_deadlocks = GLOBAL.self_deadlocks.load(Ordering::Relaxed);
        Some(s)
    }

    pub(super) fn thread_snapshot() -> Option<Snapshot> {
        THREAD
            .try_with(|t| {
                let t = t.borrow();
                let c = &t.counts;
                Snapshot {
                    edges: c.edges,
                    first: c.first,
                    same_class: c.same_class,
                    warnings: c.warnings,
                    self_deadlocks: c.self_deadlocks,
                }
            })
            .ok()
    }

    pub(super) fn reset() {
        for i in 0..CLASSES {
            for j in 0..CLASSES {
                // Relaxed: independent statistics.
                GLOBAL.edges[i][j].store(0, Ordering::Relaxed);
                // Relaxed: as above.
                GLOBAL.warnings[i][j].store(0, Ordering::Relaxed);
            }
            // Relaxed: as above.
            GLOBAL.same_class[i].store(0, Ordering::Relaxed);
        }
        *GLOBAL.first.lock().unwrap_or_else(|e| e.into_inner()) = [[None; CLASSES]; CLASSES];
        // Relaxed: as above.
        GLOBAL.self_deadlocks.store(0, Ordering::Relaxed);
        let _ = THREAD.try_with(|t| t.borrow_mut().counts = Snapshot::default());
    }

    pub(super) fn held_locks() -> usize {
        THREAD.try_with(|t| t.borrow().held.len()).unwrap_or(0)
    }

    pub(super) fn nesting_warning(container: LockClass, member: LockClass) {
        let (i, j) = (container.index(), member.index());
        // Relaxed: an independent statistic.
        GLOBAL.warnings[i][j].fetch_add(1, Ordering::Relaxed);
        let _ = THREAD.try_with(|t| t.borrow_mut().counts.warnings[i][j] += 1);
    }

    pub(super) fn acquire(class: LockClass, addr: usize, op: &'static str) -> Held {
        if !is_enabled() {
            return Held {
                addr,
                pushed: false,
            };
        }
        // At thread exit (a fence dropped by another thread-local's destructor) the stack is
        // gone: record nothing.
        let outcome = THREAD.try_with(|t| {
            let mut t = t.borrow_mut();
            if let Some(holder) = t.held.iter().find(|h| h.addr == addr) {
                let message = format!(
                    "lockdep: self-deadlock: `{op}` takes a {class} lock ({addr:#x}) that this thread \
                     already holds (taken by `{}`); the lock is not re-entrant, so this would hang. \
                     A callback runs under its fence's lock and must not call anything that takes it.",
                    holder.op
                );
                t.counts.self_deadlocks += 1;
                // Relaxed: an independent statistic.
                GLOBAL.self_deadlocks.fetch_add(1, Ordering::Relaxed);
                return Err(message);
            }
            if !t.held.is_empty() {
                record_edges(&mut t, class, op);
            }
            t.held.push(HeldLock { class, addr, op });
            Ok(())
        });
        match outcome {
            Ok(Ok(())) => Held { addr, pushed: true },
            // Outside the borrow of the thread state: the unwind releases held locks, whose
            // guards record their release.
            Ok(Err(message)) => panic!("{message}"),
            Err(_) => Held {
                addr,
                pushed: false,
            },
        }
    }

    /// Adds one edge per held lock to the new one, and counts a same-class nesting once.
    fn record_edges(t: &mut ThreadState, to: LockClass, op: &'static str) {
        let ThreadState { held, counts } = t;
        let mut same_class = false;
        for h in held.iter() {
            let (i, j) = (h.class.index(), to.index());
            same_class |= h.class == to;
            counts.edges[i][j] += 1;
            counts.first[i][j].get_or_insert(op);
            // Relaxed: an independent statistic; the first-seen name is set under its lock
            // by whoever takes the count from 0.
            if GLOBAL.edges[i][j].fetch_add(1, Ordering::Relaxed) == 0 {
                GLOBAL.first.lock().unwrap_or_else(|e| e.into_inner())[i][j].get_or_insert(op);
            }
        }
        if same_class {
            counts.same_class[to.index()] += 1;
            // Relaxed: an independent statistic.
            GLOBAL.same_class[to.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn release(held: &Held) {
        if !held.pushed {
            return;
        }
        let _ = THREAD.try_with(|t| {
            let mut t = t.borrow_mut();
            // Usually the top of the stack, but guards may be dropped out of order.
            if let Some(i) = t.held.iter().rposition(|h| h.addr == held.addr) {
                t.held.remove(i);
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_once_each() {
        let mut edges = [[0u64; CLASSES]; CLASSES];
        edges[LockClass::Fence.index()][LockClass::Array.index()] = 1;
        edges[LockClass::Array.index()][LockClass::Fence.index()] = 3;
        edges[LockClass::Array.index()][LockClass::Array.index()] = 2;
        edges[LockClass::Chain.index()][LockClass::Member.index()] = 1;
        assert_eq!(
            cycles(&edges),
            vec![vec![LockClass::Fence, LockClass::Array]]
        );
        edges[LockClass::Member.index()][LockClass::Fence.index()] = 1;
        edges[LockClass::Fence.index()][LockClass::Chain.index()] = 1;
        let found = cycles(&edges);
        assert_eq!(found.len(), 2);
        assert!(found.contains(&vec![LockClass::Fence, LockClass::Chain, LockClass::Member]));
    }

    #[test]
    fn self_deadlock_panics_and_unwinds_clean() {
        let lock = Lock::new(LockClass::Fence, ());
        let outer = lock.lock("outer");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lock.lock("inner")));
        let message = caught
            .err()
            .and_then(|p| p.downcast::<String>().ok())
            .expect("a message");
        assert!(
            message.contains("self-deadlock")
                && message.contains("`inner`")
                && message.contains("`outer`")
        );
        assert_eq!(held_locks(), 1);
        drop(outer);
        assert_eq!(held_locks(), 0);
        assert_eq!(thread_report().self_deadlocks, 1);
    }
}
