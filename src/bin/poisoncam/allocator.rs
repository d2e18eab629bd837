//! The command line's allocator, set up once at start-up; the examples include this file, so
//! their numbers are the ones the command line gets.
//!
//! A training step frees and reallocates tensors of 10–30 MB. glibc hands those back to the OS,
//! and so does mimalloc by default, a little later: either way the pages fault in again, and the
//! kernel clears each one first (`clear_page_erms`, about a tenth of a 28 px warm-start step in
//! `perf`, 25,000 page faults per 2,048 images against 500 without purging; docs/warm-start.md,
//! 2026-12-05). Memory still peaks where it did; it is only kept once reached.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h, the same in v2 and v3);
/// libmimalloc-sys declares no constant for it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc to keep freed memory for reuse instead of returning it to the OS.
pub fn keep_freed_memory() {
    // SAFETY: mi_option_set stores one value in mimalloc's option table; every option takes any
    // value at any time, and -1 is purge_delay's documented "never purge".
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}
