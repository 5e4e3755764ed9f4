//! The callback list both schemes share: intrusive nodes, lock-free push and claim, and an
//! unlink step for removal; what differs between the schemes is which lock (if any) they
//! hold around each step and where the claimed nodes run.
//!
//! # Protocol
//!
//! The list is a stack of intrusive [`Node`]s headed by the *list word*. A node lives in
//! memory its owner provides (a boxed closure, a waiter's stack frame, a future, a
//! container's per-member entry); the list only links it. The list word is:
//!
//! - `0`: empty; an aligned node address: the newest node (each node's `next` is older);
//! - odd: **closed**, and the rest of the word is the signal time (`encode`): the list has
//!   been claimed by the signaller, and no node can be pushed any more.
//!
//! Steps:
//! - **push**: CAS the node onto the head, unless the word is closed: then the node is
//!   refused and never linked.
//! - **close** (signal): one swap of the word to the encoded signal time takes the whole
//!   list, closes it for good and publishes the timestamp. The claimer owns every claimed
//!   node's `next` from then on; it reverses the stack and runs the nodes in registration
//!   (FIFO) order, each `QUEUED → RUNNING → DONE`.
//! - **unlink** (remove): takes a node out of the live list. The caller holds the scheme's
//!   unlink lock and has seen the fence unsignalled, so the only concurrent change is a
//!   push at the head (`Rcu`'s claimer waits for that lock before it closes the list;
//!   `Locked` holds its fence lock around every step).
//! - **waiting for a claimed node** ([`wait_done`]): a remover that finds the fence
//!   signalled waits until the node is `DONE` (the barrier promise), parked on the node's
//!   address (`parking_lot_core`); the runner's swap to `DONE` sees `WAITER` and unparks by
//!   address. From inside the node's own callback it returns at once; if the node waits
//!   behind the running callback in a list this thread is running, it takes the node out
//!   of that list and runs it there and then (waiting would deadlock); run frames on the
//!   thread (`FRAMES`) tell these cases apart.
//!
//! Node states: `IDLE` (not linked) → `QUEUED` (pushed) → `RUNNING` → `DONE` (claimed and
//! run), or `QUEUED → REMOVED` (unlinked); a refused push returns to `IDLE`. An owner that
//! lost track of whether its node was linked (an `add_node` that unwound from a panicking
//! hook after the push) asks [`Node::was_linked`] and takes back only what was linked.
//!
//! A runner never dereferences a node after publishing `DONE` (an embedded node's owner may
//! free it as soon as it sees `DONE`): it reads the node's `next` after the callback has
//! returned and its vtable before, while the node is `RUNNING`.
//!
//! # Orderings
//! - push CAS `Release`: publishes the node's `next` and payload to the claimer and to
//!   unlinkers; pairs with the `Acquire` of the claiming swap and of the unlinkers' loads.
//! - claiming swap `AcqRel`: `Acquire` as above; `Release` publishes the timestamp, and an
//!   adder that reads the closed word (with `Acquire`) also sees `SIGNALED`, which the
//!   claimer set before the swap.
//! - head CAS in unlink `Release` (the list without the node is published to the next
//!   unlinker or claimer, which the scheme's lock orders anyway), `Acquire` on failure (a
//!   newly pushed node's `next` is then visible for the walk).
//! - node `swap(DONE)` `AcqRel`: `Release` publishes the callback's effects to a remover's
//!   `Acquire` load of `DONE` (the barrier promise); `Acquire` orders it after a remover's
//!   `WAITER` RMW, so a parked remover is never missed.

use std::any::Any;
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use crate::sync::{AtomicU8, AtomicU64, Ordering, UnsafeCell};

/// Not linked: new, refused by a closed list, or reset for another push.
const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const REMOVED: u8 = 4;
/// Flag: a remover is parked waiting for `DONE`.
const WAITER: u8 = 8;

/// A caught panic of a callback, to be resumed by the outermost caller.
pub(crate) type Panic = Box<dyn Any + Send>;

/// The part of a node the list links, the same for every backend.
#[repr(C)]
pub(crate) struct Link {
    /// The next (older) node. Written by the pusher before publication; afterwards only by an
    /// unlinker (under the scheme's lock, before the list is closed) or by the claimer.
    next: UnsafeCell<*const Link>,
    state: AtomicU8,
}

