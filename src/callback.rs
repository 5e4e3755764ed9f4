//! Callbacks on a fence: [`Fence::add_callback`] (the closure and its list node in one
//! allocation), [`Fence::remove_callback`], and [`CallbackRegistration`], a callback that
//! lives in the caller's memory (pinned) as the kernel's embedded `dma_fence_cb` does: no
//! allocation at all.
//!
//! Every callback is an intrusive node of the backend's list (`backend::list`) embedded first
//! in its owner: a reference-counted [`ClosureNode`] shared by the list and the
//! [`CallbackId`] for `add_callback`, or the registration itself. The backend's fence scheme
//! links and unlinks it; its answers (`true`: unlinked, will never run; `false`: has run, or
//! the call is inside it) are the kernel's.

use std::fmt;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;

use crate::backend::{Backend, FenceScheme, FencesOf, Node, NodeVtable, Rcu};
use crate::error::{AlreadySignaled, FenceError};
use crate::fence::Fence;
use crate::sync::{AtomicUsize, LeakCheck, Ordering, UnsafeCell};

/// A callback added with [`Fence::add_callback`]: the node and the closure in one
/// allocation, shared by the list and the [`CallbackId`] (two references).
#[repr(C)]
struct ClosureNode<B: Backend, F> {
    /// First, so that a pointer to the node is a pointer to the whole.
    node: Node<B>,
    refs: AtomicUsize,
    /// Under loom, a leaked node fails the model.
    _leak_check: LeakCheck,
    /// Taken by the runner (to call it); dropped with the allocation if never run.
    func: UnsafeCell<Option<F>>,
}

