//! The `Rcu` fence's lock-free callback list.
//!
//! # Protocol
//!
//! The list is a stack of [`Node`]s whose head is an `AtomicPtr`:
//! - **add**: a node is pushed by CAS on the head, unless the head is the `CLOSED` sentinel
//!   (the fence has signalled): then the node is refused and the callback is not installed.
//! - **signal**: one `swap(head, CLOSED)` claims the whole list and closes it for good. The
//!   claimer owns every node's list reference from then on; nobody else walks the list.
//!   The stack is reversed to run callbacks in registration (FIFO) order.
//! - **remove**: the caller's [`Key`] keeps its node alive (an `Arc`), so removal never
//!   touches the list: it is a CAS on the node's own state.
//!
//! Each node's state moves `QUEUED → RUNNING → DONE` (run by the signaller) or
//! `QUEUED → REMOVED` (taken back); a remover that finds `RUNNING` on another thread
//! parks until `DONE` (`RUNNING → WAITED → DONE`). Whoever wins the CAS out of `QUEUED`
//! owns the closure: the runner calls it, the remover drops it. So a callback runs at most
//! once, and `remove` returning `false` means the closure has finished.
//!
//! Races considered:
//! - add vs signal: the CAS either lands before the swap (the node is claimed and runs) or
//!   sees `CLOSED` (refused). A node can never be pushed onto a claimed list.
//! - remove vs signal: decided by the node's CAS out of `QUEUED`; the loser backs off.
//! - remove while the node runs on another thread: the remover publishes its thread handle
//!   and CASes `RUNNING → WAITED`; the runner's `swap(DONE)` sees `WAITED` and unparks it.
//!   If the runner got to `DONE` first, the CAS fails and the remover returns at once.
//! - remove from inside the callback itself: detected through a thread-local pointer to the
//!   node being run; returns `false` without waiting (it would wait for itself).
//! - removed nodes stay linked (memory only, the closure is already dropped) until the
//!   signal or the fence's final drop frees them.
//!
//! # Orderings
//! - push CAS `Release`: publishes the node's `next` and closure to the claimer; pairs with
//!   the `Acquire` half of the claiming swap.
//! - claiming swap `AcqRel`: `Acquire` as above; `Release` so that an adder who reads
//!   `CLOSED` (with `Acquire`) also sees the `SIGNALED` bit set before the swap.
//! - node `swap(DONE)` `AcqRel`: `Release` publishes the callback's effects to a remover's
//!   `Acquire` load of `DONE` (the barrier promise); `Acquire` pairs with the remover's
//!   `Release` CAS to `WAITED`, making its thread handle readable.

use std::cell::Cell;
use std::ptr;

use crate::Rcu;
use crate::fence::{Callback, Fence};
use crate::sync::{Arc, AtomicPtr, AtomicU8, Ordering, UnsafeCell, thread};
use crate::work::{self, Job};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const WAITED: u8 = 2;
const DONE: u8 = 3;
const REMOVED: u8 = 4;

/// The sentinel head of a list that has been claimed by `signal`.
fn closed() -> *mut Node {
    // A non-null, never-dereferenced, never-allocated address (alignment makes 1 impossible).
    ptr::dangling_mut::<u8>().wrapping_add(1) as *mut Node
}

/// One installed callback.
#[allow(unreachable_pub)]
pub struct Node {
    /// The next (older) node; written before the push publishes the node, then read only
    /// by the claimer.
    next: UnsafeCell<*const Node>,
    state: AtomicU8,
    /// The thread of a remover waiting for a running callback; written by the remover before
    /// its CAS to `WAITED`, read by the runner after it sees `WAITED`.
    waiter: UnsafeCell<Option<thread::Thread>>,
    /// The closure: owned by whoever moves `state` out of `QUEUED`.
    func: UnsafeCell<Option<Callback<Rcu>>>,
}

