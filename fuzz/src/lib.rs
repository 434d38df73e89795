//! What the fuzz targets share: an allocator that counts, so a target can
//! assert how much memory a parser took for one input, and small helpers to
//! cut one fuzz input into several.
//!
//! The properties themselves live in the targets (`fuzz_targets/`), each
//! named in a comment; FUZZING.md lists them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting live bytes and their high-water mark.
/// libFuzzer's own (C++) allocations do not pass through it: only what the
/// Rust code under test allocates is counted.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters
// are updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as if old and new were live at once, as they may be.
            grow(new_size);
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it had allocated
/// at any one time (beyond what was live before it started). The result
/// itself is still live when the peak is read, so it is counted.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let r = f();
    let peak = PEAK.load(Relaxed).saturating_sub(base);
    (r, peak)
}

/// With `FUZZ_REPORT_PEAK` set, prints each new highest `peak` (bytes
/// held at once) and each new highest ratio of `peak` to `size` (the input
/// bytes it was for): how the figures in FUZZING.md were measured.
pub fn report_peak(peak: usize, size: usize) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static MAX: AtomicUsize = AtomicUsize::new(0);
    static MAX_RATIO: AtomicUsize = AtomicUsize::new(0);
    if !*ON.get_or_init(|| std::env::var_os("FUZZ_REPORT_PEAK").is_some()) {
        return;
    }
    if peak > MAX.fetch_max(peak, Relaxed) {
        eprintln!("peak: new highest {peak} bytes (input {size} bytes)");
    }
    let ratio = peak / size.max(1);
    if ratio > MAX_RATIO.fetch_max(ratio, Relaxed) {
        eprintln!("peak: new highest ratio {ratio} bytes per input byte ({peak} for {size})");
    }
}

/// Splits `data` at the first `sep`: (before, after), or (all, empty).
pub fn split2<'a>(data: &'a [u8], sep: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (&data[..i], &data[i + sep.len()..]),
        None => (data, &[]),
    }
}

/// Whether two JSON values are the same but for the last bits of floats.
/// serde_json (without its `float_roundtrip` feature, which hapgent leaves
/// off to stay small) may parse the shortest rendering of a float one unit
/// in the last place away from it; no field of the control protocol or
/// the state file is a float, so that is all the slack allowed.
pub fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 2.0 * f64::EPSILON * x.abs(),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_json(vx, vy))
        }
        _ => a == b,
    }
}