/// How a node's owner runs it and takes it back (one static table per owner type).
pub(crate) struct NodeVtable<T: 'static> {
    /// Runs the callback. Called at most once, by the claimer, while the node is `RUNNING`.
    pub(crate) run: unsafe fn(NonNull<Node<T>>, &T),
    /// Called by the claimer after it has published `DONE`: gives up the list's hold on the
    /// node. Must not touch the node unless its owner keeps it alive until this call (a
    /// reference-counted node does; an embedded node's owner may free it at `DONE`).
    pub(crate) release: unsafe fn(NonNull<Node<T>>),
}

/// One installed callback: what every callback owner embeds, first, in its own memory.
#[repr(C)]
pub(crate) struct Node<T: 'static> {
    link: Link,
    vtable: &'static NodeVtable<T>,
}

// SAFETY: `next` is accessed under the protocol in the module docs (the pusher before
// publication, an unlinker under the scheme's lock, the claimer after the claim); the rest is
// an atomic and a shared static table.
unsafe impl<T: 'static> Send for Node<T> {}
// SAFETY: as above.
unsafe impl<T: 'static> Sync for Node<T> {}

impl<T: 'static> Node<T> {
    pub(crate) fn new(vtable: &'static NodeVtable<T>) -> Node<T> {
        Node {
            link: Link {
                next: UnsafeCell::new(ptr::null()),
                state: AtomicU8::new(IDLE),
            },
            vtable,
        }
    }

    /// True once the node has been linked (pushed and not refused), whatever happened to
    /// it since: an owner that lost track (an `add_node` that unwound) asks this before
    /// taking it back. Only the node's owner, which pushes it, calls this.
    pub(crate) fn was_linked(node: NonNull<Node<T>>) -> bool {
        // SAFETY: the owner keeps the node valid.
        let state = unsafe { &node.as_ref().link.state };
        // Acquire: a DONE set by another thread's run is seen with its effects.
        state.load(Ordering::Acquire) != IDLE
    }

    /// Makes a node that has run (`DONE`) or been removed ready to be pushed again (the
    /// classic chain re-arms one node link after link).
    ///
    /// # Safety
    /// 1. The caller owns the node exclusively: it is not linked, and nobody waits on it.
    pub(crate) unsafe fn reset(&self) {
        // Relaxed: exclusive (obligation 1); the next push publishes it.
        self.link.state.store(IDLE, Ordering::Relaxed);
    }

    fn link(node: NonNull<Node<T>>) -> NonNull<Link> {
        node.cast()
    }
}

impl Link {
    /// The next node. Only the claimer, an unlinker holding the scheme's lock, or an
    /// exclusive owner calls this.
    fn next(&self) -> *const Link {
        // SAFETY: the callers are the only ones who may write `next` at this point (see the
        // field), so no write races with this read.
        self.next.with(|n| unsafe { *n })
    }

    /// # Safety
    /// 1. The caller may write `next` now (see the field).
    unsafe fn set_next(&self, next: *const Link) {
        // SAFETY: obligation 1.
        self.next.with_mut(|n| unsafe { *n = next });
    }
}

/// The time base of encoded timestamps: the first one encoded in this process.
fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The largest offset from [`base`] a list word can hold (2^62 ns, about 146 years).
const MAX_OFFSET: u64 = 1 << 62;

/// A closed list word for a signal at `at`: the signed offset from [`base`] in nanoseconds,
/// shifted left once, with the low bit set.
fn encode(at: Instant) -> u64 {
    /// Nanoseconds in `d`, saturating at `MAX_OFFSET` (64-bit arithmetic: no `u128`).
    fn nanos(d: Duration) -> u64 {
        d.as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.subsec_nanos()))
            .min(MAX_OFFSET - 1)
    }
    let base = base();
    let offset = match at.checked_duration_since(base) {
        Some(after) => nanos(after) as i64,
        None => -(nanos(base.duration_since(at)) as i64),
    };
    ((offset as u64) << 1) | 1
}

fn decode(word: u64) -> Instant {
    let offset = (word as i64) >> 1;
    let magnitude = Duration::from_nanos(offset.unsigned_abs());
    if offset >= 0 {
        base() + magnitude
    } else {
        base() - magnitude
    }
}

fn is_closed(word: u64) -> bool {
    word & 1 != 0
}

fn as_link(word: u64) -> *const Link {
    ptr::with_exposed_provenance::<Link>(word as usize)
}

