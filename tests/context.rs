//! Context ids are unique for the life of the process: exhausting the 64-bit space is
//! refused, never wrapped. (One test in its own binary: it uses up the process's ids.)

use rcu_fence::{FenceError, context_alloc, try_context_alloc};

/// Defect: `context_alloc` used a wrapping `fetch_add`, so a large request wrapped the
/// counter and handed out ids again (even 0, the stub's), and `merge` then treated fences
/// of unrelated timelines as one context.
#[test]
fn context_ids_never_repeat_and_exhaustion_is_refused() {
    let first = context_alloc(1);
    assert!(first > 0);
    // Everything but the last two ids.
    let rest = u64::MAX - first - 2;
    let bulk = try_context_alloc(rest).unwrap();
    assert_eq!(bulk, first + 1);
    assert_eq!(try_context_alloc(3), Err(FenceError::ContextsExhausted));
    // A refused request reserves nothing. (`u64::MAX` itself is never handed out: the
    // counter holds the next id, so it stops one short.)
    let last = context_alloc(1);
    assert_eq!(last, u64::MAX - 1);
    assert_eq!(
        try_context_alloc(0),
        Ok(u64::MAX),
        "n == 0 reserves nothing"
    );
    assert_eq!(try_context_alloc(1), Err(FenceError::ContextsExhausted));
    let refused = std::panic::catch_unwind(|| context_alloc(1));
    assert!(
        refused.is_err(),
        "context_alloc panics rather than repeat an id"
    );
}
