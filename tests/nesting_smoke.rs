//! Smoke check: deep nesting on a small stack.
use rcu_fence::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn deep_arrays_small_stack() {
    let h = std::thread::Builder::new().stack_size(256 * 1024).spawn(|| {
        let tl = Timeline::new("leaf");
        let leaf = tl.fence(1);
        let mut top = leaf.clone();
        let depth = 100_000;
        for _ in 0..depth {
            let other = tl.fence(2);
            other.signal().unwrap();
            top = FenceArray::create(vec![top, other], context_alloc(1), 1, false).unwrap();
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        top.add_callback(move |_| { r.fetch_add(1, Ordering::SeqCst); }).unwrap();
        assert!(!top.is_signaled());
        assert_eq!(unwrap(&top).count(), 1);
        leaf.signal().unwrap();
        assert!(top.is_signaled());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        drop(top);
        // never enabled: drop deep
        let mut top = tl.fence(3);
        for _ in 0..depth { top = FenceArray::create(vec![top], context_alloc(1), 1, false).unwrap(); }
        drop(top);
        // chain of arrays
        let mut head: Option<Fence> = None;
        let mut fences = vec![];
        for s in 1..=depth as u64 { let f = tl.fence(s); fences.push(f.clone()); let a = FenceArray::create(vec![f], context_alloc(1), 1, false).unwrap(); head = Some(FenceChain::create(head, a, s)); }
        let head = head.unwrap();
        head.enable_sw_signaling();
        for f in fences.iter().rev() { f.signal().unwrap(); }
        assert!(head.is_signaled());
    }).unwrap();
    h.join().unwrap();
}
