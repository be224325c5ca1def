//! Optimisers (SGD for classifiers, Adam for the AdaIN decoder and pix2pix), learning-rate schedules and dynamic loss scaling.

pub mod adam;
pub mod loss_scale;
pub mod schedule;
pub mod sgd;

pub use adam::{Adam, AdamConfig};
pub use loss_scale::DynamicLossScaler;
pub use schedule::{LrSchedule, ScheduleKind};
pub use sgd::{Sgd, SgdConfig};

use crate::nn::{Param, ParamKind};
use crate::{DType, Device, GradStore, Result, Tensor};

/// The f32 master copy an optimiser keeps of an f16 parameter (None for f32/f64 parameters).
pub(crate) fn f32_master(param: &Param) -> Result<Option<Tensor>> {
    Ok(if param.tensor.dtype() == DType::F16 {
        Some(param.tensor.detach().to_dtype(DType::F32)?)
    } else {
        None
    })
}

/// The weight decay a parameter of `kind` gets: none for biases and norm γ/β with `no_bias_decay`.
pub(crate) fn decay_for(kind: ParamKind, weight_decay: f64, no_bias_decay: bool) -> f64 {
    if no_bias_decay && kind != ParamKind::Weight {
        0.0
    } else {
        weight_decay
    }
}

/// True when every gradient the store holds for these parameters is finite (an optimiser skips the
/// whole step otherwise). The flags of gradients on a CUDA device are summed there and read back
/// once per device: each read waits for the device's queue to drain, and an optimiser has one
/// gradient per parameter tensor (about 80 in the pix2pix pair).
pub(crate) fn grads_finite<'a>(
    params: impl Iterator<Item = &'a Param>,
    grads: &GradStore,
) -> Result<bool> {
    let mut on_device: Vec<Tensor> = Vec::new();
    for p in params {
        if let Some(g) = grads.get(&p.tensor) {
            if g.device().is_cpu() {
                if !sgd::all_finite(g)? {
                    return Ok(false);
                }
            } else {
                on_device.push(sgd::finite_flag(g)?);
            }
        }
    }
    let mut devices: Vec<Device> = on_device.iter().map(|f| f.device()).collect();
    devices.sort_by_key(|d| d.to_string());
    devices.dedup();
    for d in devices {
        let flags: Vec<&Tensor> = on_device.iter().filter(|f| f.device() == d).collect();
        let finite = Tensor::concat(&flags, 0)?.sum_all()?.to_scalar()?;
        if finite != flags.len() as f64 {
            return Ok(false);
        }
    }
    Ok(true)
}
