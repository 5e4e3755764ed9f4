//! [`Slot`]: an atomic owned-pointer cell (an RCU pointer), and [`Shared`],
//! a reader's borrowed view of its value.
//!
//! # Protocol
//!
//! A slot is one `AtomicPtr<()>` holding either null (empty) or a pointer from
//! [`Pointer::into_raw`] whose value the slot owns.
//!
//! - **load** (`rcu_dereference`): the reclaimer's `protect` reads the pointer
//!   so that the pointee stays alive while the guard is held (for
//!   [`Hazard`](crate::Hazard), until the next load through the same guard). The
//!   reader gets a [`Shared`]: the value rebuilt in a `ManuallyDrop`, borrowed
//!   for as long as both the guard and the slot are borrowed.
//! - **replace / take / compare_exchange** (`rcu_assign_pointer` + `call_rcu`):
//!   swap or compare-exchange the pointer, then *retire* the old one: the
//!   reclaimer drops it once no reader can still hold it.
//! - **into_inner / get_mut / drop**: exclusive access (`self` or `&mut self`),
//!   so no reader can be inside; the value is moved or dropped at once.
//!   `get_mut` moves the value out of the slot (leaving it empty) into a
//!   [`SlotMut`], whose drop writes it back: forgetting the handle leaks the
//!   value and never leaves the slot pointing at one the handle replaced.
//!
//! # Races considered
//!
//! - *Reader vs replace*: the reader sees the old or the new pointer. If old,
//!   the reclaimer keeps it alive until the reader's guard (or protection) is
//!   gone; the old value is unreachable from the slot once swapped out, so no
//!   later reader can find it.
//! - *Two writers*: the swap is atomic, so each old value is retired by exactly
//!   the writer that swapped it out; every value is dropped exactly once.
//! - *compare_exchange vs replace*: exactly one of them installs its value over
//!   a given old pointer; a failing compare-exchange gives its new value back
//!   untouched. Comparison is by address, so a caller must keep the expected
//!   value alive (hold a guard or a clone) to rule out a reused address (ABA).
//! - *Dropping the slot while a reader holds a [`Shared`]*: impossible, as the
//!   `Shared` borrows the slot. A reader that reached the slot through another
//!   RCU-protected value keeps that value, and so the slot, alive.
//!
//! # Orderings
//!
//! Stores of a new pointer are `Release` (its pointee's initialisation
//! happens before any reader's `Acquire` load of it); swaps are `AcqRel` (the
//! `Acquire` half makes the old pointee's writes visible to the writer, who
//! hands it to the reclaimer, which orders it before the drop).

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr;

use crate::guard::{Guard, pin};
use crate::pointer::{Pointer, view};
use crate::reclaimer::{DefaultReclaimer, Reclaimer};
use crate::sync::atomic::{AtomicPtr, Ordering};

fn into_raw<P: Pointer>(value: Option<P>) -> *mut () {
    value.map_or(ptr::null_mut(), P::into_raw)
}

/// An atomic slot holding an owned pointer: an RCU-protected pointer.
///
/// ```
/// use std::sync::Arc;
/// use rcu::Slot;
///
/// let slot: Slot<Arc<String>> = Slot::new(Some(Arc::new("first".to_string())));
/// slot.replace(Some(Arc::new("second".to_string())));
/// assert_eq!(slot.load_clone().unwrap().as_str(), "second");
/// assert!(slot.take());
/// assert!(slot.is_empty());
/// ```
pub struct Slot<P: Pointer, R: Reclaimer = DefaultReclaimer> {
    ptr: AtomicPtr<()>,
    /// The slot owns a `P`; `R` only selects the reclaimer.
    _owns: PhantomData<(P, R)>,
}

impl<P: Pointer, R: Reclaimer> Slot<P, R> {
    /// Makes a slot holding `value` (or empty for `None`).
    pub fn new(value: Option<P>) -> Self {
        Self {
            ptr: AtomicPtr::new(into_raw(value)),
            _owns: PhantomData,
        }
    }

    /// Makes an empty slot.
    pub fn empty() -> Self {
        Self::new(None)
    }