impl<B: Backend, F: FnOnce(&Fence<B>) + Send + 'static> ClosureNode<B, F> {
    const VTABLE: NodeVtable<B> = NodeVtable {
        run: Self::run,
        release: Self::release,
    };

    /// # Safety
    /// 1. `node` is the node of a live `ClosureNode<B, F>` that is running (the runner alone
    ///    touches `func`).
    unsafe fn run(node: NonNull<Node<B>>, fence: &Fence<B>) {
        let this = node.cast::<Self>();
        // SAFETY: obligation 1: exclusive access to `func`.
        let func = unsafe { this.as_ref().func.with_mut(|f| (*f).take()) };
        if let Some(func) = func {
            func(fence);
        }
    }

    /// Gives up one reference; the last one frees the allocation (with the closure, if it
    /// never ran).
    ///
    /// # Safety
    /// 1. `node` is the node of a `ClosureNode<B, F>`, and the caller gives up one of its
    ///    references, once.
    unsafe fn release(node: NonNull<Node<B>>) {
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

/// Identifies an installed callback so that [`Fence::remove_callback`] can take it back.
///
/// It holds a reference to the callback's node (not to the fence): dropping it without
/// removing leaves the callback installed.
///
/// ```
/// use rcu_fence::Timeline;
/// let f = Timeline::new("gpu").fence(1);
/// let id = f.add_callback(|_| unreachable!()).unwrap();
/// assert!(f.remove_callback(id)); // removed: will never run
/// f.signal().unwrap();
/// ```
///
/// An id is consumed by the removal and cannot be cloned, so removing one callback twice
/// does not compile:
///
/// ```compile_fail,E0382
/// use rcu_fence::Timeline;
/// let f = Timeline::new("gpu").fence(1);
/// let id = f.add_callback(|_| {}).unwrap();
/// f.remove_callback(id);
/// f.remove_callback(id); // error[E0382]: use of moved value: `id`
/// ```
pub struct CallbackId<B: Backend = Rcu> {
    owner: usize,
    node: NonNull<Node<B>>,
    release: unsafe fn(NonNull<Node<B>>),
}

// SAFETY: the id holds one reference to a node whose shared parts are synchronised (see
// `backend::list`); the closure inside is `Send`.
unsafe impl<B: Backend> Send for CallbackId<B> {}
// SAFETY: a shared id gives access to nothing (every use takes it by value).
unsafe impl<B: Backend> Sync for CallbackId<B> {}

impl<B: Backend> Drop for CallbackId<B> {
    fn drop(&mut self) {
        // SAFETY: the id owns one reference to its node (made by `add_callback`), given up
        // once, here.
        unsafe { (self.release)(self.node) };
    }
}

impl<B: Backend> fmt::Debug for CallbackId<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackId")
            .field("fence", &(self.owner as *const ()))
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Fence<B> {
    /// Installs `f` to run once when the fence signals (`dma_fence_add_callback`).
    ///
    /// Enables signalling first. If the fence has already signalled, `f` is not installed
    /// and comes back uncalled in the error ([`AlreadySignaled::into_inner`]), so that
    /// nothing it owns (a [`DriverFence`](crate::DriverFence), a channel) is dropped behind
    /// the caller's back; `.unwrap()`, `?` and `is_err()` work as with any error. The
    /// callback runs on the signalling thread, exactly once. On the `Rcu` backend it runs
    /// with no lock held, so it may use any fence API, signal other fences and drop any
    /// handle.
    ///
    /// One allocation holds the callback's list node and `f`. [`CallbackRegistration`]
    /// keeps both in the caller's memory instead.
    ///
    /// ```
    /// use rcu_fence::Timeline;
    /// let tl = Timeline::new("gpu");
    /// let (job, next) = (tl.fence(1), tl.driver_fence(2));
    /// job.signal().unwrap();
    /// // Too late to chain `next` on `job`: it comes back instead of being cancelled.
    /// let next = match job.add_callback(move |_| next.signal(Ok(()))) {
    ///     Ok(_id) => unreachable!("job has signalled"),
    ///     Err(refused) => refused.into_inner(),
    /// };
    /// next(&job); // run it now
    /// ```
    pub fn add_callback<F>(&self, f: F) -> Result<CallbackId<B>, AlreadySignaled<F>>
    where
        F: FnOnce(&Fence<B>) + Send + 'static,
    {
        let id = add(self, f)?;
        crate::trace::event!("fence_callback_added", self);
        Ok(id)
    }

    /// Takes back a callback (`dma_fence_remove_callback`).
    ///
    /// `true`: it was still queued and will never run. `false`: the fence has signalled and
    /// the callback has run to completion: this call waits for a run in progress on another
    /// thread (the kernel's barrier); or it is made from inside that very callback; or `id`
    /// belongs to another fence (use [`Fence::try_remove_callback`] to tell that case apart).
    ///
    /// Once any thread can see the fence signalled, the answer is `false`. A callback that
    /// removes a later callback of its own fence (not yet run) therefore runs it on the
    /// spot, inside this call (waiting for it would deadlock). On `Locked` such a call from
    /// inside a callback re-enters the fence's lock, which the kernel would deadlock on; the
    /// lock recorder counts it.
    pub fn remove_callback(&self, id: CallbackId<B>) -> bool {
        self.try_remove_callback(id).unwrap_or(false)
    }

    /// Like [`Fence::remove_callback`], but an id issued by another fence is reported as
    /// `Err(ForeignCallback)` (and left installed where it is).
    pub fn try_remove_callback(&self, id: CallbackId<B>) -> Result<bool, FenceError> {
        if id.owner != self.addr() {
            return Err(FenceError::ForeignCallback);
        }
        crate::trace::event!("fence_callback_removed", self);
        // SAFETY: the id's reference keeps the node valid; it was linked on this fence (or,
        // for a stale id, on an earlier fence at the same address: the scheme answers that).
        let removed = unsafe { FencesOf::<B>::remove_node(self, id.node) };
        if removed {
            // Unlinked: the list's reference is ours to give up (the id gives up its own on
            // drop, freeing the node and the closure, uncalled).
            // SAFETY: the list's reference, given up once.
            unsafe { (id.release)(id.node) };
        }
        Ok(removed)
    }
}

/// Installs `func` on `fence` with one allocation; if the fence has signalled, hands `func`
/// back uncalled.
fn add<B: Backend, F: FnOnce(&Fence<B>) + Send + 'static>(
    fence: &Fence<B>,
    func: F,
) -> Result<CallbackId<B>, AlreadySignaled<F>> {
    let boxed = Box::new(ClosureNode {
        node: Node::new(&ClosureNode::<B, F>::VTABLE),
        refs: AtomicUsize::new(2),
        _leak_check: LeakCheck::new(),
        func: UnsafeCell::new(Some(func)),
    });
    let node = NonNull::from(Box::leak(boxed)).cast::<Node<B>>();
    /// The id's reference until the id exists; on a refusal or an unwind out of `add_node`
    /// it gives up what was never linked: the list's reference too if the node was not
    /// linked (freeing the node, and the closure uncalled unless taken back first), else
    /// only its own.
    struct Pending<B: Backend, F: FnOnce(&Fence<B>) + Send + 'static>(
        Option<NonNull<Node<B>>>,
        std::marker::PhantomData<F>,
    );
    impl<B: Backend, F: FnOnce(&Fence<B>) + Send + 'static> Drop for Pending<B, F> {
        fn drop(&mut self) {
            if let Some(node) = self.0 {
                if !Node::was_linked(node) {
                    // SAFETY: never linked: the list's reference is ours to give up.
                    unsafe { ClosureNode::<B, F>::release(node) };
                }
                // SAFETY: the id's reference, given up once.
                unsafe { ClosureNode::<B, F>::release(node) };
            }
        }
    }
    let mut pending = Pending::<B, F>(Some(node), std::marker::PhantomData);
    // SAFETY: a fresh node; the list's reference keeps it valid until it has run (and been
    // released) or been removed (and released by `try_remove_callback`).
    if unsafe { FencesOf::<B>::add_node(fence, node) } {
        pending.0 = None;
        Ok(CallbackId {
            owner: fence.addr(),
            node,
            release: ClosureNode::<B, F>::release,
        })
    } else {
        // Refused: the node was never linked, so nobody else can reach the closure. Take it
        // back before `pending` frees the node.
        let this = node.cast::<ClosureNode<B, F>>();
        // SAFETY: `pending` holds both references, so the node is alive; never linked, so
        // `func` is ours alone.
        let func = unsafe { this.as_ref().func.with_mut(|f| (*f).take()) };
        drop(pending);
        Err(AlreadySignaled::new(
            func.expect("a refused callback has not run"),
        ))
    }
}