fn as_word(link: *const Link) -> u64 {
    link.expose_provenance() as u64
}

/// The list word (see the module docs).
pub(crate) struct List {
    head: AtomicU64,
}

impl List {
    pub(crate) fn new() -> List {
        List {
            head: AtomicU64::new(0),
        }
    }

    /// A list closed by a signal at `at` (an already signalled fence).
    pub(crate) fn closed_at(at: Instant) -> List {
        List {
            head: AtomicU64::new(encode(at)),
        }
    }

    /// True if nodes are linked (neither empty nor closed). A racy snapshot unless the
    /// caller excludes adders and removers.
    pub(crate) fn has_linked(&self) -> bool {
        // Acquire: a holder that excludes others sees their last change.
        let word = self.head.load(Ordering::Acquire);
        word != 0 && !is_closed(word)
    }

    /// The signal time, once the list has been closed.
    pub(crate) fn timestamp(&self) -> Option<Instant> {
        // Acquire: pairs with the claiming swap's Release (the word is the timestamp itself;
        // this orders the reader after the signaller's prior work as well).
        let word = self.head.load(Ordering::Acquire);
        is_closed(word).then(|| decode(word))
    }

    /// Links `node`; `false` if the list is closed (the node was not linked).
    ///
    /// # Safety
    /// 1. `node` is valid, not linked anywhere, and stays valid until it is unlinked by
    ///    [`List::unlink`] or run by the claimer and released through its vtable.
    pub(crate) unsafe fn push<T: 'static>(&self, node: NonNull<Node<T>>) -> bool {
        let link = Node::link(node);
        // SAFETY: obligation 1: not published yet. Relaxed: the push publishes it.
        unsafe { link.as_ref().state.store(QUEUED, Ordering::Relaxed) };
        // Acquire: if we read the closed word we report "signalled", and must then see
        // SIGNALED (set before the claiming swap).
        let mut current = self.head.load(Ordering::Acquire);
        loop {
            if is_closed(current) {
                // SAFETY: as above: never published. Relaxed: ours alone.
                unsafe { link.as_ref().state.store(IDLE, Ordering::Relaxed) };
                return false;
            }
            // SAFETY: obligation 1: the node is not published yet; only we touch `next`.
            unsafe { link.as_ref().set_next(as_link(current)) };
            // Release: publishes `next` and the payload; Acquire on failure as for the load.
            match self.head.compare_exchange_weak(
                current,
                as_word(link.as_ptr()),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Claims and closes the list, publishing `at` as the signal time; returns the claimed
    /// nodes in FIFO order (null if none). The caller has won the signal and, for `Rcu`,
    /// waited for any unlinker that did not see it.
    pub(crate) fn close(&self, at: Instant) -> *const Link {
        // AcqRel: see the module's Orderings.
        let top = self.head.swap(encode(at), Ordering::AcqRel);
        debug_assert!(!is_closed(top), "a list closed twice");
        // SAFETY: the claimer owns every claimed node's `next` now.
        unsafe { reverse(as_link(top)) }
    }

    /// Unlinks `node` from the live list; `false` if it is not on it (a stale callback id).
    ///
    /// # Safety
    /// 1. The caller holds the scheme's unlink lock and has seen the fence unsignalled (so
    ///    only pushes change the list meanwhile, and only at the head), and keeps `node`
    ///    valid until this returns.
    pub(crate) unsafe fn unlink<T: 'static>(&self, node: NonNull<Node<T>>) -> bool {
        let target = Node::link(node).as_ptr().cast_const();
        // SAFETY: obligation 1.
        let after = unsafe { (*target).next() };
        // Acquire: pairs with the pushers' Release CAS; their nodes' `next` are visible.
        let mut top = self.head.load(Ordering::Acquire);
        while as_link(top) == target {
            // Release / Acquire on failure: see the module's Orderings.
            match self.head.compare_exchange(
                top,
                as_word(after),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return self.mark_removed(target),
                Err(actual) => top = actual,
            }
        }
        // Not the head: find the predecessor (pushes only change the head, which we passed).
        let mut prev = as_link(top);
        while !prev.is_null() && !is_closed(as_word(prev)) {
            // SAFETY: `prev` is a linked node reached from the head under the unlink lock.
            let next = unsafe { (*prev).next() };
            if next == target {
                // SAFETY: obligation 1: we hold the unlink lock and the list is not claimed,
                // so nobody else writes `prev.next` (pushers never write a published one's).
                unsafe { (*prev).set_next(after) };
                return self.mark_removed(target);
            }
            prev = next;
        }
        false
    }

    fn mark_removed(&self, link: *const Link) -> bool {
        // SAFETY: the caller of `unlink` keeps the node valid; it is unlinked now, so ours.
        // Relaxed: the node is unreachable for anyone else.
        unsafe { (*link).state.store(REMOVED, Ordering::Relaxed) };
        true
    }

    /// On the final drop of a fence: moves the linked nodes, if any, into a new list (every
    /// linked node is queued: removal unlinks).
    pub(crate) fn take_linked(&mut self) -> Option<List> {
        // Relaxed: `&mut self`: no other thread can reach this list.
        let top = self.head.load(Ordering::Relaxed);
        if top == 0 || is_closed(top) {
            return None;
        }
        self.head = AtomicU64::new(0);
        Some(List {
            head: AtomicU64::new(top),
        })
    }
}

impl Drop for List {
    fn drop(&mut self) {
        // Relaxed: `&mut self`: exclusive. A dropped fence hands linked nodes to
        // `take_linked` first, so nothing is linked here.
        let top = self.head.load(Ordering::Relaxed);
        debug_assert!(
            top == 0 || is_closed(top),
            "a callback list dropped with nodes linked"
        );
    }
}

/// Reverses a claimed stack in place; returns the new first node.
///
/// # Safety
/// 1. The caller owns the claimed nodes (it won the closing swap).
unsafe fn reverse(top: *const Link) -> *const Link {
    let mut reversed: *const Link = ptr::null();
    let mut cur = top;
    while !cur.is_null() {
        // SAFETY: obligation 1: the `next` fields belong to the claimer now.
        let next = unsafe { (*cur).next() };
        // SAFETY: as above.
        unsafe { (*cur).set_next(reversed) };
        reversed = cur;
        cur = next;
    }
    reversed
}

/// One claimed node being run on this thread: the innermost of a stack of frames (a callback
/// may run further callbacks: a wait inside it runs queued work, a signal nests a run).
struct Frame {
    link: *const Link,
    /// Runs a node of this frame's list (`run_typed` for its subject type).
    run: unsafe fn(NonNull<Link>, *const ()) -> (*const Link, Option<Panic>),
    /// The subject (`T`: the fence) of the list being run, for a node taken out of it and
    /// run elsewhere.
    subject: *const (),
    outer: *const Frame,
}

crate::sync::thread_local! {
    /// The innermost [`Frame`] on this thread, or null.
    static FRAMES: Cell<*const Frame> = const { Cell::new(ptr::null()) };
}

/// Runs the claimed FIFO list starting at `first`, each callback receiving `subject` (the
/// fence); `on_each` is called before each callback (for trace events). A callback's panic
/// is caught, the rest still run, and the first panic is returned for the caller to resume.
///
/// # Safety
/// 1. `first` came from [`List::close`] of `subject`'s list, and is run once.
pub(crate) unsafe fn run_claimed<T: 'static>(
    subject: &T,
    first: *const Link,
    on_each: impl Fn(&T),
) -> Option<Panic> {
    let mut panic = None;
    let mut cur = first;
    while let Some(link) = NonNull::new(cur.cast_mut()) {
        on_each(subject);
        // SAFETY: obligation 1: each claimed node is run once, here (or taken out of the list
        // by a remover on this thread, which runs it itself).
        let (next, caught) = unsafe { run_node(link.cast::<Node<T>>(), subject) };
        panic = panic.or(caught);
        cur = next;
    }
    panic
}

