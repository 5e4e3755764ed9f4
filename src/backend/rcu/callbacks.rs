//! The `Rcu` fence's callback list: lock-free add and claim, removal that unlinks.
//!
//! # Protocol
//!
//! The list is a stack of intrusive [`Node`]s whose head is an `AtomicPtr`. A node lives in
//! memory its owner provides (a boxed closure for [`add`], or memory embedded in a waiter or
//! a container); the list only links it.
//!
//! - **push**: CAS the node onto the head, unless the head is the `CLOSED` sentinel (the
//!   fence has signalled): then the node is refused and never linked.
//! - **claim** (signal): the signaller has set `SIGNALED` in the state word first. If that
//!   RMW saw `UNLINKING` (a remover holds the unlink lock, below), it waits for the bit to
//!   clear. Then one `swap(head, CLOSED)` takes the whole list and closes it for good; the
//!   claimer owns every claimed node's link from then on, reverses the stack and runs the
//!   nodes in registration (FIFO) order.
//! - **remove**: the remover takes the *unlink lock*, the `UNLINKING` bit of the state word
//!   (a CAS that sets it only while clear). The same CAS tells it whether `SIGNALED` was set:
//!   - not signalled: the list is live and, while the bit is held, changes only by pushes at
//!     the head (the claimer waits for the bit). The remover unlinks the node (a CAS on the
//!     head if the node is the head, else a store to its predecessor's `next`), marks it
//!     `REMOVED`, releases the bit and returns `true`: the node will never run.
//!   - signalled: the node is claimed, or about to be. The remover leaves the list alone and
//!     waits until the node is `DONE` (the barrier promise), then returns `false`. A remover
//!     inside that very callback returns `false` at once (it would wait for itself); one
//!     whose node waits behind it in the list this thread is running (a callback removing a
//!     later callback of its own fence) takes the node out of that list and runs it on the
//!     spot (waiting would deadlock); one whose node's run is queued on this thread's work
//!     list runs the queued work first. The run frames on the thread (`FRAMES`) tell these
//!     cases apart.
//!
//! So removal frees what it removes: memory held by a pending fence is proportional to the
//! callbacks still installed, however many were added and removed.
//!
//! Each claimed node moves `QUEUED → RUNNING → DONE`. A remover waiting for a claimed node
//! sets `WAITER` and parks on the node's address (`parking_lot_core`); the runner's swap to
//! `DONE` sees `WAITER` and unparks by address. The runner never dereferences a node after
//! publishing `DONE`, since an embedded node's owner may free it as soon as it sees `DONE`;
//! what it needs afterwards (the vtable) it reads before.
//!
//! Races considered:
//! - push vs claim: the CAS either lands before the swap (the node is claimed and runs) or
//!   sees `CLOSED` (refused). A node can never be pushed onto a claimed list.
//! - push vs unlink of the head node: the remover's head CAS fails; it re-reads the head and
//!   finds the node deeper, behind the pushed one, whose `next` it may then rewrite (a
//!   pusher never writes a node's `next` after publishing it).
//! - remove vs claim: decided by the order of the two RMWs on the state word. A remover
//!   whose lock CAS came first unlinks before the claimer walks (the claimer saw
//!   `UNLINKING` and waits); one whose CAS came after sees `SIGNALED` and only waits. So a
//!   remover that has observed the fence signalled (directly, or through anything ordered
//!   after the signal) always gets `false`, after the callback has run.
//! - two removers: serialised by the unlink lock.
//! - removal from inside the callback itself, or of a node behind it in the same run:
//!   detected through the thread's run frames; the claimer's `next` pointers belong to this
//!   thread, so taking a node out of its run is a plain store, and the running node reads
//!   its `next` only after its callback returns.
//!
//! # Orderings
//! - push CAS `Release`: publishes the node's `next` and payload to the claimer and to
//!   removers; pairs with the `Acquire` of the claiming swap and of the removers' head loads.
//! - unlink lock: the acquiring CAS is `Acquire` and the release `fetch_and` is `Release`, so
//!   one remover's `next` rewrites happen before the next remover's walk; the claimer's
//!   `Acquire` wait for the bit to clear orders them before its walk too (and so does its
//!   `AcqRel` signalling RMW when it reads the word after a release).
//! - claiming swap `AcqRel`: `Acquire` as above; `Release` so that an adder who reads
//!   `CLOSED` (with `Acquire`) also sees the `SIGNALED` bit set before the swap.
//! - node `swap(DONE)` `AcqRel`: `Release` publishes the callback's effects to a remover's
//!   `Acquire` load of `DONE` (the barrier promise); `Acquire` orders it after the remover's
//!   `WAITER` RMW, so a waiter is never missed.