    /// Reads the slot (`rcu_dereference`).
    ///
    /// The view stays valid for as long as `guard` and the slot are borrowed. A
    /// second load through the same guard ends the first view (hazard pointers
    /// protect one value per guard); use another guard to hold two at once.
    ///
    /// The view borrows the slot as well as the guard: dropping a slot drops
    /// its value at once, so a view must not outlive the slot.
    pub fn load<'g>(&'g self, guard: &'g mut Guard<R>) -> Option<Shared<'g, P>> {
        let raw = R::protect(&mut guard.raw, &self.ptr);
        if raw.is_null() {
            return None;
        }
        // SAFETY: a non-null pointer in the slot came from `P::into_raw` and is
        // owned by the slot or, once swapped out, by the reclaimer, which keeps
        // it alive while `guard` protects it; `Shared` borrows `guard` and the
        // slot for `'g`, so the view cannot outlive that protection.
        let value = unsafe { view::<P>(raw) };
        Some(Shared {
            value,
            raw,
            _guard: PhantomData,
        })
    }

    /// Pins, loads, clones the value, unpins.
    pub fn load_clone(&self) -> Option<P>
    where
        P: Clone,
    {
        let mut guard = pin::<R>();
        self.load(&mut guard).map(|shared| P::clone(&shared))
    }

    /// Clones the value without entering a read-side section, for a caller who knows the
    /// value cannot be retired meanwhile: the pin a section costs (a full fence) is then
    /// saved.
    ///
    /// # Safety
    ///
    /// 1. Until this returns, nothing replaces, takes or exchanges the slot's value and
    ///    the slot is not dropped (for example: the only code that empties it runs after
    ///    this call, ordered by the caller's own synchronisation).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rcu::Slot;
    ///
    /// let slot: Slot<Arc<u8>> = Slot::new(Some(Arc::new(5)));
    /// // SAFETY: this thread is the only one that can reach `slot`.
    /// let value = unsafe { slot.load_clone_stable() };
    /// assert_eq!(value.as_deref(), Some(&5));
    /// ```
    pub unsafe fn load_clone_stable(&self) -> Option<P>
    where
        P: Clone,
    {
        // Acquire: pairs with the Release of the store that published the pointer; the
        // pointee's initialisation is visible.
        let raw = self.ptr.load(Ordering::Acquire);
        if raw.is_null() {
            return None;
        }
        // SAFETY: a non-null pointer in the slot came from `P::into_raw` and the slot owns
        // it; by obligation 1 it is neither retired nor dropped before this returns, so the
        // view is valid for the clone.
        let value = unsafe { view::<P>(raw) };
        Some(P::clone(&value))
    }

    /// Whether the slot is empty. A racy snapshot.
    pub fn is_empty(&self) -> bool {
        // Relaxed: no pointee is read; the answer may be stale anyway.
        self.ptr.load(Ordering::Relaxed).is_null()
    }

    /// Stores `new` and retires the old value: its drop is deferred until no
    /// reader can still see it.
    pub fn replace(&self, new: Option<P>) {
        // AcqRel: Release publishes the new pointee to readers' Acquire loads;
        // Acquire makes the old pointee's writes visible before it is retired.
        let old = self.ptr.swap(into_raw(new), Ordering::AcqRel);
        // SAFETY: `old` was swapped out, so it is unlinked and this writer owns it.
        unsafe { retire::<P, R>(old) };
    }

    /// Empties the slot, retiring the old value; `true` if there was one.
    pub fn take(&self) -> bool {
        // AcqRel: as in `replace` (nothing is published, but the swap must
        // still acquire the old pointee before it is retired).
        let old = self.ptr.swap(ptr::null_mut(), Ordering::AcqRel);
        let had = !old.is_null();
        // SAFETY: `old` was swapped out, so it is unlinked and this caller owns it.
        unsafe { retire::<P, R>(old) };
        had
    }