/// Runs one claimed node: `QUEUED → RUNNING → DONE`, then releases it. Returns the next
/// claimed node, read after the callback returned (a callback may take a later node out of
/// the list) and before `DONE` (after which the node may be freed), and the callback's panic.
///
/// # Safety
/// 1. `node` is a claimed node of `subject`'s list, owned by this thread (its claimer), run
///    once.
unsafe fn run_node<T: 'static>(
    node: NonNull<Node<T>>,
    subject: &T,
) -> (*const Link, Option<Panic>) {
    // SAFETY: obligation 1: a claimed node stays valid until we publish DONE.
    let this = unsafe { node.as_ref() };
    let vtable = this.vtable;
    // QUEUED → RUNNING, keeping WAITER. Relaxed: only this thread moves the node out of
    // QUEUED now (removers only add WAITER); the payload was published by the push,
    // acquired by the claiming swap.
    const _: () = assert!(RUNNING == QUEUED + 1);
    this.link
        .state
        .fetch_add(RUNNING - QUEUED, Ordering::Relaxed);
    let frame = Frame {
        link: &this.link,
        run: run_typed::<T>,
        subject: (subject as *const T).cast(),
        outer: FRAMES.try_with(Cell::get).unwrap_or(ptr::null()),
    };
    let entered = FRAMES.try_with(|f| f.set(&frame)).is_ok();
    // SAFETY: obligation 1: the node is RUNNING and ours to run, once.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        (vtable.run)(node, subject)
    }))
    .err();
    if entered {
        let _ = FRAMES.try_with(|f| f.set(frame.outer));
    }
    let next = this.link.next();
    // AcqRel: see the module's Orderings. After this swap the node may be freed.
    let seen = this.link.state.swap(DONE, Ordering::AcqRel);
    if seen & WAITER != 0 {
        unpark(node.as_ptr().cast());
    }
    // SAFETY: DONE is published; `release` is the owner's own rule for that moment.
    unsafe { (vtable.release)(node) };
    (next, caught)
}

