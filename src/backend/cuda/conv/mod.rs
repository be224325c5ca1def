//! CUDA launchers for `Conv2dForward`, `Conv2dBackwardInput`, `Conv2dBackwardWeight` (cuDNN) and
//! `Conv2dBiasGrad` (`src/ops/conv.rs`; helper kernels in `cuda/conv.cu`).
//!
//! # Design
//!
//! **cuDNN through cudarc's `result`/`sys` layers.** cudarc's safe wrappers keep the raw handle and
//! descriptors private, and the exhaustive search (`cudnnFind*AlgorithmEx`) is only in `sys`, so this
//! file owns small RAII wrappers (`Handle`, `TensorDesc`, `FilterDesc`, `ConvDesc`) over
//! `cudarc::cudnn::result` and calls the convolution entry points directly. Raw descriptors also keep
//! the dtype a run-time value (f16/f32/f64 share one code path).
//!
//! **One `CudnnState` per device**, created on first use by `Gpu::cudnn` (which checks that
//! libcudnn.so.9 can be loaded, else `Error::CudaUnavailable`) and kept behind a `Mutex` (a cuDNN
//! handle must not be used by two threads at once). It holds the handle (bound to the device's single
//! stream), the plan cache and one workspace buffer.
//!
//! **Plans.** A `Plan` is everything a call needs besides pointers: x/w/y descriptors, the convolution
//! descriptor (padding, stride, dilation, group count, compute type, math type), the chosen algorithm
//! and its workspace size. Plans are cached per `PlanKey` = (the full `Conv2dGeometry`, dtype, tensor
//! format, kind ∈ {forward, backward-data, backward-filter}); a repeated shape never creates a
//! descriptor or queries cuDNN again. Each kind has its own convolution descriptor because the math
//! type can be adjusted per chosen algorithm (f16). `conv_cache_stats()` counts hits and misses.
//!
//! **Algorithm choice** (`ENGINE_CUDNN_SEARCH`, read when a plan is built):
//! - `heuristic` (default): `cudnnGet*Algorithm_v7`, first result that succeeded, fits the workspace
//!   limit and has an allowed math type (below).
//! - `exhaustive`: `cudnnFind*AlgorithmEx` on the call's real buffers (inputs are only read; the output
//!   is about to be overwritten anyway) with a temporary scratch workspace as large as the largest
//!   per-algorithm requirement, capped by the limit; the fastest allowed result wins. If the scratch
//!   cannot be allocated, or the search fails (a warning says so), the heuristic is used instead.
//!
//! Either way the plan keeps every other usable result, best first (the search's, then the
//! heuristic's), as fallbacks: if cuDNN refuses a call with the chosen algorithm, or reports no
//! workspace size for it, the plan moves for good to the next one, with a warning, as PyTorch's
//! `try_all` does (`algorithm_fallbacks` in `conv_cache_stats()` counts them). The result arrays are
//! sized by `cudnnGet*AlgorithmMaxCount` (an algorithm is listed once per math type tried).
//!
//! The workspace limit is `ENGINE_CUDNN_WORKSPACE_MB` (default 1024 MiB).
//!
//! **Workspace.** One buffer per device, grown (rounded up to 1 MiB) when a plan needs more and never
//! shrunk, so after warm-up no call allocates. All work is ordered on the one stream, so reusing the
//! buffer across calls is safe.
//!
//! **Dtypes.** Tensors are `CUDNN_DATA_HALF`/`FLOAT`/`DOUBLE`; the compute type is float for f16 and
//! f32, double for f64; alpha/beta are f32 for f16 and f32, f64 for f64. Math type: f16 uses
//! `CUDNN_TENSOR_OP_MATH` (tensor cores, f32 accumulation) and, when a search result reports another
//! math type, takes that one (as PyTorch does); f32 uses `CUDNN_FMA_MATH`, because on Ampere and later
//! `CUDNN_DEFAULT_MATH` permits TF32 for float data, and results with a tensor-op math type are
//! skipped (results stay within f32 tolerance of the CPU backend); f64 uses `CUDNN_DEFAULT_MATH`.
//! Inputs of different dtypes are refused (`run` never produces them for convolutions).
//!
//! **Bias.** Forward bias (and the transposed convolution's bias, carried by `Conv2dBackwardInput`)
//! is written into the output by `conv_fill_bias_*`, then cuDNN runs with beta = 1: the sum happens in
//! cuDNN's epilogue in the compute type and is rounded once. Nothing reads the output before that
//! (beta = 0 calls never read it, as cuDNN documents, so NaN-poisoned outputs are fine).
//! `Conv2dBiasGrad` is `conv_bias_grad_*`: one block per channel, a fixed-order tree, deterministic.
//!
//! **Output sizes that differ from cuDNN's formula.** cuDNN requires the output dims to equal
//! `1 + (H + 2p − d(k − 1) − 1) / s` (floor). The engine's geometry gives `ho`/`wo` explicitly and
//! they may be smaller: a transposed convolution with `output_padding ≥ stride` (allowed when
//! `output_padding < dilation`) is the backward-input of a convolution whose formula output is one or
//! more rows/columns larger than the transposed conv's input. (With `output_padding < stride` the
//! formula gives exactly `ho`, so PyTorch-style output padding needs nothing extra.) Then cuDNN runs at
//! the formula size and `conv_window_*` adapts the tensor: the forward output is cropped to `ho × wo`;
//! for backward-data and backward-filter, `dy` is zero-padded to the formula size (the extra outputs
//! are unused, so their gradient is zero). A geometry whose `ho`/`wo` exceed the formula is refused.
//!
//! **Channels-last.** `Format` (`geom.rs`) is a field of every plan key and is turned into the
//! descriptors' `cudnnTensorFormat_t` in one place (`build_plan`); the filter descriptor takes the same
//! format (NHWC filters are KRSC, which is the weight tensor's own channels-last storage). A kernel
//! struct with `channels_last` set (`Tensor::conv2d` sets it on CUDA for f16/f32 when the input or
//! the weight is channels-last) gets NHWC operands and its launcher passes `Format::Nhwc`:
//! descriptors, algorithm choice and workspace follow from the key, and cuDNN runs its NHWC
//! tensor-core kernels without the internal transposes it needs for f16 in NCHW. The bias fill and
//! bias gradient see NHWC storage as rows of channels (plane = 1); the output window indexes NCHW
//! planes, so a channels-last call that would need one is refused (conv2d never does:
//! its output is cuDNN's size).
//!
//! Invariants: input lengths are checked against the geometry before anything is launched; nothing
//! is launched for an empty batch; every dimension handed to cuDNN fits its `int`; outputs are
//! returned in the inputs' dtype.
//!
//! Files: `geom.rs` (`CuGeom`, `Kind`; no cudarc), `launch.rs` (the `CudaKernel` impls and the
//! helper kernels over the calls of `kernel_abi/conv.rs`; no cudarc, also compiled by the simulated
//! device), `cudnn.rs` (RAII wrappers), `plan.rs` (plan cache, per-device state, algorithm choice),
//! `run.rs` (`convolve`), this file (statistics, module wiring).

