//! A loader batch turned into what one training step reads on the device: the input images (in the
//! step's dtype and memory format, mixup blended) and the soft targets, if the loss takes them.
//! The trainer builds them one batch ahead on a thread of its own (`data::ahead`), so the host-side
//! cast, the pinned copy and the upload overlap the step before.
//!
//! Invariant: the result is the same whichever thread builds it: everything random in a batch was
//! drawn by the loader from (seed, epoch, batch index), and the device kernels used here (cast,
//! mixup, layout) are deterministic.

use super::trainer::batch_tensor;
use crate::data::Batch;
use crate::tensor::MemoryFormat;
use crate::{DType, Device, Result, Tensor};

/// How to build a step's inputs; copied into the preparing thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepInputs {
    pub classes: usize,
    pub label_smoothing: f64,
    /// The loss takes soft targets (label smoothing or mixup on).
    pub soft: bool,
    pub dtype: DType,
    pub device: Device,
    pub channels_last: bool,
}

/// A batch with its images moved to the device (`batch.images` is left empty).
pub(crate) struct PreparedBatch {
    pub batch: Batch,
    /// Images and soft targets; `None` when every sample of the batch was unreadable.
    pub tensors: Option<(Tensor, Option<Tensor>)>,
}

impl StepInputs {
    pub fn prepare(&self, mut batch: Batch) -> Result<PreparedBatch> {
        if batch.labels.is_empty() {
            return Ok(PreparedBatch {
                batch,
                tensors: None,
            });
        }
        let (n, classes, device) = (batch.labels.len(), self.classes, self.device);
        let upload =
            |t: Vec<f32>| Tensor::from_vec(t, [n, classes], Device::Cpu)?.to_device_input(device);
        let images = std::mem::take(&mut batch.images);
        let (mut x, targets) = match (&batch.mixup, device.is_cpu()) {
            // Mixup on the device: the loader left the images unblended; one kernel blends them
            // with their smoothed targets, in f32 like the host blend, before the cast.
            (Some(m), false) => {
                let t = upload(batch.smoothed_targets(classes, self.label_smoothing))?;
                let x = batch_tensor(images, batch.dims, DType::F32, device, true)?;
                let (x, t) = x.mixup(&t, m.lambda, &m.perm)?;
                (x.to_dtype(self.dtype)?, Some(t))
            }
            _ => {
                let targets = match self.soft {
                    true => Some(upload(batch.soft_targets(classes, self.label_smoothing))?),
                    false => None,
                };
                (
                    batch_tensor(images, batch.dims, self.dtype, device, true)?,
                    targets,
                )
            }
        };
        if self.channels_last {
            x = x.to_format(MemoryFormat::ChannelsLast)?;
        }
        Ok(PreparedBatch {
            batch,
            tensors: Some((x, targets)),
        })
    }
}
