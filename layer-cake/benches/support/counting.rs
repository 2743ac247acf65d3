//! A global allocator that counts live heap bytes, so benchmarks report
//! memory exactly rather than read it off the resident set (which also
//! counts allocator slack and freed pages). Shared by the benchmarks with
//! `#[path = "support/counting.rs"] mod counting;`.

use std::sync::atomic::{AtomicIsize, Ordering};

/// Forwards to the system allocator and counts bytes.
pub(crate) struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// The one use of `unsafe` in the project: GlobalAlloc is an unsafe trait by
// definition. It exists only in the benchmarks.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

/// Live heap bytes now.
pub(crate) fn heap_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}
