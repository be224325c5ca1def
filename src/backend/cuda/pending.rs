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

// Every kernel in src/ops/ and src/optim/ has a CUDA launcher now.
pending!();