/// A callback that lives in the caller's memory, pinned, as the kernel's embedded
/// `dma_fence_cb` and the Rust-for-Linux binding's `FenceCallbackRegistration`: installing
/// it allocates nothing.
///
/// - [`register`](CallbackRegistration::register) installs it on a fence; on a fence that
///   has already signalled it hands the callback back instead of dropping it.
/// - It runs exactly once when the fence signals, unless taken back first.
/// - Dropping it (or [`unregister`](CallbackRegistration::unregister)) takes it back if it
///   has not run, with the remove barrier: if it is running on another thread, the drop
///   waits until it has finished, so its memory is never freed under a running callback.
///
/// ```
/// use std::pin::pin;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use rcu_fence::{CallbackRegistration, Timeline};
///
/// static RAN: AtomicBool = AtomicBool::new(false);
/// let fence = Timeline::new("gpu").fence(1);
/// let mut reg = pin!(CallbackRegistration::new(|_| RAN.store(true, Ordering::SeqCst)));
/// assert!(reg.as_mut().register(&fence).is_ok());
/// fence.signal().unwrap();
/// assert!(RAN.load(Ordering::SeqCst));
///
/// // On a signalled fence the callback comes back.
/// let mut late = pin!(CallbackRegistration::new(|_| unreachable!()));
/// assert!(late.as_mut().register(&fence).is_err());
/// ```
#[repr(C)]
pub struct CallbackRegistration<F, B: Backend = Rcu>
where
    F: FnOnce(&Fence<B>) + Send + 'static,
{
    /// First, so that a pointer to the node is a pointer to the whole.
    node: Node<B>,
    func: UnsafeCell<Option<F>>,
    /// The fence it is installed on, while installed.
    fence: Option<Fence<B>>,
    _pinned: PhantomPinned,
}

// SAFETY: the closure is `Send`; the node is shared with the signalling thread only under the
// list's protocol, which gives the runner exclusive access to `func` while it runs.
unsafe impl<F: FnOnce(&Fence<B>) + Send + 'static, B: Backend> Send for CallbackRegistration<F, B> {}
// SAFETY: `&CallbackRegistration` gives access to nothing but `is_registered`.
unsafe impl<F: FnOnce(&Fence<B>) + Send + 'static, B: Backend> Sync for CallbackRegistration<F, B> {}

