//! Adam (Kingma & Ba 2015) as `torch.optim.Adam` computes it, for the AdaIN decoder and pix2pix:
//!   g = g/scale + wd·p;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
//!   p = p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε).
//! Like `Sgd`: f32 master weights for f16 parameters, the whole step skipped (returns false) when any
//! gradient is inf/NaN, weight decay optionally skipped for biases and norm parameters, state saved as
//! `<param>.exp_avg`, `<param>.exp_avg_sq`, `<param>.master` plus a `step` counter for checkpoints.
//! The CUDA backend runs the same `AdamStep` kernel struct (`cuda/adam.cu`).

use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::nn::{Param, ParamKind};
use crate::ops::apply;
use crate::{Device, Error, GradStore, Result, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// L2 penalty added to the gradient (PyTorch's `weight_decay` of Adam, not AdamW).
    pub weight_decay: f64,
    /// Exempt biases and norm γ/β from weight decay.
    pub no_bias_decay: bool,
}

impl Default for AdamConfig {
    /// PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            no_bias_decay: true,
        }
    }
}

/// One parameter's update: inputs `[p (master), g, m, v]`, outputs `[p', m', v']`. The bias
/// corrections of step t are computed on the host (`bias1 = 1 − β1^t`, `bias2 = 1 − β2^t`).
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub inv_scale: f64,
    pub bias1: f64,
    pub bias2: f64,
}

impl CpuKernel for AdamStep {
    const NAME: &'static str = "adam_step";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (p, g, m, v) = (inputs[0], inputs[1], inputs[2], inputs[3]);
        let (b1, b2, wd, inv, eps) = (
            T::c(self.beta1),
            T::c(self.beta2),
            T::c(self.weight_decay),
            T::c(self.inv_scale),
            T::c(self.eps),
        );
        let step_size = T::c(self.lr / self.bias1);
        let sqrt_bias2 = T::c(self.bias2.sqrt());
        let n = p.len();
        let mut out = vec![vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]];
        let [po, mo, vo] = &mut out[..] else {
            unreachable!()
        };
        po.par_iter_mut()
            .zip(mo.par_iter_mut())
            .zip(vo.par_iter_mut())
            .enumerate()
            .with_min_len(4096)
            .for_each(|(i, ((po, mo), vo))| {
                let d = g[i] * inv + wd * p[i];
                let mi = b1 * m[i] + (T::one() - b1) * d;
                let vi = b2 * v[i] + (T::one() - b2) * d * d;
                *mo = mi;
                *vo = vi;
                *po = p[i] - step_size * mi / (vi.sqrt() / sqrt_bias2 + eps);
            });
        Ok(out)
    }
}

struct Slot {
    name: String,
    param: Param,
    /// f32 copy of an f16 parameter (None when the parameter is f32 or f64 itself).
    master: Option<Tensor>,
    /// First and second moments, created on the first step.
    moments: Option<(Tensor, Tensor)>,
}

pub struct Adam {
    pub config: AdamConfig,
    slots: Vec<Slot>,
    /// Steps taken (skipped steps do not count), for the bias corrections.
    steps: u64,
}

impl Adam {
    /// Takes the trainable parameters of a model (`nn::named_params`); buffers are ignored.
    pub fn new(params: Vec<(String, Param)>, config: AdamConfig) -> Result<Adam> {
        let mut slots = Vec::new();
        for (name, param) in params.into_iter().filter(|(_, p)| p.kind.trainable()) {
            let master = super::f32_master(&param)?;
            slots.push(Slot {
                name,
                param,
                master,
                moments: None,
            });
        }
        Ok(Adam {
            config,
            slots,
            steps: 0,
        })
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn decay_for(&self, kind: ParamKind) -> f64 {
        super::decay_for(kind, self.config.weight_decay, self.config.no_bias_decay)
    }

    /// One step with learning rate `lr` on gradients of a loss multiplied by `loss_scale`. Returns
    /// false, changing nothing, when any gradient is inf or NaN. Parameters without a gradient
    /// (unused in this step) keep their values and moments.
    pub fn step(&mut self, grads: &GradStore, lr: f64, loss_scale: f64) -> Result<bool> {
        let _g = crate::NoGradGuard::new();
        if !super::grads_finite(self.slots.iter().map(|s| &s.param), grads)? {
            return Ok(false);
        }
        self.steps += 1;
        let t = self.steps as i32;
        let (bias1, bias2) = (
            1.0 - self.config.beta1.powi(t),
            1.0 - self.config.beta2.powi(t),
        );
        for i in 0..self.slots.len() {
            let wd = self.decay_for(self.slots[i].param.kind);
            let s = &mut self.slots[i];
            let Some(g) = grads.get(&s.param.tensor) else {
                continue;
            };
            let p = s.master.clone().unwrap_or_else(|| s.param.tensor.detach());
            let (m, v) = match &s.moments {
                Some(mv) => mv.clone(),
                None => {
                    let z = Tensor::zeros(p.shape().clone(), p.dtype(), p.device())?;
                    (z.clone(), z)
                }
            };
            let k = AdamStep {
                lr,
                beta1: self.config.beta1,
                beta2: self.config.beta2,
                eps: self.config.eps,
                weight_decay: wd,
                inv_scale: 1.0 / loss_scale,
                bias1,
                bias2,
            };
            let spec = (p.shape().clone(), p.dtype());
            let out = apply(&k, &[&p, g, &m, &v], &[spec.clone(), spec.clone(), spec])?;
            if let Some(master) = &s.master {
                master.assign(&out[0])?;
            }
            s.param.tensor.assign(&out[0])?;
            s.moments = Some((out[1].clone(), out[2].clone()));
        }
        Ok(true)
    }

    /// Optimiser state for checkpoints: `<param>.exp_avg`, `<param>.exp_avg_sq`, `<param>.master`,
    /// and `step` (a one-element f64 tensor).
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut v = vec![(
            "step".to_string(),
            Tensor::from_vec(vec![self.steps as f64], [1], Device::Cpu)?,
        )];
        for s in &self.slots {
            if let Some((m, sq)) = &s.moments {
                v.push((format!("{}.exp_avg", s.name), m.clone()));
                v.push((format!("{}.exp_avg_sq", s.name), sq.clone()));
            }
            if let Some(m) = &s.master {
                v.push((format!("{}.master", s.name), m.clone()));
            }
        }
        Ok(v)
    }

    /// Restores state written by `state_tensors`.
    pub fn load_state_tensors(&mut self, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
        let steps = tensors
            .get("step")
            .ok_or_else(|| Error::Msg("Adam state has no `step` counter".into()))?
            .to_scalar()?;
        self.steps = steps as u64;
        for s in &mut self.slots {
            let dtype = s
                .master
                .as_ref()
                .map_or(s.param.tensor.dtype(), |m| m.dtype());
            let device = s.param.tensor.device();
            let m = tensors.get(&format!("{}.exp_avg", s.name));
            let sq = tensors.get(&format!("{}.exp_avg_sq", s.name));
            s.moments = match (m, sq) {
                (Some(m), Some(sq)) => Some((
                    m.to_dtype(dtype)?.to_device(device)?,
                    sq.to_dtype(dtype)?.to_device(device)?,
                )),
                _ => None,
            };
            if let (Some(m), Some(saved)) = (&s.master, tensors.get(&format!("{}.master", s.name)))
            {
                m.assign(saved)?;
            }
        }
        Ok(())
    }
}