    /// If the slot holds the pointer `current` (null for empty), stores `new`
    /// and retires the old value; otherwise gives `new` back untouched.
    ///
    /// `current` is compared by address (see [`Shared::as_raw`]); keep the
    /// value it came from alive, e.g. by holding the guard, so the address
    /// cannot have been reused.
    ///
    /// ```
    /// use rcu::{Epoch, Slot};
    ///
    /// let slot: Slot<Box<i32>, Epoch> = Slot::new(Some(Box::new(1)));
    /// let mut guard = rcu::pin::<Epoch>();
    /// let seen = slot.load(&mut guard).unwrap().as_raw();
    /// assert!(slot.compare_exchange(seen, Some(Box::new(2))).is_ok());
    /// let again = slot.compare_exchange(seen, Some(Box::new(3)));
    /// assert_eq!(*again.unwrap_err().unwrap(), 3);
    /// ```
    pub fn compare_exchange(&self, current: *const (), new: Option<P>) -> Result<(), Option<P>> {
        let new_raw = into_raw(new);
        match self.ptr.compare_exchange(
            current.cast_mut(),
            new_raw,
            // AcqRel: as in `replace`.
            Ordering::AcqRel,
            // Relaxed: on failure nothing is published and no pointee is read.
            Ordering::Relaxed,
        ) {
            Ok(old) => {
                // SAFETY: `old` was exchanged out, so it is unlinked and owned here.
                unsafe { retire::<P, R>(old) };
                Ok(())
            }
            Err(_) => Err((!new_raw.is_null()).then(|| {
                // SAFETY: `new_raw` came from `into_raw` above and was never
                // published, so ownership comes straight back.
                unsafe { P::from_raw(new_raw) }
            })),
        }
    }

    /// Takes the value out at once, without deferring its drop past readers: for an
    /// owner that knows no reader can reach the slot (the kernel's
    /// `rcu_dereference_protected`), e.g. because the only reference to what contains
    /// it is the caller's.
    ///
    /// # Safety
    ///
    /// 1. No thread is reading the slot's value, and none can start to (nobody else can
    ///    reach the slot, or every path to it is gone).
    ///
    /// ```
    /// use rcu::Slot;
    ///
    /// let slot: Slot<Box<u8>> = Slot::new(Some(Box::new(7)));
    /// // SAFETY: nobody else can reach `slot`.
    /// let value = unsafe { slot.take_unshared() };
    /// assert_eq!(value.map(|b| *b), Some(7));
    /// assert!(slot.is_empty());
    /// ```
    pub unsafe fn take_unshared(&self) -> Option<P> {
        // Acquire: the pointee's writes (by whoever stored it) are visible to the taker.
        let raw = self.ptr.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: `raw` came from `P::into_raw` and the slot owned it; by obligation 1 no
        // reader holds it, so ownership passes to the caller at once.
        (!raw.is_null()).then(|| unsafe { P::from_raw(raw) })
    }

    /// Takes the value out of the slot. No deferral: owning the slot means no
    /// reader is inside.
    pub fn into_inner(self) -> Option<P> {
        let mut this = ManuallyDrop::new(self);
        this.take_exclusive()
    }

    /// Exclusive access to the value, through a handle that puts the (possibly
    /// replaced) value back when dropped.
    ///
    /// The value is moved out of the slot for the handle's lifetime, so the
    /// slot is empty until the handle is dropped. Forgetting the handle
    /// (`mem::forget`) therefore leaks the value and leaves the slot empty; it
    /// never leaves the slot pointing at a value the handle has replaced.
    ///
    /// ```
    /// use rcu::Slot;
    ///
    /// let mut slot: Slot<Box<i32>> = Slot::new(Some(Box::new(1)));
    /// **slot.get_mut().unwrap() += 1;
    /// assert_eq!(slot.into_inner().map(|b| *b), Some(2));
    /// ```
    pub fn get_mut(&mut self) -> Option<SlotMut<'_, P>> {
        let value = self.take_exclusive()?;
        Some(SlotMut {
            value: ManuallyDrop::new(value),
            slot: &mut self.ptr,
        })
    }

    fn take_exclusive(&mut self) -> Option<P> {
        // Relaxed: `&mut self` already orders us after every other access.
        let raw = self.ptr.swap(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: `raw` came from `P::into_raw` and the slot owned it; it is
        // no longer in the slot, so ownership passes to the caller once.
        (!raw.is_null()).then(|| unsafe { P::from_raw(raw) })
    }
}

