//! Opt-in wall-time profile of CPU kernels, by kernel name: set `ENGINE_PROFILE=1` and every call
//! through `cpu::run` adds its time (widening, kernel, narrowing) to its kernel's row; `report()`
//! renders the rows, largest first, and `reset()` clears them. Off (one relaxed atomic load per
//! kernel call) unless the variable is set when the first kernel runs. Used by `examples/bench_cpu`
//! to say where a training step's time goes without a sampling profiler.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// 0 = not yet read from the environment, 1 = off, 2 = on.
static STATE: AtomicU8 = AtomicU8::new(0);
static ROWS: Mutex<BTreeMap<&'static str, (u64, Duration)>> = Mutex::new(BTreeMap::new());

/// Whether kernel calls are being timed (`ENGINE_PROFILE` set to anything but `0` or empty).
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        2 => true,
        1 => false,
        _ => {
            let on = std::env::var("ENGINE_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// Adds one call of `name` that took `took`.
pub fn record(name: &'static str, took: Duration) {
    let mut rows = ROWS.lock().unwrap_or_else(|e| e.into_inner());
    let row = rows.entry(name).or_insert((0, Duration::ZERO));
    row.0 += 1;
    row.1 += took;
}

/// Forgets every row (e.g. after warm-up steps).
pub fn reset() {
    ROWS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The rows as a text table, largest total first, with each row's share of the timed total.
pub fn report() -> String {
    let rows = ROWS.lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<_> = rows.iter().map(|(k, &(n, d))| (*k, n, d)).collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.2));
    let total: f64 = v.iter().map(|r| r.2.as_secs_f64()).sum();
    let mut out = format!(
        "{:<32} {:>7} {:>10} {:>6}\n",
        "kernel", "calls", "ms", "share"
    );
    for (name, calls, d) in v {
        let ms = d.as_secs_f64() * 1e3;
        let share = 100.0 * d.as_secs_f64() / total.max(f64::MIN_POSITIVE);
        out += &format!("{name:<32} {calls:>7} {ms:>10.1} {share:>5.1}%\n");
    }
    out += &format!("{:<32} {:>7} {:>10.1}\n", "total", "", total * 1e3);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_orders_rows_by_time_and_sums_them() {
        reset();
        record("small", Duration::from_millis(1));
        record("big", Duration::from_millis(3));
        record("big", Duration::from_millis(3));
        let r = report();
        let big = r.find("big").unwrap();
        let small = r.find("small").unwrap();
        assert!(big < small, "{r}");
        assert!(r.contains("      2"), "two calls of big: {r}");
        assert!(r.contains("7.0"), "total 7 ms: {r}");
        reset();
        assert!(!report().contains("big"));
    }
}