/// Where a claimed node stands with respect to this thread's runs.
enum Claimed {
    /// It is a node running on this thread (innermost or outer frame).
    Running,
    /// It waits in a list this thread is running, behind `prev` (a node of that list,
    /// possibly the frame's own); `subject` is that list's subject (its fence).
    Behind {
        prev: *const Link,
        subject: *const (),
    },
    /// Not in this thread's runs: another thread claimed it (or it has run).
    Elsewhere,
}

/// Finds `target` in the claimed lists this thread is running. Each frame's node links to
/// the rest of its list (claimed nodes' `next` belong to this thread as their claimer).
fn locate(target: *const Link) -> Claimed {
    let mut frame = FRAMES.try_with(Cell::get).unwrap_or(ptr::null());
    while !frame.is_null() {
        // SAFETY: frames are live stack values of this thread's enclosing `run_node` calls.
        let f = unsafe { &*frame };
        if f.link == target {
            return Claimed::Running;
        }
        let mut prev = f.link;
        loop {
            // SAFETY: `prev` is the frame's RUNNING node or a claimed node behind it, not yet
            // run: all valid, and their `next` belongs to this thread (the claimer).
            let next = unsafe { (*prev).next() };
            if next.is_null() {
                break;
            }
            if next == target {
                return Claimed::Behind {
                    prev,
                    subject: f.subject,
                };
            }
            prev = next;
        }
        frame = f.outer;
    }
    Claimed::Elsewhere
}

/// Runs, now, the claimed callbacks this thread still owes: those waiting behind the
/// running one in every list this thread is running (innermost first). For a callback about
/// to block: what it waits for may be among them. Each runs exactly once (taken out of its
/// list first, so the list's own loop does not see it again). Returns true if it ran any.
pub(crate) fn run_owed_callbacks() -> bool {
    let mut ran = false;
    let mut frame = FRAMES.try_with(Cell::get).unwrap_or(ptr::null());
    while !frame.is_null() {
        // SAFETY: frames are live stack values of this thread's enclosing `run_node` calls.
        let f = unsafe { &*frame };
        // SAFETY: the frame's node is RUNNING on this thread, its claimer: its `next` is ours.
        let mut rest = unsafe { (*f.link).next() };
        // Detach the rest: the frame's loop reads `next` after its callback returns.
        // SAFETY: as above.
        unsafe { (*f.link).set_next(ptr::null()) };
        while let Some(link) = NonNull::new(rest.cast_mut()) {
            ran = true;
            // SAFETY: a claimed node of this frame's list, taken out of it, run once here;
            // the frame's subject is alive (its run is on this thread's stack) and of the
            // node's subject type (a node is linked only on lists of its own subject type).
            let (next, panic) = unsafe { (f.run)(link, f.subject) };
            if let Some(panic) = panic {
                std::panic::resume_unwind(panic);
            }
            rest = next;
        }
        frame = f.outer;
    }
    ran
}

