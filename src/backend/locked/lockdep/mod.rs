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
//! over containers the kernel forbids. Like the kernel's `WARN_ON`, these are printed
//! without being asked for: one line on stderr per (container, member) kind pair per
//! process, or, with the `tracing` feature, a WARN event (`lockdep_nesting_warning`,
//! target `rcu_fence`) at each occurrence.
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

mod recorder;

pub(crate) use recorder::held_count;
pub(crate) use recorder::{Entered, enter, leave};

/// A kind of lock taken by the `Locked` backend (the kernel's lock class key): the lock of
/// a plain fence, of an array's own fence, or of a chain link's own fence. (A container's
/// members are read without a lock, as in the kernel: an array's are fixed until its
/// release, a chain's `prev` is an RCU pointer.)
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
}

const CLASSES: usize = 3;
const ALL: [LockClass; CLASSES] = [LockClass::Fence, LockClass::Array, LockClass::Chain];

impl LockClass {
    /// The class's name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            LockClass::Fence => "fence",
            LockClass::Array => "array",
            LockClass::Chain => "chain",
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
    /// Dependencies recorded with the nested annotation (the kernel's `spin_lock_nested`):
    /// a lock taken while the lock of a fence that signals later is held, which the
    /// reverse-signal-order rule allows (the `LockedRcu` backend's nested add). They are not
    /// recursive locking and take no part in `cycles`. `first_seen` is not kept for them.
    pub nested: Vec<Dependency>,
    /// Attempts to take a fence lock the thread already held: the kernel would deadlock
    /// there (its spinlock is not re-entrant). The classic scheme here counts each one and
    /// goes on under the lock it holds, so that safe code cannot hang.
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
                let nested = counts.nested[from.index()][to.index()];
                if nested > 0 {
                    report.nested.push(Dependency {
                        from,
                        to,
                        count: nested,
                        first_seen: "nested add",
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
        report.self_deadlocks = counts.reentries;
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
#[derive(Clone, Default)]
struct Snapshot {
    edges: [[u64; CLASSES]; CLASSES],
    first: [[Option<&'static str>; CLASSES]; CLASSES],
    same_class: [u64; CLASSES],
    warnings: [[u64; CLASSES]; CLASSES],
    nested: [[u64; CLASSES]; CLASSES],
    reentries: u64,
}

/// The process-wide view.
///
/// ```
/// use rcu_fence::lockdep;
/// lockdep::reset();
/// println!("{}", lockdep::report());
/// ```
pub fn report() -> LockdepReport {
    recorder::global_snapshot()
        .map(|s| LockdepReport::from_counts(&s))
        .unwrap_or_default()
}

/// What the calling thread caused since it started or last called [`reset`].
pub fn thread_report() -> LockdepReport {
    recorder::thread_snapshot()
        .map(|s| LockdepReport::from_counts(&s))
        .unwrap_or_default()
}

/// Clears the process-wide view and the calling thread's view. Other threads' views are
/// left alone, so that tests running in parallel do not disturb each other.
pub fn reset() {
    recorder::reset();
}

/// How many `Locked` backend locks the calling thread holds right now (0 outside any fence
/// operation; a lock left held after a caught panic would show here).
pub fn held_locks() -> usize {
    recorder::held_count()
}

/// Turns the recording of lock dependencies on or off for the whole process; it is on by
/// default. The kernel's lockdep is a debug option, off in production builds: benchmarks
/// may turn it off to time the bare classic scheme. Nesting warnings and re-entries are
/// counted either way (they cost nothing on the lock paths).
///
/// ```no_run
/// rcu_fence::lockdep::set_enabled(false); // time the bare scheme
/// ```
pub fn set_enabled(on: bool) {
    recorder::set_enabled(on);
}

/// True if lock acquisitions are being recorded (see [`set_enabled`]).
pub fn is_enabled() -> bool {
    recorder::is_enabled()
}

/// Counts one of the kernel's nesting `WARN_ON`s: `container` built over `member`, and
/// prints it where the user sees it (see the recorder).
pub(crate) fn nesting_warning(container: LockClass, member: LockClass) {
    recorder::nesting_warning(container, member);
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
        assert_eq!(
            cycles(&edges),
            vec![vec![LockClass::Fence, LockClass::Array]]
        );
        edges[LockClass::Chain.index()][LockClass::Fence.index()] = 1;
        edges[LockClass::Array.index()][LockClass::Chain.index()] = 1;
        let found = cycles(&edges);
        assert_eq!(found.len(), 2);
        assert!(found.contains(&vec![LockClass::Fence, LockClass::Array, LockClass::Chain]));
    }
}