/// Retires `old` (which may be null).
///
/// # Safety
///
/// 1. `old` is null or came from `P::into_raw`, was unlinked from its slot, and
///    the caller owns it.
unsafe fn retire<P: Pointer, R: Reclaimer>(old: *mut ()) {
    if !old.is_null() {
        // SAFETY: obligation 1 gives both of `retire`'s obligations.
        unsafe { R::retire::<P>(old) };
    }
}

impl<P: Pointer, R: Reclaimer> Drop for Slot<P, R> {
    fn drop(&mut self) {
        // Exclusive: no reader can hold a `Shared` (it borrows the slot).
        drop(self.take_exclusive());
    }
}

impl<P: Pointer, R: Reclaimer> Default for Slot<P, R> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<P: Pointer, R: Reclaimer> From<P> for Slot<P, R> {
    fn from(value: P) -> Self {
        Self::new(Some(value))
    }
}

impl<P: Pointer, R: Reclaimer> fmt::Debug for Slot<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Relaxed: the address is only printed.
        let raw = self.ptr.load(Ordering::Relaxed);
        f.debug_struct("Slot")
            .field("ptr", &raw)
            .field("reclaimer", &R::NAME)
            .finish()
    }
}

/// A reader's borrowed view of a slot's value, valid for `'g`.
///
/// ```
/// use std::sync::Arc;
/// use rcu::Slot;
///
/// let slot: Slot<Arc<u32>> = Slot::new(Some(Arc::new(9)));
/// let mut guard = rcu::pin();
/// let shared = slot.load(&mut guard).unwrap();
/// let owned: Arc<u32> = Arc::clone(&shared); // outlives the guard
/// assert_eq!(*owned, 9);
/// assert_eq!(shared.as_raw(), Arc::as_ptr(&owned).cast());
/// ```
pub struct Shared<'g, P: Pointer> {
    value: ManuallyDrop<P>,
    /// The pointer `value` was rebuilt from.
    raw: *mut (),
    /// Borrows the guard and the slot; not sendable, as protection is per thread.
    _guard: PhantomData<(&'g (), *mut ())>,
}

impl<P: Pointer> Shared<'_, P> {
    /// The raw pointer the slot holds for this value, for
    /// [`Slot::compare_exchange`] and identity comparisons.
    pub fn as_raw(&self) -> *const () {
        self.raw.cast_const()
    }
}

impl<P: Pointer> Deref for Shared<'_, P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.value
    }
}

impl<P: Pointer + fmt::Debug> fmt::Debug for Shared<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}

/// Exclusive access to a slot's value, from [`Slot::get_mut`]. The value
/// (possibly replaced through `DerefMut`) goes back into the slot on drop.
///
/// The handle owns the value while it lives and the slot is empty meanwhile:
/// forgetting the handle leaks the value and leaves the slot empty.
///
/// ```
/// use rcu::Slot;
///
/// let mut slot: Slot<Box<String>> = Slot::new(Some(Box::new("a".into())));
/// if let Some(mut value) = slot.get_mut() {
///     value.push('b'); // in place
///     *value = Box::new("c".into()); // or swapped: the old box drops here
/// }
/// assert_eq!(slot.load_clone().unwrap().as_str(), "c");
/// ```
pub struct SlotMut<'a, P: Pointer> {
    /// Owned: moved out of the slot by `get_mut`, written back by `drop`.
    value: ManuallyDrop<P>,
    /// The slot's pointer, null while this handle lives.
    slot: &'a mut AtomicPtr<()>,
}

impl<P: Pointer> Deref for SlotMut<'_, P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.value
    }
}

impl<P: Pointer> DerefMut for SlotMut<'_, P> {
    fn deref_mut(&mut self) -> &mut P {
        &mut self.value
    }
}

impl<P: Pointer> Drop for SlotMut<'_, P> {
    fn drop(&mut self) {
        // SAFETY: `value` was initialised by `get_mut` and is not used again
        // after this take (this is the handle's last use of it).
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        // Relaxed: the slot is exclusively borrowed, so no other thread can
        // observe the store before the borrow ends (which orders it).
        self.slot.store(value.into_raw(), Ordering::Relaxed);
    }
}

impl<P: Pointer + fmt::Debug> fmt::Debug for SlotMut<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}