/// Runs a claimed node of a list whose subject is a `T` (the frame records this function,
/// instantiated for its subject type, so that nodes can be run from a frame whose type is
/// erased).
///
/// # Safety
/// 1. As `run_node`'s, with `subject` a pointer to a live `T`, the list's subject.
unsafe fn run_typed<T: 'static>(
    link: NonNull<Link>,
    subject: *const (),
) -> (*const Link, Option<Panic>) {
    // SAFETY: obligation 1: the node is a `Node<T>` (a node is linked only on its own
    // subject type's lists) and `subject` a `T`.
    unsafe { run_node(link.cast::<Node<T>>(), &*subject.cast::<T>()) }
}

/// Waits until a claimed node is `DONE`, so that a remover's `false` means "it has run"
/// (see the module docs). `run_queued` runs work this thread has queued (the `Rcu` work
/// list), in case the node's run is queued behind this call.
///
/// # Safety
/// 1. `node` was pushed onto a list of a subject of type `T` and has not been unlinked; the
///    caller keeps it valid until this returns.
pub(crate) unsafe fn wait_done<T: 'static>(node: NonNull<Node<T>>, run_queued: impl FnOnce()) {
    let link = Node::link(node);
    // SAFETY: obligation 1.
    let state = unsafe { &link.as_ref().state };
    // Acquire: pairs with the runner's swap to DONE (the callback's effects are visible).
    if state.load(Ordering::Acquire) != DONE {
        match locate(link.as_ptr()) {
            Claimed::Running => return,
            Claimed::Behind { prev, subject } => {
                // SAFETY: `locate` found `prev` linked to the node in a list this thread
                // claimed and is running: its `next` fields are ours.
                unsafe { (*prev).set_next(link.as_ref().next()) };
                // SAFETY: taken out of the claimed list, so run once, here. The list's subject
                // is alive (its run is on this thread's stack), and it is a `T`: a node of
                // `T` is only ever linked on the list of a `T`.
                let (_, panic) = unsafe { run_node(node, &*subject.cast::<T>()) };
                if let Some(panic) = panic {
                    std::panic::resume_unwind(panic);
                }
                return;
            }
            Claimed::Elsewhere => run_queued(),
        }
    }
    spin_until_done(state);
    while state.load(Ordering::Acquire) != DONE {
        // AcqRel: Release orders our waiting before the runner's DONE swap reads it;
        // Acquire as above if DONE is already there.
        if state.fetch_or(WAITER, Ordering::AcqRel) & !WAITER == DONE {
            break;
        }
        park_until_done(link.as_ptr().cast_const().cast(), state);
    }
}

/// Spins briefly (parking_lot's adaptive spin: a few pause rounds, then a few yields) while
/// the node is not `DONE`. The common remover that gets here is a waiter whose own wake
/// callback is still running: woken by that callback's unpark, it arrives while the
/// runner is still returning from the unpark's system call, microseconds before `DONE`.
/// Parking at once made both sides pay a second system call (the waiter's park and the
/// runner's unpark by address) on most blocked waits. The kernel's remover spins too (on
/// the fence lock). Loom models the parked path only (the spin only loads).
fn spin_until_done(state: &AtomicU8) {
    #[cfg(not(loom))]
    {
        let mut spin = parking_lot_core::SpinWait::new();
        // Acquire: as in `wait_done`.
        while state.load(Ordering::Acquire) != DONE && spin.spin() {}
    }
    #[cfg(loom)]
    let _ = state;
}

/// Wakes removers parked on the node at `addr`. Never dereferences it.
fn unpark(addr: *const ()) {
    #[cfg(not(loom))]
    // SAFETY: `unpark_all` only uses the address as a key; no callback runs.
    unsafe {
        parking_lot_core::unpark_all(addr as usize, parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
    #[cfg(loom)]
    let _ = addr; // loom's waiter spins with yields.
}

fn park_until_done(addr: *const (), state: &AtomicU8) {
    #[cfg(not(loom))]
    // SAFETY: the validate closure only loads the state (the node is alive: its owner waits
    // here); no callback panics or parks.
    unsafe {
        let _ = parking_lot_core::park(
            addr as usize,
            // Acquire: as in `wait_done`.
            || state.load(Ordering::Acquire) & !WAITER != DONE,
            || {},
            |_, _| {},
            parking_lot_core::DEFAULT_PARK_TOKEN,
            None,
        );
    }
    #[cfg(loom)]
    {
        let _ = (addr, state);
        loom::thread::yield_now();
    }
}
