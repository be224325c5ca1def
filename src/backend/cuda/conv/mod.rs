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
//!   cannot be allocated the heuristic is used instead.
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
//! **Channels-last.** `Format` is a field of every plan key and is turned into the descriptors'
//! `cudnnTensorFormat_t` in one place (`build_plan`); the filter descriptor takes the same format
//! (NHWC filters are KRSC). Kernels receive contiguous NCHW storage today, so launchers pass
//! `Format::Nchw`. When a kernel receives channels-last storage (the tensor's `MemoryFormat`), its
//! launcher passes `Format::Nhwc` instead: descriptors, algorithm choice and workspace follow from the
//! key, and cuDNN then runs its NHWC tensor-core kernels without the internal transposes it needs for
//! f16 in NCHW. The helper kernels index NCHW and would need NHWC variants (bias channel
//! = `i % c`; bias grad strided by `c`; window over `[n, h, w, c]`).
//!
//! Invariants: input lengths are checked against the geometry before anything is launched; nothing
//! is launched for an empty batch; every dimension handed to cuDNN fits its `int`; outputs are
//! returned in the inputs' dtype.
//!
//! Files: `cudnn.rs` (RAII wrappers, `CuGeom`), `plan.rs` (plan cache, per-device state, algorithm
//! choice), `run.rs` (`convolve`), this file (statistics, helper-kernel launchers over the calls of
//! `kernel_abi/conv.rs`, the `CudaKernel` impls).

use super::batch_norm::check_len;
use super::{gpu, CuResultExt, CudaKernel, CudaStorage, Gpu, LIB_ADVICE};
use crate::backend::kernel_abi::conv::{self as conv_abi, bias_grad_launch};
use crate::ops::conv::{
    Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dBiasGrad, Conv2dForward, Conv2dGeometry,
};
use crate::{DType, Error, Result};
use cudarc::cudnn::{result as cr, sys, CudnnError};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

mod cudnn;
mod plan;
mod run;
use cudnn::*;
pub(crate) use plan::CudnnState;
use plan::*;
use run::*;

// ------------------------------------------------------------------------------------------------
// Statistics

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static SEARCHES: AtomicU64 = AtomicU64::new(0);
static WORKSPACE_GROWS: AtomicU64 = AtomicU64::new(0);

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
}

/// The current plan-cache counters.
pub fn conv_cache_stats() -> ConvCacheStats {
    ConvCacheStats {
        hits: HITS.load(Ordering::Relaxed),
        misses: MISSES.load(Ordering::Relaxed),
        exhaustive_searches: SEARCHES.load(Ordering::Relaxed),
        workspace_grows: WORKSPACE_GROWS.load(Ordering::Relaxed),
    }
}

// ------------------------------------------------------------------------------------------------
// Helper kernels (cuda/conv.cu; their calls and the bias gradient's grid from kernel_abi/conv.rs)

/// `y[i] = bias[(i / plane) % c]` over `y` (`len` a multiple of `c·plane`).
fn fill_bias(
    g: &Gpu,
    op: &'static str,
    bias: &CudaStorage,
    y: &mut CudaStorage,
    c: usize,
    plane: usize,
) -> Result<()> {
    let total = y.len();
    if total == 0 {
        return Ok(());
    }
    check_len(op, "bias", bias, c)?;
    let call = conv_abi::fill_bias(y.dtype(), total, plane, c, bias.dptr(g), y.dptr_mut(g));
    // SAFETY: bias holds c elements (checked), y `total`; the kernel reads bias[(i / plane) % c].
    unsafe { g.launch(&call, g.grid(total)) }?;
    Ok(())
}

/// Copies planes `[hs, ws]` of `src` into planes `[hd, wd]` of a new buffer, top-left aligned,
/// cropping or zero-filling.
#[allow(clippy::too_many_arguments)]
fn window(
    g: &Gpu,
    op: &'static str,
    src: &CudaStorage,
    planes: usize,
    (hs, ws): (usize, usize),
    (hd, wd): (usize, usize),
) -> Result<CudaStorage> {
    let total = product(op, &[planes, hd, wd])?;
    let mut dst = g.alloc(src.dtype(), total)?;
    if total == 0 {
        return Ok(dst);
    }
    let call = conv_abi::window(
        src.dtype(),
        planes,
        (hs, ws),
        (hd, wd),
        src.dptr(g),
        dst.dptr_mut(g),
    );
    // SAFETY: src holds planes·hs·ws elements (checked by the caller), dst planes·hd·wd.
    unsafe { g.launch(&call, g.grid(total)) }?;
    Ok(dst)
}

// ------------------------------------------------------------------------------------------------
// Launchers

/// Checks the input count, that all inputs share one dtype, and each input's length.
fn check_inputs(op: &'static str, inputs: &[&CudaStorage], want: &[(&str, usize)]) -> Result<()> {
    if inputs.len() != want.len() {
        return Err(Error::bad(
            op,
            format!("expected {} inputs, got {}", want.len(), inputs.len()),
        ));
    }
    let dtype = inputs[0].dtype();
    if let Some(other) = inputs.iter().find(|s| s.dtype() != dtype) {
        return Err(Error::DType {
            op,
            msg: format!(
                "cuDNN convolutions take one dtype for all operands, got {dtype} and {}",
                other.dtype()
            ),
        });
    }
    for (s, &(what, len)) in inputs.iter().zip(want) {
        if s.len() != len {
            return Err(Error::bad(
                op,
                format!("{what} has {} elements, the geometry needs {len}", s.len()),
            ));
        }
    }
    Ok(())
}

