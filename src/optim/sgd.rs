//! SGD with momentum (optionally Nesterov), weight decay that can skip biases and BN γ/β ("no bias
//! decay"), FP32 master weights for FP16 parameters, and loss-scale aware steps that are skipped
//! when any gradient is inf/NaN. The update rule is PyTorch's `torch.optim.SGD`:
//!   d = g/scale + wd·p;  buf = μ·buf + d (buf = d on the first step);  d = d + μ·buf (Nesterov) or buf;
//!   p = p − lr·d.
//! On the CPU (and for f64 parameters) a step runs `SgdStep` once per parameter tensor, after
//! `grads_finite` has checked every gradient. When every parameter lives on one CUDA device, the
//! whole step is one multi-tensor launch pair per gradient dtype instead
//! (`backend::cuda::multi_tensor_sgd_step`: finiteness check, update in place of the f32 masters and
//! momentum buffers, f16 copies refreshed), the same rule in f32; `set_multi_tensor(false)` (or
//! `ENGINE_MULTI_TENSOR_SGD=0` in the environment) keeps the per-tensor path.

use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::nn::{Param, ParamKind};
use crate::ops::apply;
use crate::{DType, Device, GradStore, Result, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Exempt biases and BN γ/β from weight decay (Bag of Tricks §3.1).
    pub no_bias_decay: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-4,
            no_bias_decay: true,
        }
    }
}

/// One parameter's update: inputs `[p (f32 master), g, buf]`, outputs `[p', buf']`.
pub struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub inv_scale: f64,
    pub first_step: bool,
}

impl CpuKernel for SgdStep {
    const NAME: &'static str = "sgd_step";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (p, g, buf) = (inputs[0], inputs[1], inputs[2]);
        let (lr, mu, wd, inv) = (
            T::c(self.lr),
            T::c(self.momentum),
            T::c(self.weight_decay),
            T::c(self.inv_scale),
        );
        let mut p_out = vec![T::zero(); p.len()];
        let mut b_out = vec![T::zero(); p.len()];
        p_out
            .par_iter_mut()
            .zip(b_out.par_iter_mut())
            .enumerate()
            .with_min_len(4096)
            .for_each(|(i, (po, bo))| {
                let d = g[i] * inv + wd * p[i];
                let b = if self.first_step { d } else { mu * buf[i] + d };
                let step = if self.nesterov { d + mu * b } else { b };
                *bo = b;
                *po = p[i] - lr * step;
            });
        Ok(vec![p_out, b_out])
    }
}

/// 1 when every element is finite, else 0.
pub struct AllFinite;
impl CpuKernel for AllFinite {
    const NAME: &'static str = "all_finite";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let ok = inputs[0].par_iter().all(|v| v.is_finite());
        Ok(vec![vec![if ok { T::one() } else { T::zero() }]])
    }
}

/// A one-element f32 tensor on `t`'s device: 1 when every element of `t` is finite, else 0.
pub(crate) fn finite_flag(t: &Tensor) -> Result<Tensor> {
    crate::ops::apply1(&AllFinite, &[t], vec![1].into(), DType::F32)
}

/// True when every element of `t` is finite.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    Ok(finite_flag(t)?.to_scalar()? == 1.0)
}

/// One parameter of a multi-tensor step (`backend::cuda::multi_tensor_sgd_step`), all on one CUDA
/// device and updated in place: `master` (f32: the parameter itself when it is f32) and `momentum`
/// (f32, not read when `first`); `grad` (f16 or f32, the master's memory format); `param_f16`, the
/// f16 parameter refreshed from the new master, if the parameter is f16.
pub struct MultiTensorSlot<'a> {
    pub master: &'a Tensor,
    pub momentum: &'a Tensor,
    pub grad: &'a Tensor,
    pub param_f16: Option<&'a Tensor>,
    pub weight_decay: f64,
    pub first: bool,
}