impl<F: FnOnce(&Fence<B>) + Send + 'static, B: Backend> CallbackRegistration<F, B> {
    const VTABLE: NodeVtable<B> = NodeVtable {
        run: Self::run,
        release: Self::keep,
    };

    /// A registration of `func`, not yet installed.
    pub fn new(func: F) -> Self {
        CallbackRegistration {
            node: Node::new(&Self::VTABLE),
            func: UnsafeCell::new(Some(func)),
            fence: None,
            _pinned: PhantomPinned,
        }
    }

    /// Installs the callback on `fence` (`dma_fence_add_callback` with the caller's
    /// `dma_fence_cb`), enabling signalling first. If the fence has already signalled, the
    /// callback is handed back uncalled in the error.
    ///
    /// # Panics
    /// If the registration has been registered before (a registration is used once).
    pub fn register(self: Pin<&mut Self>, fence: &Fence<B>) -> Result<(), AlreadySignaled<F>> {
        // SAFETY: nothing is moved out of the pinned registration: only `func` (never
        // pinned: it is only ever taken by value) and `fence` are written.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `func` is not shared: the node is not linked (checked just after).
        let unused = this.fence.is_none() && this.func.with(|f| unsafe { (*f).is_some() });
        assert!(unused, "a CallbackRegistration is registered once");
        let node = NonNull::from(&this.node);
        // Recorded first: if `add_node` unwinds, the drop takes back whatever was linked.
        this.fence = Some(fence.clone());
        // SAFETY: the node is pinned, so it stays where it is until the drop, which takes it
        // back (with the barrier) before the memory goes; it is linked once.
        if unsafe { FencesOf::<B>::add_node(fence, node) } {
            Ok(())
        } else {
            this.fence = None;
            // SAFETY: not linked: `func` is ours.
            let func = this.func.with_mut(|f| unsafe { (*f).take() });
            Err(AlreadySignaled::new(func.expect("checked above")))
        }
    }

    /// Takes the callback back if it has not run: `true` if it will never run (its closure
    /// is dropped now), `false` if it has run to completion (waiting for a run in progress)
    /// or was not installed. As [`Fence::remove_callback`].
    pub fn unregister(self: Pin<&mut Self>) -> bool {
        // SAFETY: as in `register`: `func` and `fence` only.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(fence) = this.fence.take() else {
            return false;
        };
        // SAFETY: linked on `fence` by `register`; pinned, so valid until this returns.
        let removed = unsafe { FencesOf::<B>::remove_node(&fence, NonNull::from(&this.node)) };
        if removed {
            // SAFETY: unlinked: `func` is ours.
            drop(this.func.with_mut(|f| unsafe { (*f).take() }));
        }
        removed
    }

    /// True while installed on a fence (it may have run already).
    pub fn is_registered(&self) -> bool {
        self.fence.is_some()
    }

    /// # Safety
    /// 1. `node` is the node of a pinned `CallbackRegistration<F, B>`, running.
    unsafe fn run(node: NonNull<Node<B>>, fence: &Fence<B>) {
        let this = node.cast::<Self>();
        // SAFETY: obligation 1: the runner alone touches `func` while running.
        let func = unsafe { this.as_ref().func.with_mut(|f| (*f).take()) };
        if let Some(func) = func {
            func(fence);
        }
    }

    /// The registration's memory is its owner's: nothing to give up.
    ///
    /// # Safety
    /// 1. None: the node is not touched.
    unsafe fn keep(_node: NonNull<Node<B>>) {}
}

impl<F: FnOnce(&Fence<B>) + Send + 'static, B: Backend> Drop for CallbackRegistration<F, B> {
    fn drop(&mut self) {
        // SAFETY: `self` is pinned (or was never registered); unregistering does not move it.
        let this = unsafe { Pin::new_unchecked(self) };
        this.unregister();
    }
}

impl<F: FnOnce(&Fence<B>) + Send + 'static, B: Backend> fmt::Debug for CallbackRegistration<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackRegistration")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}