use super::{CuResultExt, CudaStorage, Gpu, LIB_ADVICE};
use crate::ops::conv::Conv2dGeometry;
use crate::{DType, Error, Result};
use cudarc::cudnn::{result as cr, sys, CudnnError};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

mod cudnn;
mod geom;
mod launch;
mod plan;
mod run;
use cudnn::*;
use geom::*;
use launch::fill_bias;
pub(crate) use plan::CudnnState;
use plan::*;
use run::*;

// ------------------------------------------------------------------------------------------------
// Statistics

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static SEARCHES: AtomicU64 = AtomicU64::new(0);
static WORKSPACE_GROWS: AtomicU64 = AtomicU64::new(0);
static FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// Process-wide counters of the cuDNN plan cache (all devices together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvCacheStats {
    /// Calls that found their plan (descriptors + algorithm) in the cache.
    pub hits: u64,
    /// Calls that built a plan (descriptors created, algorithm chosen).
    pub misses: u64,
    /// Plans whose algorithm came from an exhaustive `cudnnFind*AlgorithmEx` search.
    pub exhaustive_searches: u64,
    /// Times a device's shared workspace buffer was (re)allocated to a larger size.
    pub workspace_grows: u64,
    /// Calls cuDNN refused with a plan's algorithm, which then moved to its next candidate.
    pub algorithm_fallbacks: u64,
}