/// The step-wide scalars of a multi-tensor step.
pub struct MultiTensorHyper {
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub inv_scale: f64,
}

struct Slot {
    name: String,
    param: Param,
    /// f32 copy of an f16 parameter (None when the parameter is f32 or f64 itself).
    master: Option<Tensor>,
    momentum: Option<Tensor>,
}

pub struct Sgd {
    pub config: SgdConfig,
    slots: Vec<Slot>,
    /// Use the multi-tensor CUDA step when every parameter is on one CUDA device (default true).
    multi_tensor: bool,
}

impl Sgd {
    /// Takes the trainable parameters of a model (`nn::named_params`).
    pub fn new(params: Vec<(String, Param)>, config: SgdConfig) -> Result<Sgd> {
        let mut slots = Vec::new();
        for (name, param) in params.into_iter().filter(|(_, p)| p.kind.trainable()) {
            let master = super::f32_master(&param)?;
            slots.push(Slot {
                name,
                param,
                master,
                momentum: None,
            });
        }
        Ok(Sgd {
            config,
            slots,
            // The GPU machines have no cargo: a run there can switch the fused step off.
            multi_tensor: std::env::var("ENGINE_MULTI_TENSOR_SGD").map_or(true, |v| v != "0"),
        })
    }

    /// Whether steps on CUDA parameters run as one multi-tensor launch (default) or per tensor.
    pub fn set_multi_tensor(&mut self, on: bool) {
        self.multi_tensor = on;
    }

    fn decay_for(&self, kind: ParamKind) -> f64 {
        super::decay_for(kind, self.config.weight_decay, self.config.no_bias_decay)
    }

    /// Applies one step with learning rate `lr` to gradients of a loss multiplied by `loss_scale`.
    /// Returns false, changing nothing, when any gradient is inf or NaN.
    pub fn step(&mut self, grads: &GradStore, lr: f64, loss_scale: f64) -> Result<bool> {
        let _g = crate::NoGradGuard::new();
        if let Some(applied) = self.multi_tensor_step(grads, lr, loss_scale)? {
            return Ok(applied);
        }
        if !super::grads_finite(self.slots.iter().map(|s| &s.param), grads)? {
            return Ok(false);
        }
        for i in 0..self.slots.len() {
            let wd = self.decay_for(self.slots[i].param.kind);
            let s = &mut self.slots[i];
            let Some(g) = grads.get(&s.param.tensor) else {
                continue;
            };
            let p = s.master.clone().unwrap_or_else(|| s.param.tensor.detach());
            let first = s.momentum.is_none();
            let buf = match &s.momentum {
                Some(b) => b.clone(),
                None => Tensor::zeros(p.shape().clone(), p.dtype(), p.device())?,
            };
            let k = SgdStep {
                lr,
                momentum: self.config.momentum,
                nesterov: self.config.nesterov,
                weight_decay: wd,
                inv_scale: 1.0 / loss_scale,
                first_step: first,
            };
            let out = apply(
                &k,
                &[&p, g, &buf],
                &[
                    (p.shape().clone(), p.dtype()),
                    (p.shape().clone(), p.dtype()),
                ],
            )?;
            match &s.master {
                Some(m) => {
                    m.assign(&out[0])?;
                    s.param.tensor.assign(&out[0])?;
                }
                None => s.param.tensor.assign(&out[0])?,
            }
            s.momentum = Some(out[1].clone());
        }
        Ok(true)
    }