/// Element counts of x, w and the geometry's y.
fn lens(op: &'static str, g: &Conv2dGeometry) -> Result<(usize, usize, usize)> {
    Ok((
        product(op, &[g.n, g.cin, g.h, g.w])?,
        product(op, &[g.cout, g.cin / g.groups.max(1), g.kh, g.kw])?,
        product(op, &[g.n, g.cout, g.ho, g.wo])?,
    ))
}

/// `dy` at cuDNN's output size: itself, or zero-padded when the geometry's output is smaller.
fn dy_full<'a>(
    g: &Gpu,
    op: &'static str,
    geom: &Conv2dGeometry,
    cg: &CuGeom,
    dy: &'a CudaStorage,
    padded: &'a mut Option<CudaStorage>,
) -> Result<&'a CudaStorage> {
    if !cg.windowed(geom) {
        return Ok(dy);
    }
    let full = window(
        g,
        op,
        dy,
        geom.n * geom.cout,
        (geom.ho, geom.wo),
        (cg.ho as usize, cg.wo as usize),
    )?;
    Ok(padded.insert(full))
}

impl CudaKernel for Conv2dForward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "conv2d";
        let geom = self.geom;
        let cg = CuGeom::new(OP, &geom)?;
        let (xl, wl, yl) = lens(OP, &geom)?;
        let mut want = vec![("input", xl), ("weight", wl)];
        if self.has_bias {
            want.push(("bias", geom.cout));
        }
        check_inputs(OP, inputs, &want)?;
        let (x, w, bias) = (inputs[0], inputs[1], inputs.get(2).copied());
        let g = gpu(x.ordinal())?;
        if geom.n == 0 {
            return Ok(vec![g.alloc(x.dtype(), yl)?]);
        }
        if !cg.windowed(&geom) {
            let mut y = g.alloc(x.dtype(), yl)?;
            convolve(g, OP, Kind::Forward, &geom, &cg, x, w, &mut y, bias)?;
            return Ok(vec![y]);
        }
        let full_len = product(OP, &[geom.n, geom.cout, cg.ho as usize, cg.wo as usize])?;
        let mut full = g.alloc(x.dtype(), full_len)?;
        convolve(g, OP, Kind::Forward, &geom, &cg, x, w, &mut full, bias)?;
        let cropped = window(
            g,
            OP,
            &full,
            geom.n * geom.cout,
            (cg.ho as usize, cg.wo as usize),
            (geom.ho, geom.wo),
        )?;
        Ok(vec![cropped])
    }
}

impl CudaKernel for Conv2dBackwardInput {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "conv2d_backward_input";
        let geom = self.geom;
        let cg = CuGeom::new(OP, &geom)?;
        let (xl, wl, yl) = lens(OP, &geom)?;
        let mut want = vec![("output gradient", yl), ("weight", wl)];
        if self.has_bias {
            want.push(("bias", geom.cin));
        }
        check_inputs(OP, inputs, &want)?;
        let (dy, w, bias) = (inputs[0], inputs[1], inputs.get(2).copied());
        let g = gpu(dy.ordinal())?;
        let mut dx = g.alloc(dy.dtype(), xl)?;
        if geom.n == 0 {
            return Ok(vec![dx]);
        }
        let mut padded = None;
        let dy = dy_full(g, OP, &geom, &cg, dy, &mut padded)?;
        convolve(g, OP, Kind::BackwardData, &geom, &cg, w, dy, &mut dx, bias)?;
        Ok(vec![dx])
    }
}

impl CudaKernel for Conv2dBackwardWeight {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "conv2d_backward_weight";
        let geom = self.geom;
        let cg = CuGeom::new(OP, &geom)?;
        let (xl, wl, yl) = lens(OP, &geom)?;
        check_inputs(OP, inputs, &[("input", xl), ("output gradient", yl)])?;
        let (x, dy) = (inputs[0], inputs[1]);
        let g = gpu(x.ordinal())?;
        if geom.n == 0 {
            return Ok(vec![g.zeros(x.dtype(), wl)?]);
        }
        let mut dw = g.alloc(x.dtype(), wl)?;
        let mut padded = None;
        let dy = dy_full(g, OP, &geom, &cg, dy, &mut padded)?;
        convolve(
            g,
            OP,
            Kind::BackwardFilter,
            &geom,
            &cg,
            x,
            dy,
            &mut dw,
            None,
        )?;
        Ok(vec![dw])
    }
}

impl CudaKernel for Conv2dBiasGrad {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "conv2d_bias_grad";
        let (n, c, plane) = (self.n, self.c, self.plane);
        check_inputs(OP, inputs, &[("dy", product(OP, &[n, c, plane])?)])?;
        let dy = inputs[0];
        let g = gpu(dy.ordinal())?;
        if c == 0 || n == 0 || plane == 0 {
            return Ok(vec![g.zeros(dy.dtype(), c)?]);
        }
        let mut db = g.alloc(dy.dtype(), c)?;
        let call = conv_abi::bias_grad(dy.dtype(), n, c, plane, dy.dptr(g), db.dptr_mut(g));
        let cfg = g.launch_cfg(bias_grad_launch(c, g.sms()));
        // SAFETY: dy holds n·c·plane elements (checked), db c; 256 threads (a multiple of 32,
        // ≤ 1024) as BlockGroup requires.
        unsafe { g.launch(&call, cfg) }?;
        Ok(vec![db])
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