/// The current plan-cache counters.
pub fn conv_cache_stats() -> ConvCacheStats {
    ConvCacheStats {
        hits: HITS.load(Ordering::Relaxed),
        misses: MISSES.load(Ordering::Relaxed),
        exhaustive_searches: SEARCHES.load(Ordering::Relaxed),
        workspace_grows: WORKSPACE_GROWS.load(Ordering::Relaxed),
        algorithm_fallbacks: FALLBACKS.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::{CuGeom, Format, Kind, PlanKey};
    use crate::ops::conv::Conv2dGeometry;
    use crate::DType;

    fn geom(h: usize, k: usize, s: usize, p: usize, d: usize, ho: usize) -> Conv2dGeometry {
        Conv2dGeometry {
            n: 2,
            cin: 4,
            h,
            w: h,
            cout: 6,
            kh: k,
            kw: k,
            ho,
            wo: ho,
            stride: (s, s),
            padding: (p, p),
            dilation: (d, d),
            groups: 2,
        }
    }

    #[test]
    fn cudnn_output_extent_and_windowing() {
        // 3x3 s2 p1 on 15: (15 + 2 - 3)/2 + 1 = 8, as the engine computes: no window.
        let g = geom(15, 3, 2, 1, 1, 8);
        let cg = CuGeom::new("t", &g).unwrap();
        assert_eq!((cg.ho, cg.wo, cg.cin_g), (8, 8, 2));
        assert!(!cg.windowed(&g));
        // Transposed k3 s2 p1 output_padding 1 from 7: Ho_t = 14; the conv 14 -> 7 matches.
        let g = geom(14, 3, 2, 1, 1, 7);
        assert!(!CuGeom::new("t", &g).unwrap().windowed(&g));
        // Transposed s1 d2 output_padding 1 from 6: Ho_t = 6 - 1 + 4 + 1 + 1 = 11; the conv 11 -> 7,
        // the geometry says 6: cuDNN runs at 7 and the launchers crop / zero-pad.
        let g = geom(11, 3, 1, 0, 2, 6);
        let cg = CuGeom::new("t", &g).unwrap();
        assert_eq!(cg.ho, 7);
        assert!(cg.windowed(&g));
        // An output larger than the convolution produces, or a kernel larger than the input: refused.
        assert!(CuGeom::new("t", &geom(11, 3, 1, 0, 2, 8)).is_err());
        assert!(CuGeom::new("t", &geom(3, 3, 1, 0, 2, 1)).is_err());
        assert!(CuGeom::new("t", &Conv2dGeometry { groups: 4, ..g }).is_err());
    }

    #[test]
    fn usable_results_keep_cudnn_order_once_each_within_limits() {
        use super::plan::{usable, Algo, RawPerf};
        use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t::*;
        use cudarc::cudnn::sys::cudnnMathType_t::*;
        use cudarc::cudnn::sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS;
        let perf = |algo: u32, status: u32, memory: usize, math: u32| RawPerf {
            algo,
            status,
            time: 0.0,
            memory,
            determinism: 0,
            math_type: math,
            reserved: [0; 3],
        };
        let ok = CUDNN_STATUS_SUCCESS as u32;
        let (tc, dflt) = (CUDNN_TENSOR_OP_MATH as u32, CUDNN_DEFAULT_MATH as u32);
        let perfs = [
            perf(1, ok, 10, tc),
            perf(7, ok, 500, tc),  // over the limit
            perf(6, 9, 0, tc),     // failed
            perf(99, ok, 0, dflt), // no such algorithm
            perf(0, ok, 0, 42),    // no such math type
            perf(1, ok, 10, tc),   // repeated
            perf(1, ok, 10, dflt), // the same algorithm with the other math type
            perf(0, ok, 0, dflt),
        ];
        let f16 = usable(Kind::Forward, DType::F16, &perfs, 100);
        let fwd = |a| Algo::Fwd(a);
        assert_eq!(
            f16,
            vec![
                (
                    fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM),
                    CUDNN_TENSOR_OP_MATH
                ),
                (
                    fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM),
                    CUDNN_DEFAULT_MATH
                ),
                (
                    fwd(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM),
                    CUDNN_DEFAULT_MATH
                ),
            ]
        );
        // f32 never takes tensor-op math (TF32).
        let f32 = usable(Kind::Forward, DType::F32, &perfs, 100);
        assert_eq!(f32, f16[1..].to_vec());
        assert!(usable(Kind::Forward, DType::F16, &perfs, 5).len() == 1);
    }

    #[test]
    fn tensors_of_2_pow_31_elements_are_refused_with_advice() {
        // 512·64·256² = 2³¹ elements: one over cuDNN's limit; one image fits an int.
        let big = |n| Conv2dGeometry {
            n,
            cin: 64,
            cout: 64,
            ..geom(256, 3, 1, 1, 1, 256)
        };
        let err = CuGeom::new("conv2d", &big(512)).unwrap_err();
        assert!(err.to_string().contains("smaller batch"), "{err}");
        let ok = CuGeom::new("conv2d", &big(511)).unwrap();
        assert_eq!((ok.n, ok.ho, ok.wo), (511, 256, 256));
    }

    #[test]
    fn plan_keys_separate_kind_dtype_format() {
        let g = geom(15, 3, 2, 1, 1, 8);
        let k = PlanKey::new(&g, DType::F32, Format::Nchw, Kind::Forward);
        assert_eq!(k, PlanKey::new(&g, DType::F32, Format::Nchw, Kind::Forward));
        assert_ne!(k, PlanKey::new(&g, DType::F16, Format::Nchw, Kind::Forward));
        assert_ne!(k, PlanKey::new(&g, DType::F32, Format::Nhwc, Kind::Forward));
        assert_ne!(
            k,
            PlanKey::new(&g, DType::F32, Format::Nchw, Kind::BackwardData)
        );
        let g2 = Conv2dGeometry { n: 3, ..g };
        assert_ne!(
            k,
            PlanKey::new(&g2, DType::F32, Format::Nchw, Kind::Forward)
        );
    }
}