use std::cell::Cell;
use std::ptr::{self, NonNull};

use crate::Rcu;
use crate::backend::word::Word;
use crate::fence::Fence;
use crate::sync::{
    AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, LeakCheck, Ordering, UnsafeCell, spin_hint,
};
use crate::work::{self, Job};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const REMOVED: u8 = 3;
/// Flag: a remover is parked waiting for `DONE`.
const WAITER: u8 = 4;

/// The sentinel head of a list that has been claimed by `signal`.
fn closed() -> *mut Node {
    // A non-null, never-dereferenced, never-allocated address (alignment makes 1 impossible).
    ptr::dangling_mut::<u8>().wrapping_add(1) as *mut Node
}

/// What a node's owner provides: how to run it, and how the list gives it back.
pub(crate) struct NodeVtable {
    /// Runs the callback. Called at most once, by the claimer, while the node is `RUNNING`.
    run: unsafe fn(NonNull<Node>, &Fence<Rcu>),
    /// Called by the claimer after it has published `DONE`: gives up the list's hold on the
    /// node. Must not touch the node unless the owner keeps it alive until this call (a
    /// reference-counted node does; an embedded node's owner may free it at `DONE`).
    release: unsafe fn(NonNull<Node>),
}

/// One installed callback: the intrusive part every callback carries.
#[allow(unreachable_pub)]
pub struct Node {
    /// The next (older) node. Written by the pusher before publication; afterwards only by a
    /// remover holding the unlink lock (before the list is claimed) or by the claimer.
    next: UnsafeCell<*const Node>,
    state: AtomicU8,
    vtable: &'static NodeVtable,
}

// SAFETY: `next` is accessed under the protocol in the module docs (the pusher before
// publication, removers under the unlink lock, the claimer after the claim); the rest is an
// atomic and a shared static.
unsafe impl Send for Node {}
// SAFETY: as above.
unsafe impl Sync for Node {}

/// One claimed node being run on this thread: the innermost of a stack of frames (a
/// callback may run further callbacks: a wait inside it runs queued work).
struct Frame {
    node: *const Node,
    fence: *const Fence<Rcu>,
    outer: *const Frame,
}

crate::sync::thread_local! {
    /// The innermost [`Frame`] on this thread, or null.
    static FRAMES: Cell<*const Frame> = const { Cell::new(ptr::null()) };
}

/// Where a claimed node stands with respect to this thread's runs.
enum Claimed {
    /// It is the node running on this thread (innermost or outer frame).
    Running,
    /// It waits in a list this thread is running, behind `prev` (a node of that list,
    /// possibly the frame's own); `fence` is that list's fence.
    Behind {
        prev: *const Node,
        fence: *const Fence<Rcu>,
    },
    /// Not in this thread's runs: another thread claimed it (or it has run).
    Elsewhere,
}

/// Finds `target` in the claimed lists this thread is running. Each frame's node links to
/// the rest of its list (claimed nodes' `next` belong to this thread as their claimer).
fn locate(target: *const Node) -> Claimed {
    let mut frame = FRAMES.try_with(Cell::get).unwrap_or(ptr::null());
    while !frame.is_null() {
        // SAFETY: frames are live stack values of this thread's enclosing `Node::run` calls.
        let f = unsafe { &*frame };
        if f.node == target {
            return Claimed::Running;
        }
        let mut prev = f.node;
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
                    fence: f.fence,
                };
            }
            prev = next;
        }
        frame = f.outer;
    }
    Claimed::Elsewhere
}

impl Node {
    pub(crate) fn new(vtable: &'static NodeVtable) -> Node {
        Node {
            next: UnsafeCell::new(ptr::null()),
            state: AtomicU8::new(QUEUED),
            vtable,
        }
    }

    /// The next node. Only the claimer, a remover holding the unlink lock, or an exclusive
    /// owner calls this.
    fn next(&self) -> *const Node {
        // SAFETY: the callers are the only ones who may write `next` at this point (see
        // the field), so no write races with this read.
        self.next.with(|n| unsafe { *n })
    }

