//! Kernels with no CUDA launcher yet: each gets the default `CudaKernel::launch`, which returns
//! `Error::NotImplemented { op, device: "cuda" }`. This is the ONE list of them: to add a launcher,
//! remove the type from the `pending!` list and implement `CudaKernel` in the file named after its op
//! (`src/backend/cuda/<op>.rs`, kernels in `cuda/<op>.cu`). Every `CpuKernel` must appear either here
//! or in such a file, or a `--features cuda` build fails (`Kernel` needs both halves).

#[allow(unused_imports)]
use super::CudaKernel;

/// `pending!(crate::ops::conv::Conv2d, …)` gives each listed kernel the not-implemented default.
macro_rules! pending {
    ($($kernel:ty),* $(,)?) => {
        $(impl CudaKernel for $kernel {})*
    };
}

pending!(
    crate::ops::batch_norm::BatchNormBackward,
    crate::ops::batch_norm::BatchNormForward,
    crate::ops::dropout::MaskScale,
    crate::ops::pool::AvgPool2d,
    crate::ops::pool::AvgPool2dBackward,
    crate::ops::pool::GlobalAvgPool,
    crate::ops::pool::GlobalAvgPoolBackward,
    crate::ops::pool::MaxPool2d,
    crate::ops::pool::MaxPool2dBackward,
    crate::ops::resize::Pad2d,
    crate::ops::resize::Pad2dBackward,
    crate::ops::resize::UpsampleNearest2d,
    crate::ops::resize::UpsampleNearest2dBackward,
);
