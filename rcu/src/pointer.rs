//! [`Pointer`]: owned values that can live in a slot as one raw pointer.
//!
//! A [`Slot`](crate::Slot) holds a single `AtomicPtr<()>`. To store an owned
//! value there, the value is turned into a raw pointer with
//! [`Pointer::into_raw`]; to hand ownership back (when the value is dropped or
//! taken out) the pointer is turned back with [`Pointer::from_raw`]. Readers
//! never take ownership: they rebuild the value inside a `ManuallyDrop` and only
//! borrow it, which the trait's contract makes valid.

use core::mem::ManuallyDrop;

/// An owned pointer that can be stored in a slot as a raw, type-erased pointer.
///
/// Implemented here for `Box<T>` and `Arc<T>`. A library can implement it for a
/// newtype around one of those.
///
/// ```
/// use std::sync::Arc;
/// use rcu::Pointer;
///
/// let raw = Arc::new(5).into_raw();
/// // SAFETY: `raw` came from `Arc<i32>::into_raw` and is handed back once.
/// let back: Arc<i32> = unsafe { Pointer::from_raw(raw) };
/// assert_eq!(*back, 5);
/// ```
///
/// # Safety
///
/// An implementation promises:
///
/// 1. [`into_raw`](Pointer::into_raw) returns a non-null pointer, and the value
///    it designates stays valid (it is neither freed nor moved) until the value
///    rebuilt from it by [`from_raw`](Pointer::from_raw) is dropped.
/// 2. While that owned value is still alive (in a slot, say), a
///    `ManuallyDrop<Self>` rebuilt with `from_raw` from the same pointer is a
///    valid shared view of it: any number of threads may hold such views and
///    use them through `&Self` at once, and forgetting them has no effect.
///
/// Both hold for `Box` and `Arc`. Slots compare values by this pointer
/// (see [`Slot::compare_exchange`](crate::Slot::compare_exchange)), so two live
/// values should not share an address; a `Box` of a zero-sized type does not
/// have a distinct address and is a poor fit for compare-and-exchange.
pub unsafe trait Pointer: Send + Sync + Sized + 'static {
    /// Gives up ownership, returning the raw pointer that stands for the value.
    fn into_raw(self) -> *mut ();

    /// Takes ownership back.
    ///
    /// # Safety
    ///
    /// 1. `ptr` came from [`into_raw`](Pointer::into_raw) of this same type.
    /// 2. Ownership is transferred back: unless the result is kept in a
    ///    `ManuallyDrop` as a shared view (obligation 2 of the trait), no other
    ///    value rebuilt from `ptr` is dropped or used afterwards.
    unsafe fn from_raw(ptr: *mut ()) -> Self;
}

// SAFETY: `Box::into_raw` is non-null and the allocation stays put until the
// rebuilt box is dropped (1); a `ManuallyDrop<Box<T>>` over a live box only
// ever yields `&Box<T>`, hence `&T`, which `T: Sync` lets threads share (2).
unsafe impl<T: Send + Sync + 'static> Pointer for Box<T> {
    fn into_raw(self) -> *mut () {
        Box::into_raw(self).cast()
    }

    unsafe fn from_raw(ptr: *mut ()) -> Self {
        // SAFETY: by obligations 1 and 2, `ptr` came from `Box::<T>::into_raw`
        // and ownership comes back exactly once.
        unsafe { Box::from_raw(ptr.cast()) }
    }
}

// SAFETY: `Arc::into_raw` is non-null and keeps one strong count, so the
// allocation lives until the rebuilt `Arc` is dropped (1); a
// `ManuallyDrop<Arc<T>>` view shares that count without touching it unless
// cloned, and cloning a live `Arc` through `&Arc<T>` is always allowed (2).
unsafe impl<T: Send + Sync + 'static> Pointer for std::sync::Arc<T> {
    fn into_raw(self) -> *mut () {
        std::sync::Arc::into_raw(self).cast_mut().cast()
    }

    unsafe fn from_raw(ptr: *mut ()) -> Self {
        // SAFETY: by obligations 1 and 2, `ptr` came from `Arc::<T>::into_raw`
        // and the strong count it carries comes back exactly once.
        unsafe { std::sync::Arc::from_raw(ptr.cast_const().cast()) }
    }
}

// SAFETY: as for `std::sync::Arc`; loom's `Arc` has the same ownership rules.
#[cfg(loom)]
unsafe impl<T: Send + Sync + 'static> Pointer for loom::sync::Arc<T> {
    fn into_raw(self) -> *mut () {
        loom::sync::Arc::into_raw(self).cast_mut().cast()
    }

    unsafe fn from_raw(ptr: *mut ()) -> Self {
        // SAFETY: by obligations 1 and 2, `ptr` came from `Arc::<T>::into_raw`
        // and the strong count it carries comes back exactly once.
        unsafe { loom::sync::Arc::from_raw(ptr.cast_const().cast()) }
    }
}

/// Rebuilds a shared view of the live value behind `raw`.
///
/// # Safety
///
/// 1. `raw` came from `P::into_raw`, and the owned value stays alive for as long
///    as the returned view is used (trait obligation 2 makes the view valid).
pub(crate) unsafe fn view<P: Pointer>(raw: *mut ()) -> ManuallyDrop<P> {
    // SAFETY: obligation 1; the `ManuallyDrop` never gives ownership back.
    ManuallyDrop::new(unsafe { P::from_raw(raw) })
}
