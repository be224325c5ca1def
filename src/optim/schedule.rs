//! Learning-rate schedules as Bag of Tricks uses them: linear warmup from 0 over the first steps, then
//! cosine decay to 0 or step decay by a factor at milestones. Schedules are pure functions of the
//! global step, so a resumed run picks up the exact learning rate.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ScheduleKind {
    /// `lr · ½(1 + cos(π · t))` over the steps after warmup.
    Cosine,
    /// `lr · gamma^k` after the k-th milestone (in steps).
    Step {
        milestones: Vec<usize>,
        gamma: f64,
    },
    Constant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub base_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub kind: ScheduleKind,
}

impl LrSchedule {
    /// Learning rate for 0-based `step`.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            // Linear ramp reaching base_lr at the end of warmup (as GluonCV does).
            return self.base_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match &self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let t = ((step - self.warmup_steps) as f64 / span).min(1.0);
                0.5 * self.base_lr * (1.0 + (std::f64::consts::PI * t).cos())
            }
            ScheduleKind::Step { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| step >= m).count();
                self.base_lr * gamma.powi(passed as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_and_step() {
        let s = LrSchedule {
            base_lr: 0.4,
            warmup_steps: 4,
            total_steps: 104,
            kind: ScheduleKind::Cosine,
        };
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(3) - 0.4).abs() < 1e-12);
        assert!((s.lr(4) - 0.4).abs() < 1e-12);
        assert!(
            (s.lr(54) - 0.2).abs() < 1e-12,
            "half way through the cosine is half the rate"
        );
        assert!(s.lr(104).abs() < 1e-12);
        let st = LrSchedule {
            base_lr: 0.1,
            warmup_steps: 0,
            total_steps: 100,
            kind: ScheduleKind::Step {
                milestones: vec![30, 60],
                gamma: 0.1,
            },
        };
        assert!(
            (st.lr(29) - 0.1).abs() < 1e-12
                && (st.lr(30) - 0.01).abs() < 1e-12
                && (st.lr(99) - 0.001).abs() < 1e-12
        );
    }
}
