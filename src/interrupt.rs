//! Ctrl-C and early stops for long jobs (the training loops, `engine stylize`).
//!
//! One process-wide handler (a process can install only one): the first Ctrl-C asks the running
//! job to stop at its next safe point (after the current step or batch, with its progress saved),
//! a second one exits at once with status 130. `StopPoint` joins that request with a step budget
//! (`--stop-after-steps`), so every loop asks one question after each step and reports a stop the
//! same way.
//!
//! Invariant: a job that honours a request clears it (`StopPoint::report` or `clear`), so a later
//! job in the same process (tests run several) does not stop at once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler (once per process; later calls do nothing).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\ninterrupt: finishing this step and saving progress (Ctrl-C again to quit now)"
            );
        });
    });
}

/// Whether Ctrl-C was pressed since the last `clear`.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Forgets a handled Ctrl-C.
pub fn clear() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// The flag the handler sets, for code that takes an `&AtomicBool` (the stylize job).
pub fn flag() -> &'static AtomicBool {
    &INTERRUPTED
}

/// Where a training loop stops early: Ctrl-C, or `after_steps` optimiser steps in total.
#[derive(Clone, Copy, Debug)]
pub struct StopPoint {
    after_steps: Option<usize>,
}

impl StopPoint {
    /// Installs the Ctrl-C handler and remembers the step budget.
    pub fn new(after_steps: Option<usize>) -> StopPoint {
        install();
        StopPoint { after_steps }
    }

    /// Whether the loop should stop now, `step` steps having been taken in total.
    pub fn reached(&self, step: usize) -> bool {
        requested() || self.budget_spent(step)
    }

    /// Whether the step budget alone is spent at `step`.
    pub fn budget_spent(&self, step: usize) -> bool {
        self.after_steps.is_some_and(|n| step >= n)
    }

    /// After the stop's checkpoint is written: clears the Ctrl-C request and, if `show`, says
    /// where the run stopped (`unit` is "step" or "iteration") and how to continue.
    pub fn report(&self, unit: &str, step: usize, checkpoint: &Path, show: bool) {
        clear();
        if show {
            eprintln!(
                "stopped at {unit} {step}; checkpoint written to {}; continue with --resume",
                checkpoint.display()
            );
        }
    }
}
