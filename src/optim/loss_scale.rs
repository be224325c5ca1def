//! Dynamic loss scaling for FP16 training: the loss is multiplied by `scale` before backward; a step
//! whose gradients hold an inf or NaN is skipped and the scale halved; after `growth_interval` clean
//! steps in a row the scale doubles. (PyTorch's GradScaler defaults: 2^16, ×2, ×0.5, 2000.)

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DynamicLossScaler {
    pub scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: usize,
    pub clean_steps: usize,
    /// Below this the run cannot recover (gradients are NaN at any scale): training stops with an error.
    pub min_scale: f64,
}

impl Default for DynamicLossScaler {
    fn default() -> Self {
        DynamicLossScaler {
            scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            clean_steps: 0,
            min_scale: 1.0 / 65536.0,
        }
    }
}

impl DynamicLossScaler {
    /// A scaler that never scales (FP32 training): scale 1, never changes.
    pub fn disabled() -> Self {
        DynamicLossScaler {
            scale: 1.0,
            growth_factor: 1.0,
            backoff_factor: 1.0,
            growth_interval: usize::MAX,
            clean_steps: 0,
            min_scale: 0.0,
        }
    }

    /// Records a step's outcome: `finite` = all gradients were finite. Returns false when the scale
    /// has fallen below `min_scale`.
    pub fn update(&mut self, finite: bool) -> bool {
        if finite {
            self.clean_steps += 1;
            if self.clean_steps >= self.growth_interval {
                self.scale *= self.growth_factor;
                self.clean_steps = 0;
            }
        } else {
            self.scale *= self.backoff_factor;
            self.clean_steps = 0;
        }
        self.scale >= self.min_scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_overflow_and_grows_after_clean_steps() {
        let mut s = DynamicLossScaler {
            growth_interval: 3,
            ..Default::default()
        };
        assert!(s.update(false));
        assert_eq!(s.scale, 32768.0);
        s.update(true);
        s.update(true);
        assert_eq!(s.scale, 32768.0);
        s.update(true);
        assert_eq!(s.scale, 65536.0);
        let mut tiny = DynamicLossScaler {
            scale: 1.0 / 65536.0,
            ..Default::default()
        };
        assert!(
            !tiny.update(false),
            "falling below the minimum scale is reported"
        );
    }
}