// SAFETY: the raw `next` pointer and the cells are accessed only under the state protocol
// described in the module docs (the publisher before publication, then one owner at a time);
// the closure and the thread handle are `Send`.
unsafe impl Send for Node {}
// SAFETY: as above: shared access goes through the atomic state, which hands out exclusive
// access to each cell to one thread at a time.
unsafe impl Sync for Node {}

/// What a [`CallbackId`](crate::CallbackId) holds on the `Rcu` backend: the node itself.
/// (`pub` only to be named by the sealed backend trait; not reachable by users.)
#[allow(unreachable_pub)]
pub struct Key(Arc<Node>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Key").field(&Arc::as_ptr(&self.0)).finish()
    }
}

crate::sync::thread_local! {
    /// The node whose callback is running on this thread, to detect remove-from-inside.
    static RUNNING_NODE: Cell<*const Node> = const { Cell::new(ptr::null()) };
}

impl Node {
    fn new(func: Callback<Rcu>) -> Node {
        Node {
            next: UnsafeCell::new(ptr::null()),
            state: AtomicU8::new(QUEUED),
            waiter: UnsafeCell::new(None),
            func: UnsafeCell::new(Some(func)),
        }
    }

    /// The next node. Only the list's claimer or an exclusive owner calls this.
    fn next(&self) -> *const Node {
        // SAFETY: `next` is written before publication and then only by the claimer's
        // reversal; the callers are that claimer or an exclusive owner, so no write races.
        self.next.with(|n| unsafe { *n })
    }

    /// Runs the callback unless it was removed. Called only by the list's claimer.
    fn run(&self, fence: &Fence<Rcu>) {
        // Acquire: pairs with nothing the remover publishes on the failure path (it wrote
        // nothing); on success the closure was published by the push CAS, already acquired
        // by the claiming swap. Relaxed would do; Acquire keeps the argument local.
        if self
            .state
            .compare_exchange(QUEUED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return; // REMOVED: the remover owns (and has dropped) the closure.
        }
        // SAFETY: winning QUEUED → RUNNING grants exclusive access to `func`.
        let func = self.func.with_mut(|f| unsafe { (*f).take() });
        let previous = RUNNING_NODE
            .try_with(|r| r.replace(self as *const Node))
            .ok();
        if let Some(func) = func {
            crate::trace::event!("fence_callback_run", fence);
            work::catching(|| func(fence));
        }
        if let Some(previous) = previous {
            let _ = RUNNING_NODE.try_with(|r| r.set(previous));
        }
        // AcqRel: see the module's Orderings.
        if self.state.swap(DONE, Ordering::AcqRel) == WAITED {
            // SAFETY: the remover wrote `waiter` before its Release CAS to WAITED, which our
            // Acquire swap observed; it never writes it again.
            let waiter = self.waiter.with(|w| unsafe { (*w).clone() });
            if let Some(thread) = waiter {
                thread.unpark();
            }
        }
    }
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

    /// Pushes a callback; `None` if the list is closed (the closure is dropped).
    pub(crate) fn push(&self, func: Callback<Rcu>) -> Option<Key> {
        let node = Arc::new(Node::new(func));
        let key = Key(node.clone());
        let raw = Arc::into_raw(node) as *mut Node;
        // Acquire: if we read CLOSED we report "signalled", and must then see SIGNALED.
        let mut current = self.head.load(Ordering::Acquire);
        loop {
            if current == closed() {
                // SAFETY: `raw` was never published; take the list's reference back.
                drop(unsafe { Arc::from_raw(raw) });
                return None;
            }
            // SAFETY: the node is not published yet; only this thread touches `next`.
            unsafe { (*raw).next.with_mut(|n| *n = current) };
            // Release: publishes `next` and the closure; Acquire on failure as for the load.
            match self.head.compare_exchange_weak(
                current,
                raw,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(key),
                Err(actual) => current = actual,
            }
        }
    }