    /// Unlinks this node from the live list at `head`; `false` if it is not on it.
    /// The caller holds the unlink lock and has seen the fence unsignalled, so only pushes
    /// change the list meanwhile, and they change only the head.
    fn unlink_from(&self, head: &AtomicPtr<Node>) -> bool {
        let target: *const Node = self;
        // Acquire: pairs with the pushers' Release CAS; their nodes' `next` are visible.
        let mut top = head.load(Ordering::Acquire);
        while top.cast_const() == target {
            // Release: a later claimer or remover sees the list without the node; Acquire
            // on failure: a pushed node's `next` is visible for the walk below.
            match head.compare_exchange(
                top,
                self.next().cast_mut(),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => top = actual,
            }
        }
        // Not the head: find the predecessor (pushes only change the head, which we passed).
        let mut prev = top.cast_const();
        while !prev.is_null() && prev != closed() {
            // SAFETY: `prev` is a linked node, reached from the head under the unlink lock.
            let next = unsafe { (*prev).next() };
            if next == target {
                // SAFETY: we hold the unlink lock and the list is not claimed: nobody else
                // writes `prev.next` (pushers never write a published node's `next`).
                unsafe { (*prev).next.with_mut(|n| *n = self.next()) };
                return true;
            }
            prev = next;
        }
        false
    }

    /// Runs a claimed node: `QUEUED → RUNNING → DONE`, then releases it. Returns the next
    /// claimed node, read after the callback returned (a callback may take a later node out
    /// of the list, see [`wait_done`]) and before `DONE` (after which the node may be freed).
    ///
    /// # Safety
    /// 1. `node` is a claimed node of `fence`'s list, owned by this thread (its claimer) and
    ///    run once.
    unsafe fn run(node: NonNull<Node>, fence: &Fence<Rcu>) -> *const Node {
        // SAFETY: obligation 1: a claimed node stays valid until we publish DONE.
        let this = unsafe { node.as_ref() };
        let vtable = this.vtable;
        // Relaxed: only this thread moves the node out of QUEUED now (removers only add
        // WAITER); the payload was published by the push, acquired by the claiming swap.
        this.state.fetch_or(RUNNING, Ordering::Relaxed);
        let frame = Frame {
            node: node.as_ptr(),
            fence,
            outer: FRAMES.try_with(Cell::get).unwrap_or(ptr::null()),
        };
        let entered = FRAMES.try_with(|r| r.set(&frame)).is_ok();
        crate::trace::event!("fence_callback_run", fence);
        // SAFETY: obligation 1: the node is RUNNING and ours to run, once.
        work::catching(|| unsafe { (vtable.run)(node, fence) });
        if entered {
            let _ = FRAMES.try_with(|r| r.set(frame.outer));
        }
        let next = this.next();
        // AcqRel: see the module's Orderings. After this swap the node may be freed.
        let seen = this.state.swap(DONE, Ordering::AcqRel);
        if seen & WAITER != 0 {
            unpark(node.as_ptr());
        }
        // SAFETY: DONE is published; `release` is the owner's own rule for that moment.
        unsafe { (vtable.release)(node) };
        next
    }
}