    /// The whole step as one multi-tensor CUDA launch (see the module docs), or `None` when it does
    /// not apply: switched off, a parameter not on the first one's CUDA device, or an f64 parameter.
    fn multi_tensor_step(
        &mut self,
        grads: &GradStore,
        lr: f64,
        loss_scale: f64,
    ) -> Result<Option<bool>> {
        let Some(Device::Cuda(ordinal)) = self.slots.first().map(|s| s.param.tensor.device())
        else {
            return Ok(None);
        };
        let fits = |t: &Tensor| {
            t.device() == Device::Cuda(ordinal) && matches!(t.dtype(), DType::F16 | DType::F32)
        };
        if !self.multi_tensor
            || !self.slots.iter().all(|s| {
                fits(&s.param.tensor) && grads.get(&s.param.tensor).is_none_or(|g| fits(g))
            })
        {
            return Ok(None);
        }
        // Momentum buffers for first steps (not read by the kernel) and gradients in the master's
        // memory format, kept alive for the launch.
        let mut fresh: Vec<Option<Tensor>> = Vec::with_capacity(self.slots.len());
        let mut grads_in_format: Vec<Option<Tensor>> = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let master = s.master.as_ref().unwrap_or(&s.param.tensor);
            let g = grads.get(&s.param.tensor);
            fresh.push(match (&s.momentum, g) {
                // In the master's memory format: the kernel pairs elements by storage order.
                (None, Some(_)) => Some(
                    Tensor::zeros(master.shape().clone(), DType::F32, master.device())?
                        .to_format(master.format())?,
                ),
                _ => None,
            });
            grads_in_format.push(match g {
                Some(g) if g.format() != master.format() => Some(g.to_format(master.format())?),
                _ => None,
            });
        }
        let mut batch = Vec::with_capacity(self.slots.len());
        for (i, s) in self.slots.iter().enumerate() {
            let Some(g) = grads.get(&s.param.tensor) else {
                continue;
            };
            let master = s.master.as_ref().unwrap_or(&s.param.tensor);
            batch.push(MultiTensorSlot {
                master,
                momentum: s
                    .momentum
                    .as_ref()
                    .or(fresh[i].as_ref())
                    .expect("set above"),
                grad: grads_in_format[i].as_ref().unwrap_or(g),
                param_f16: s.master.as_ref().map(|_| &s.param.tensor),
                weight_decay: self.decay_for(s.param.kind),
                first: s.momentum.is_none(),
            });
        }
        let hp = MultiTensorHyper {
            lr,
            momentum: self.config.momentum,
            nesterov: self.config.nesterov,
            inv_scale: 1.0 / loss_scale,
        };
        let applied = crate::backend::cuda::multi_tensor_sgd_step(ordinal, &batch, &hp)?;
        drop(batch);
        if applied {
            for (s, m) in self.slots.iter_mut().zip(fresh) {
                if m.is_some() {
                    s.momentum = m;
                }
            }
        }
        Ok(Some(applied))
    }

    /// Optimiser state for checkpoints: `<param>.momentum_buffer` and `<param>.master` tensors.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for s in &self.slots {
            if let Some(b) = &s.momentum {
                v.push((format!("{}.momentum_buffer", s.name), b.clone()));
            }
            if let Some(m) = &s.master {
                v.push((format!("{}.master", s.name), m.clone()));
            }
        }
        v
    }

    /// Restores state written by `state_tensors` (missing buffers mean "no step taken yet").
    pub fn load_state_tensors(
        &mut self,
        tensors: &std::collections::BTreeMap<String, Tensor>,
    ) -> Result<()> {
        for s in &mut self.slots {
            if let Some(b) = tensors.get(&format!("{}.momentum_buffer", s.name)) {
                // In the master's dtype and memory format (the multi-tensor kernel pairs elements
                // by storage order; files hold contiguous tensors).
                let master = s.master.as_ref().unwrap_or(&s.param.tensor);
                s.momentum = Some(
                    b.to_dtype(master.dtype())?
                        .to_device(master.device())?
                        .to_format(master.format())?,
                );
            }
            if let (Some(m), Some(saved)) = (&s.master, tensors.get(&format!("{}.master", s.name)))
            {
                m.assign(saved)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Device;

    /// Reference values computed by hand from torch.optim.SGD's documented rule.
    #[test]
    fn matches_pytorch_rule_with_nesterov_and_no_bias_decay() {
        let w = Param::new(
            Tensor::from_vec(vec![1.0f32, -2.0], [2], Device::Cpu).unwrap(),
            ParamKind::Weight,
        );
        let b = Param::new(
            Tensor::from_vec(vec![0.5f32], [1], Device::Cpu).unwrap(),
            ParamKind::Bias,
        );
        let mut opt = Sgd::new(
            vec![("w".into(), w.clone()), ("b".into(), b.clone())],
            SgdConfig {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.1,
                no_bias_decay: true,
            },
        )
        .unwrap();
        let mut grads = GradStore::default();
        grads.insert(
            &w.tensor,
            Tensor::from_vec(vec![0.2f32, 0.4], [2], Device::Cpu).unwrap(),
        );
        grads.insert(
            &b.tensor,
            Tensor::from_vec(vec![1.0f32], [1], Device::Cpu).unwrap(),
        );
        assert!(opt.step(&grads, 0.5, 2.0).unwrap());
        // w: d = g/2 + 0.1·w = [0.2, 0.0]; buf = d; step = d + 0.9·buf = [0.38, 0]; w = [1 − 0.19, −2].
        let wv = w.tensor.to_vec::<f32>().unwrap();
        assert!(
            (wv[0] - 0.81).abs() < 1e-6 && (wv[1] + 2.0).abs() < 1e-6,
            "{wv:?}"
        );
        // b: no decay: d = 0.5; step = 0.95; b = 0.5 − 0.475.
        assert!((b.tensor.to_vec::<f32>().unwrap()[0] - 0.025).abs() < 1e-6);
        // Second step uses the momentum buffer: w0: d = 0.1 + 0.081 = 0.181; buf = 0.9·0.2 + 0.181 = 0.361;
        // step = 0.181 + 0.9·0.361 = 0.5059; w0 = 0.81 − 0.25295.
        assert!(opt.step(&grads, 0.5, 2.0).unwrap());
        assert!((w.tensor.to_vec::<f32>().unwrap()[0] - (0.81 - 0.25295)).abs() < 1e-5);
    }

    #[test]
    fn skips_steps_with_non_finite_gradients_and_keeps_f32_masters() {
        let w = Param::new(
            Tensor::from_vec(vec![half::f16::from_f32(1.0); 3], [3], Device::Cpu).unwrap(),
            ParamKind::Weight,
        );
        let mut opt = Sgd::new(
            vec![("w".into(), w.clone())],
            SgdConfig {
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0,
                no_bias_decay: true,
            },
        )
        .unwrap();
        let mut grads = GradStore::default();
        grads.insert(
            &w.tensor,
            Tensor::from_vec(
                vec![
                    half::f16::from_f32(1.0),
                    half::f16::INFINITY,
                    half::f16::from_f32(0.0),
                ],
                [3],
                Device::Cpu,
            )
            .unwrap(),
        );
        assert!(!opt.step(&grads, 0.1, 1.0).unwrap());
        assert_eq!(
            w.tensor.to_vec::<f32>().unwrap(),
            vec![1.0; 3],
            "a skipped step changes nothing"
        );
        // 1e-4 steps are below f16's resolution at 1.0 (2^-10) but accumulate in the f32 master.
        grads.insert(
            &w.tensor,
            Tensor::from_vec(vec![half::f16::from_f32(1.0); 3], [3], Device::Cpu).unwrap(),
        );
        for _ in 0..10 {
            assert!(opt.step(&grads, 1e-4, 1.0).unwrap());
        }
        let m = opt
            .state_tensors()
            .into_iter()
            .find(|(n, _)| n == "w.master")
            .unwrap()
            .1
            .to_vec::<f32>()
            .unwrap();
        assert!((m[0] - 0.999).abs() < 1e-6, "{m:?}");
        assert!((w.tensor.to_vec::<f32>().unwrap()[0] - 0.999).abs() < 1e-3);
    }
}
