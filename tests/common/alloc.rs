//! A counting global allocator for leak checks.
//!
//! Each block carries a small header saying whether it was allocated while the allocating
//! thread had tracking switched on. Frees of tagged blocks are counted on whatever thread
//! they happen, so the live count of tagged blocks is exact even when other tests in the
//! same binary allocate concurrently. A `realloc` keeps the tag of the original block.
//!
//! It also counts, per thread, the allocations made while tracking is on (a `realloc` that
//! grows counts as one more): [`counted`] reports how many a closure made and their sizes,
//! for the allocation budgets.
//!
//! Install it in a test crate with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// The allocator; see the module docs.
pub(crate) struct CountingAlloc;

static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    /// Allocations made by this thread while tracking.
    static MADE: Cell<usize> = const { Cell::new(0) };
    /// Their total size in bytes.
    static MADE_BYTES: Cell<usize> = const { Cell::new(0) };
    /// The largest of them.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    let _ = MADE.try_with(|m| m.set(m.get() + 1));
    let _ = MADE_BYTES.try_with(|b| b.set(b.get() + size));
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

const TAGGED: usize = 0x7a67_6765;
const UNTAGGED: usize = 0x1;

fn header_size(align: usize) -> usize {
    align.max(2 * std::mem::size_of::<usize>())
}

fn outer(layout: Layout) -> Option<(Layout, usize)> {
    let h = header_size(layout.align());
    let size = layout.size().checked_add(h)?;
    Some((
        Layout::from_size_align(size, layout.align().max(h)).ok()?,
        h,
    ))
}

fn tracking() -> bool {
    TRACKING.try_with(|t| t.get()).unwrap_or(false)
}

// SAFETY: every block handed out is a `System` block of the outer layout, offset by the
// header; `dealloc`/`realloc` undo exactly that offset with the same layout computation.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((outer, h)) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size (it includes the header).
        let base = unsafe { System.alloc(outer) };
        if base.is_null() {
            return base;
        }
        let tagged = tracking();
        // SAFETY: the header lies inside the block, just before the returned pointer, and
        // is aligned for `usize` (h is a multiple of the word size).
        unsafe {
            (base.add(h - std::mem::size_of::<usize>()) as *mut usize).write(if tagged {
                TAGGED
            } else {
                UNTAGGED
            })
        };
        if tagged {
            LIVE_BLOCKS.fetch_add(1, Ordering::SeqCst);
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::SeqCst);
            note_allocation(layout.size());
        }
        // SAFETY: within the block.
        unsafe { base.add(h) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let (outer, h) = outer(layout).expect("a layout that was allocated");
        // SAFETY: `ptr` came from `alloc`/`realloc` with this layout: the header precedes it.
        let tag = unsafe { (ptr.sub(std::mem::size_of::<usize>()) as *const usize).read() };
        if tag == TAGGED {
            LIVE_BLOCKS.fetch_sub(1, Ordering::SeqCst);
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        }
        // SAFETY: the original block and layout.
        unsafe { System.dealloc(ptr.sub(h), outer) };
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (outer_old, h) = outer(layout).expect("a layout that was allocated");
        let Some(new_outer_size) = new_size.checked_add(h) else {
            return std::ptr::null_mut();
        };
        // SAFETY: the header precedes `ptr` (see `alloc`).
        let tag = unsafe { (ptr.sub(std::mem::size_of::<usize>()) as *const usize).read() };
        // SAFETY: the original block and layout; the alignment is unchanged, so the header
        // offset stays `h`, and the header is copied along with the contents.
        let base = unsafe { System.realloc(ptr.sub(h), outer_old, new_outer_size) };
        if base.is_null() {
            return base;
        }
        if tag == TAGGED {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        }
        if tracking() && new_size > layout.size() {
            note_allocation(new_size);
        }
        // SAFETY: within the new block.
        unsafe { base.add(h) }
    }
}

/// Live tagged blocks and bytes.
pub(crate) fn live() -> (isize, isize) {
    (
        LIVE_BLOCKS.load(Ordering::SeqCst),
        LIVE_BYTES.load(Ordering::SeqCst),
    )
}

/// Runs `f` with tracking on for the current thread: what it allocates is counted until
/// freed, on any thread.
pub(crate) fn tracked<R>(f: impl FnOnce() -> R) -> R {
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            TRACKING.with(|t| t.set(false));
        }
    }
    TRACKING.with(|t| t.set(true));
    let _off = Off;
    f()
}

/// What [`counted`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Made {
    /// Allocations (and growing reallocations).
    pub(crate) count: usize,
    /// Their total size in bytes.
    pub(crate) bytes: usize,
    /// The largest one.
    pub(crate) largest: usize,
}

/// Runs `f` with tracking on and reports the allocations this thread made in it.
pub(crate) fn counted<R>(f: impl FnOnce() -> R) -> (R, Made) {
    let start = (MADE.with(Cell::get), MADE_BYTES.with(Cell::get));
    LARGEST.with(|l| l.set(0));
    let result = tracked(f);
    let made = Made {
        count: MADE.with(Cell::get) - start.0,
        bytes: MADE_BYTES.with(Cell::get) - start.1,
        largest: LARGEST.with(Cell::get),
    };
    (result, made)
}