/// Wakes removers parked on `node`'s address. Never dereferences it.
fn unpark(node: *const Node) {
    #[cfg(not(loom))]
    // SAFETY: `unpark_all` only uses the address as a key; no callback runs.
    unsafe {
        parking_lot_core::unpark_all(node as usize, parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
    #[cfg(loom)]
    let _ = node; // loom's waiter spins with yields.
}

/// Waits until a claimed node is `DONE`, so that the remover's `false` means "it has run".
///
/// - From inside that node's own callback: returns at once (it would wait for itself).
/// - If the node waits in a list this thread is running, behind the running callback (a
///   callback removing a later callback of the same fence): that run cannot proceed while
///   we wait, so the node is taken out of the list and run here, now.
/// - If its run is queued on this thread's work list (a fence signalled inside a callback),
///   the queued work is run first.
/// - Otherwise another thread runs it: park until it is `DONE`.
fn wait_done(node: NonNull<Node>) {
    // SAFETY: the caller keeps the node alive until it returns (it is the node's owner).
    let state = unsafe { &node.as_ref().state };
    // Acquire: pairs with the runner's swap to DONE (the callback's effects are visible).
    if state.load(Ordering::Acquire) != DONE {
        match locate(node.as_ptr()) {
            Claimed::Running => return,
            Claimed::Behind { prev, fence } => {
                // SAFETY: `locate` found `prev` linked to the node in a list this thread
                // claimed and is running; its `next` fields are ours.
                unsafe {
                    (*prev.cast_mut())
                        .next
                        .with_mut(|n| *n = node.as_ref().next())
                };
                // SAFETY: unlinked from the claimed list, so run once, here; the list's
                // fence is alive (its run is on this thread's stack).
                unsafe { Node::run(node, &*fence) };
                return;
            }
            Claimed::Elsewhere => work::run_queued(),
        }
    }
    while state.load(Ordering::Acquire) != DONE {
        // AcqRel: Release orders our waiting before the runner's DONE swap reads it; Acquire
        // as above if DONE is already there.
        if state.fetch_or(WAITER, Ordering::AcqRel) & !WAITER == DONE {
            break;
        }
        park_until_done(node.as_ptr(), state);
    }
}

fn park_until_done(node: *const Node, state: &AtomicU8) {
    #[cfg(not(loom))]
    // SAFETY: the validate closure only loads the state (the node is alive: we own it); no
    // callback panics or parks.
    unsafe {
        let _ = parking_lot_core::park(
            node as usize,
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
        let _ = (node, state);
        loom::thread::yield_now();
    }
}

/// The unlink lock, the `UNLINKING` bit of the state word.
struct UnlinkLock<'a> {
    word: &'a AtomicU64,
}

impl<'a> UnlinkLock<'a> {
    /// Takes the lock unless the fence has signalled (then `None`: the list is claimed or
    /// about to be, and must not be touched).
    fn lock(word: &'a AtomicU64) -> Option<UnlinkLock<'a>> {
        let mut spins = 0u32;
        // Acquire (here and on CAS failure): a remover that sees SIGNALED is ordered after
        // the signaller's RMW; otherwise the CAS validates the value.
        let mut current = Word(word.load(Ordering::Acquire));
        loop {
            if current.is_signaled() {
                return None;
            }
            if current.0 & Word::UNLINKING != 0 {
                backoff(&mut spins);
                current = Word(word.load(Ordering::Acquire));
                continue;
            }
            // Acquire: see the module's Orderings (ordered after the previous holder).
            match word.compare_exchange_weak(
                current.0,
                current.0 | Word::UNLINKING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(UnlinkLock { word }),
                Err(actual) => current = Word(actual),
            }
        }
    }
}

impl Drop for UnlinkLock<'_> {
    fn drop(&mut self) {
        // Release: see the module's Orderings.
        self.word.fetch_and(!Word::UNLINKING, Ordering::Release);
    }
}

/// Waits out a short critical section of another thread: spins, then yields.
fn backoff(spins: &mut u32) {
    if *spins < 64 {
        spin_hint();
    } else {
        crate::sync::thread::yield_now();
    }
    *spins += 1;
}

/// The list head.
pub(crate) struct List {
    head: AtomicPtr<Node>,
}

impl List {
    pub(crate) fn new(closed_now: bool) -> List {
        List {
            head: AtomicPtr::new(if closed_now {
                closed()
            } else {
                ptr::null_mut()
            }),
        }
    }

    /// Links `node`; `false` if the list is closed (the node was not linked).
    ///
    /// # Safety
    /// 1. `node` is valid, not linked anywhere, and stays valid until it is unlinked by
    ///    [`List::remove`] or run by the claimer (and released through its vtable).
    pub(crate) unsafe fn push(&self, node: NonNull<Node>) -> bool {
        let raw = node.as_ptr();
        // Acquire: if we read CLOSED we report "signalled", and must then see SIGNALED.
        let mut current = self.head.load(Ordering::Acquire);
        loop {
            if current == closed() {
                return false;
            }
            // SAFETY: obligation 1: the node is not published yet; only we touch `next`.
            unsafe { (*raw).next.with_mut(|n| *n = current) };
            // Release: publishes `next` and the payload; Acquire on failure as for the load.
            match self.head.compare_exchange_weak(
                current,
                raw,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Claims and closes the list, after the caller's signalling RMW on `word` returned
    /// `seen`; returns the claimed nodes in FIFO order (null if none).
    pub(crate) fn close(&self, word: &AtomicU64, seen: Word) -> *const Node {
        if seen.0 & Word::UNLINKING != 0 {
            // A remover that did not see SIGNALED is unlinking: let it finish first.
            let mut spins = 0u32;
            // Acquire: pairs with the lock's Release; its `next` rewrites become visible.
            while word.load(Ordering::Acquire) & Word::UNLINKING != 0 {
                backoff(&mut spins);
            }
        }
        // AcqRel: see the module's Orderings.
        let top = self.head.swap(closed(), Ordering::AcqRel);
        if top == closed() {
            return ptr::null();
        }
        // SAFETY: the claimer owns every claimed node's `next` now.
        unsafe { reverse(top) }
    }

    /// Takes `node` back: `true` if it was unlinked before the signal (it will never run);
    /// `false` once the fence has signalled, after the node has run (or at once from inside
    /// its own callback). See the module docs.
    ///
    /// # Safety
    /// 1. `node` was pushed onto this list (and not yet removed); the caller keeps it valid
    ///    until this returns.
    pub(crate) unsafe fn remove(&self, word: &AtomicU64, node: NonNull<Node>) -> bool {
        let Some(lock) = UnlinkLock::lock(word) else {
            wait_done(node);
            return false;
        };
        // SAFETY: obligation 1: the caller keeps the node alive.
        if unsafe { node.as_ref().unlink_from(&self.head) } {
            // SAFETY: as above; unlinked now, so the node is ours.
            let state = unsafe { &node.as_ref().state };
            // Relaxed: the node is unreachable for anyone else now.
            state.store(REMOVED, Ordering::Relaxed);
            drop(lock);
            return true;
        }
        // Not linked here although the fence is pending: a stale id whose fence is gone
        // (its address reused by this one). Its node was claimed when that fence signalled
        // or was dropped; it runs (or ran) there.
        drop(lock);
        wait_done(node);
        false
    }

    /// On the final drop of a pending fence: takes the nodes, if any, so that they can run
    /// (with `-EDEADLK`) through a new handle. Every linked node is queued: removal unlinks.
    pub(crate) fn take_pending(&mut self) -> Option<List> {
        // Relaxed: `&mut self`: no other thread can reach this list.
        let top = self.head.load(Ordering::Relaxed);
        if top.is_null() || top == closed() {
            return None;
        }
        self.head = AtomicPtr::new(ptr::null_mut());
        Some(List {
            head: AtomicPtr::new(top),
        })
    }
}

impl Drop for List {
    fn drop(&mut self) {
        // Relaxed: `&mut self`: exclusive. A dropped fence hands queued nodes to
        // `take_pending` first, so nothing is linked here.
        let top = self.head.load(Ordering::Relaxed);
        debug_assert!(
            top.is_null() || top == closed(),
            "a callback list dropped with nodes linked"
        );
    }
}

/// Reverses a claimed stack in place; returns the new first node.
///
/// # Safety
/// 1. The caller owns the claimed nodes (it won the closing swap).
unsafe fn reverse(top: *mut Node) -> *const Node {
    let mut reversed: *const Node = ptr::null();
    let mut cur = top as *const Node;
    while !cur.is_null() {
        // SAFETY: obligation 1: the `next` fields belong to the claimer now.
        let next = unsafe { (*cur).next() };
        // SAFETY: as above.
        unsafe { (*cur).next.with_mut(|n| *n = reversed) };
        reversed = cur;
        cur = next;
    }
    reversed
}

/// Runs a claimed FIFO list.
///
/// # Safety
/// 1. `first` was returned by [`List::close`] and is run once.
pub(crate) unsafe fn run(fence: &Fence<Rcu>, first: *const Node) {
    let mut cur = first;
    while let Some(node) = NonNull::new(cur.cast_mut()) {
        // SAFETY: obligation 1: each claimed node is run once, here (or taken out of the
        // list by a remover on this thread, which runs it itself).
        cur = unsafe { Node::run(node, fence) };
    }
}

/// Runs a claimed list now (outermost) or queues it (nested).
pub(crate) fn run_or_queue(fence: &Fence<Rcu>, first: *const Node) {
    if first.is_null() {
        return;
    }
    work::scope(|nested| {
        if nested {
            // SAFETY: `run_job` takes back the fence handle and runs the list once.
            work::push(unsafe { Job::new(fence.clone().into_raw(), first as *const (), run_job) });
        } else {
            // SAFETY: `first` came from `close` and is run once, here.
            unsafe { run(fence, first) }
        }
    });
}

/// # Safety
/// 1. `fence` is a `Fence<Rcu>::into_raw` handle and `first` a claimed list, both used once.
unsafe fn run_job(fence: *const (), first: *const ()) {
    // SAFETY: obligation 1.
    let fence = unsafe { Fence::<Rcu>::from_raw(fence) };
    // SAFETY: obligation 1.
    unsafe { run(&fence, first as *const Node) };
}

/// A callback added with [`add`]: the node and the closure in one allocation, shared by the
/// list and the [`Key`] (two references).
#[repr(C)]
struct ClosureNode<F> {
    /// First, so that a pointer to the node is a pointer to the whole.
    node: Node,
    refs: AtomicUsize,
    /// Under loom, a leaked node fails the model.
    _leak_check: LeakCheck,
    /// Taken by whoever owns the closure: the runner (to call it) or the remover (to drop it).
    func: UnsafeCell<Option<F>>,
}

impl<F: FnOnce(&Fence<Rcu>) + Send + 'static> ClosureNode<F> {
    const VTABLE: NodeVtable = NodeVtable {
        run: Self::run,
        release: Self::release,
    };

    /// # Safety
    /// 1. `node` is the node of a live `ClosureNode<F>` that is `RUNNING` (the runner alone
    ///    touches `func`).
    unsafe fn run(node: NonNull<Node>, fence: &Fence<Rcu>) {
        let this = node.cast::<Self>();
        // SAFETY: obligation 1: exclusive access to `func`.
        let func = unsafe { this.as_ref().func.with_mut(|f| (*f).take()) };
        if let Some(func) = func {
            func(fence);
        }
    }

    /// Gives up one reference; the last one frees the allocation.
    ///
    /// # Safety
    /// 1. `node` is the node of a `ClosureNode<F>` made by [`add`], and the caller gives up
    ///    one of its references, once.
    unsafe fn release(node: NonNull<Node>) {
        let this = node.cast::<Self>();
        // AcqRel: the last releaser must see every other holder's accesses before freeing
        // (the usual reference-count argument: Release on every decrement, Acquire on the
        // last).
        // SAFETY: obligation 1: our reference keeps it alive until this decrement.
        if unsafe { this.as_ref().refs.fetch_sub(1, Ordering::AcqRel) } == 1 {
            // SAFETY: the last reference: nobody else can reach the allocation.
            drop(unsafe { Box::from_raw(this.as_ptr()) });
        }
    }
}

/// What a [`CallbackId`](crate::CallbackId) holds on the `Rcu` backend: a reference to the
/// callback's node. (`pub` only to be named by the sealed backend trait.)
#[allow(unreachable_pub)]
pub struct Key {
    node: NonNull<Node>,
}

// SAFETY: the key holds a reference to a node whose shared parts are synchronised (see
// `Node`); the closure inside is `Send`.
unsafe impl Send for Key {}
// SAFETY: a shared key gives no access to anything (all its uses take it by value).
unsafe impl Sync for Key {}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Key").field(&self.node).finish()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: the key owns one reference to its node (made by `add`), given up once.
        unsafe { (self.node.as_ref().vtable.release)(self.node) };
    }
}

/// Installs `func` on `list`: one allocation for the node and the closure. `None` if the
/// list is closed (the closure is dropped uncalled).
pub(crate) fn add<F: FnOnce(&Fence<Rcu>) + Send + 'static>(list: &List, func: F) -> Option<Key> {
    let boxed = Box::new(ClosureNode {
        node: Node::new(&ClosureNode::<F>::VTABLE),
        refs: AtomicUsize::new(2),
        _leak_check: LeakCheck::new(),
        func: UnsafeCell::new(Some(func)),
    });
    let node = NonNull::from(Box::leak(boxed)).cast::<Node>();
    // SAFETY: a fresh node; the list's reference keeps it valid until it runs (and is
    // released) or is removed (and released by `remove`).
    if unsafe { list.push(node) } {
        Some(Key { node })
    } else {
        // SAFETY: never linked: we hold both references; the box is ours again.
        drop(unsafe { Box::from_raw(node.cast::<ClosureNode<F>>().as_ptr()) });
        None
    }
}

/// Takes back a callback added with [`add`]; see [`List::remove`] for the answer. A removed
/// callback's closure is dropped here, uncalled (with the node: the list's reference and the
/// key's are both given up).
pub(crate) fn remove(list: &List, word: &AtomicU64, key: Key) -> bool {
    // SAFETY: the key's reference keeps the node valid; it was pushed onto this list (the
    // caller checked the key belongs to this fence; a stale key is answered `false`).
    let removed = unsafe { list.remove(word, key.node) };
    if removed {
        // SAFETY: unlinked: the list's reference is ours to give up, once.
        unsafe { (key.node.as_ref().vtable.release)(key.node) };
    }
    drop(key);
    removed
}