    /// Claims and closes the list; returns the claimed nodes in FIFO order (null if none).
    pub(crate) fn close(&self) -> *const Node {
        // AcqRel: see the module's Orderings.
        let top = self.head.swap(closed(), Ordering::AcqRel);
        if top == closed() {
            return ptr::null();
        }
        // SAFETY: the claimer owns every node's list reference and their `next` fields now.
        unsafe { reverse(top) }
    }

    /// On the final drop of a pending fence: takes the nodes if any callback is still
    /// queued (for the -EDEADLK signal), otherwise frees the removed ones.
    pub(crate) fn take_pending(&mut self) -> Option<List> {
        // Relaxed: `&mut self`: no other thread can reach this list.
        let top = self.head.swap(ptr::null_mut(), Ordering::Relaxed);
        if top.is_null() || top == closed() {
            self.head = AtomicPtr::new(top);
            return None;
        }
        let mut any_queued = false;
        let mut cur = top as *const Node;
        while !cur.is_null() {
            // SAFETY: exclusive access (see above); the list holds a reference to each node.
            let node = unsafe { &*cur };
            // Relaxed: exclusive access to the list; a remover's CAS on this node happened
            // before the fence's last handle was dropped (it held a handle to call remove).
            any_queued |= node.state.load(Ordering::Relaxed) == QUEUED;
            cur = node.next();
        }
        let list = List {
            head: AtomicPtr::new(top),
        };
        if any_queued {
            Some(list)
        } else {
            drop(list); // frees the removed nodes
            None
        }
    }
}

impl Drop for List {
    fn drop(&mut self) {
        // Relaxed: `&mut self`: exclusive.
        let top = self.head.swap(ptr::null_mut(), Ordering::Relaxed);
        if top.is_null() || top == closed() {
            return;
        }
        let mut cur = top as *const Node;
        while !cur.is_null() {
            // SAFETY: exclusive; each node's list reference is released once here.
            let node = unsafe { Arc::from_raw(cur) };
            cur = node.next();
        }
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
        let next = unsafe { (*cur).next.with(|n| *n) };
        // SAFETY: as above.
        unsafe { (*cur).next.with_mut(|n| *n = reversed) };
        reversed = cur;
        cur = next;
    }
    reversed
}

/// Runs a claimed FIFO list, consuming the list's references.
///
/// # Safety
/// 1. `first` was returned by [`List::close`] and is run once.
pub(crate) unsafe fn run(fence: &Fence<Rcu>, first: *const Node) {
    let mut cur = first;
    while !cur.is_null() {
        // SAFETY: obligation 1: each node's list reference is taken back once.
        let node = unsafe { Arc::from_raw(cur) };
        cur = node.next();
        node.run(fence);
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

/// Takes a callback back; see the module docs for the meaning of the result.
pub(crate) fn remove(key: Key) -> bool {
    let node = key.0;
    // AcqRel on success: we take ownership of the closure; Acquire on failure: if DONE, the
    // callback's effects are visible to our caller.
    match node
        .state
        .compare_exchange(QUEUED, REMOVED, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => {
            // SAFETY: winning QUEUED → REMOVED grants exclusive access to `func`.
            let func = node.func.with_mut(|f| unsafe { (*f).take() });
            drop(func);
            true
        }
        Err(RUNNING) => {
            if RUNNING_NODE.try_with(|r| r.get()).ok() == Some(Arc::as_ptr(&node)) {
                return false; // called from inside this very callback
            }
            // SAFETY: only the key holder writes `waiter`, and the key is unique; the runner
            // reads it only after seeing WAITED, which the CAS below publishes.
            node.waiter
                .with_mut(|w| unsafe { *w = Some(thread::current()) });
            // Release: publishes `waiter`; Acquire on failure: DONE's effects become visible.
            if node
                .state
                .compare_exchange(RUNNING, WAITED, Ordering::Release, Ordering::Acquire)
                .is_ok()
            {
                // Acquire: pairs with the runner's swap to DONE.
                while node.state.load(Ordering::Acquire) != DONE {
                    thread::park();
                }
            }
            false
        }
        Err(_) => false, // DONE (or a second remover, impossible with a unique key)
    }
}
