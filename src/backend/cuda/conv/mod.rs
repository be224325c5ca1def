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

use super::{bits_suffix, gpu, suffix, CuResultExt, CudaKernel, CudaStorage, Gpu, LIB_ADVICE};
use crate::ops::conv::{
    Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dBiasGrad, Conv2dForward, Conv2dGeometry,
};
use crate::{DType, Error, Result};
use cudarc::cudnn::{result as cr, sys, CudnnError};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

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
// RAII wrappers over raw cuDNN objects

fn cudnn_err(op: &str, what: &str, e: CudnnError) -> Error {
    Error::Msg(format!("cuda {op} (cuDNN {what}): {:?}", e.0))
}

struct Handle(sys::cudnnHandle_t);
impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by `create_handle` and destroyed once, here.
        let _ = unsafe { cr::destroy_handle(self.0) };
    }
}

struct TensorDesc(sys::cudnnTensorDescriptor_t);
impl TensorDesc {
    fn new(
        format: sys::cudnnTensorFormat_t,
        dt: sys::cudnnDataType_t,
        dims: [c_int; 4],
    ) -> std::result::Result<Self, CudnnError> {
        let d = TensorDesc(cr::create_tensor_descriptor()?);
        // SAFETY: `d.0` was just created and is owned by `d`.
        unsafe { cr::set_tensor4d_descriptor(d.0, format, dt, dims) }?;
        Ok(d)
    }
}
impl Drop for TensorDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_tensor_descriptor`, destroyed once.
        let _ = unsafe { cr::destroy_tensor_descriptor(self.0) };
    }
}

struct FilterDesc(sys::cudnnFilterDescriptor_t);
impl FilterDesc {
    fn new(
        format: sys::cudnnTensorFormat_t,
        dt: sys::cudnnDataType_t,
        dims: [c_int; 4],
    ) -> std::result::Result<Self, CudnnError> {
        let d = FilterDesc(cr::create_filter_descriptor()?);
        // SAFETY: `d.0` was just created and is owned by `d`.
        unsafe { cr::set_filter4d_descriptor(d.0, dt, format, dims) }?;
        Ok(d)
    }
}
impl Drop for FilterDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_filter_descriptor`, destroyed once.
        let _ = unsafe { cr::destroy_filter_descriptor(self.0) };
    }
}

struct ConvDesc(sys::cudnnConvolutionDescriptor_t);
impl ConvDesc {
    fn new(
        g: &CuGeom,
        compute: sys::cudnnDataType_t,
        math: sys::cudnnMathType_t,
    ) -> std::result::Result<Self, CudnnError> {
        let d = ConvDesc(cr::create_convolution_descriptor()?);
        // SAFETY: `d.0` was just created and is owned by `d`.
        unsafe {
            cr::set_convolution2d_descriptor(
                d.0,
                g.pad[0],
                g.pad[1],
                g.stride[0],
                g.stride[1],
                g.dil[0],
                g.dil[1],
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                compute,
            )?;
            cr::set_convolution_group_count(d.0, g.groups)?;
            cr::set_convolution_math_type(d.0, math)?;
        }
        Ok(d)
    }
}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_convolution_descriptor`, destroyed once.
        let _ = unsafe { cr::destroy_convolution_descriptor(self.0) };
    }
}

// ------------------------------------------------------------------------------------------------
// Geometry

/// The convolution as cuDNN sees it: every extent as `int`, `ho`/`wo` from cuDNN's formula.
#[derive(Clone, Copy, Debug)]
struct CuGeom {
    n: c_int,
    cin: c_int,
    h: c_int,
    w: c_int,
    cout: c_int,
    cin_g: c_int,
    kh: c_int,
    kw: c_int,
    ho: c_int,
    wo: c_int,
    pad: [c_int; 2],
    stride: [c_int; 2],
    dil: [c_int; 2],
    groups: c_int,
}

fn int(op: &'static str, what: &str, v: usize) -> Result<c_int> {
    c_int::try_from(v)
        .map_err(|_| Error::bad(op, format!("{what} = {v} exceeds cuDNN's 32-bit int")))
}

fn product(op: &'static str, v: &[usize]) -> Result<usize> {
    v.iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| Error::bad(op, format!("{v:?} overflows")))
}

impl CuGeom {
    /// Validates `g` (like the CPU kernels) and derives cuDNN's view of it.
    fn new(op: &'static str, g: &Conv2dGeometry) -> Result<CuGeom> {
        let extents = [g.cin, g.h, g.w, g.cout, g.kh, g.kw, g.ho, g.wo];
        if extents.contains(&0)
            || g.groups == 0
            || g.cin % g.groups != 0
            || g.cout % g.groups != 0
            || g.stride.0 == 0
            || g.stride.1 == 0
            || g.dilation.0 == 0
            || g.dilation.1 == 0
        {
            return Err(Error::bad(op, format!("invalid geometry {g:?}")));
        }
        // cuDNN's output extent: 1 + (len + 2p − d(k − 1) − 1) / s.
        let formula = |len: usize, k: usize, s: usize, p: usize, d: usize| {
            let span = d * (k - 1) + 1;
            (len + 2 * p).checked_sub(span).map(|r| r / s + 1)
        };
        let ho = formula(g.h, g.kh, g.stride.0, g.padding.0, g.dilation.0);
        let wo = formula(g.w, g.kw, g.stride.1, g.padding.1, g.dilation.1);
        let (Some(ho), Some(wo)) = (ho, wo) else {
            return Err(Error::bad(
                op,
                format!("the dilated kernel does not fit the padded input in {g:?}"),
            ));
        };
        if g.ho > ho || g.wo > wo {
            return Err(Error::bad(
                op,
                format!(
                    "output {}×{} exceeds the {ho}×{wo} the convolution produces in {g:?}",
                    g.ho, g.wo
                ),
            ));
        }
        // cuDNN's legacy descriptors use int strides: one image of each tensor must fit.
        product(op, &[g.cin, g.h, g.w])
            .and_then(|v| int(op, "Cin·H·W", v))
            .and(product(op, &[g.cout, ho, wo]).and_then(|v| int(op, "Cout·Ho·Wo", v)))
            .and(product(op, &[g.cin / g.groups, g.kh, g.kw]).and_then(|v| int(op, "filter", v)))?;
        Ok(CuGeom {
            n: int(op, "N", g.n)?,
            cin: int(op, "Cin", g.cin)?,
            h: int(op, "H", g.h)?,
            w: int(op, "W", g.w)?,
            cout: int(op, "Cout", g.cout)?,
            cin_g: int(op, "Cin/groups", g.cin / g.groups)?,
            kh: int(op, "kh", g.kh)?,
            kw: int(op, "kw", g.kw)?,
            ho: int(op, "Ho", ho)?,
            wo: int(op, "Wo", wo)?,
            pad: [int(op, "pad", g.padding.0)?, int(op, "pad", g.padding.1)?],
            stride: [
                int(op, "stride", g.stride.0)?,
                int(op, "stride", g.stride.1)?,
            ],
            dil: [
                int(op, "dilation", g.dilation.0)?,
                int(op, "dilation", g.dilation.1)?,
            ],
            groups: int(op, "groups", g.groups)?,
        })
    }

    /// True when cuDNN's output extent differs from the geometry's (see the module docs).
    fn windowed(&self, g: &Conv2dGeometry) -> bool {
        self.ho as usize != g.ho || self.wo as usize != g.wo
    }
}

// ------------------------------------------------------------------------------------------------
// Plans and the per-device state

/// Which cuDNN convolution entry point a plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Forward,
    BackwardData,
    BackwardFilter,
}

/// The memory layout the descriptors describe (see "Channels-last" in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Format {
    Nchw,
    /// Selected by launchers once kernels receive channels-last storage.
    #[allow(dead_code)]
    Nhwc,
}

impl Format {
    fn cudnn(self) -> sys::cudnnTensorFormat_t {
        match self {
            Format::Nchw => sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
            Format::Nhwc => sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    /// n, cin, h, w, cout, kh, kw, ho, wo, stride, padding, dilation (h, w each), groups.
    geom: [usize; 16],
    dtype: DType,
    format: Format,
    kind: Kind,
}

impl PlanKey {
    fn new(g: &Conv2dGeometry, dtype: DType, format: Format, kind: Kind) -> PlanKey {
        PlanKey {
            geom: [
                g.n,
                g.cin,
                g.h,
                g.w,
                g.cout,
                g.kh,
                g.kw,
                g.ho,
                g.wo,
                g.stride.0,
                g.stride.1,
                g.padding.0,
                g.padding.1,
                g.dilation.0,
                g.dilation.1,
                g.groups,
            ],
            dtype,
            format,
            kind,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Algo {
    Fwd(sys::cudnnConvolutionFwdAlgo_t),
    Data(sys::cudnnConvolutionBwdDataAlgo_t),
    Filter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

/// Cached descriptors and algorithm of one (geometry, dtype, format, kind).
struct Plan {
    /// The convolution's input (x; dx for backward-data).
    x: TensorDesc,
    /// The filter (w; dw for backward-filter).
    w: FilterDesc,
    /// The convolution's output at cuDNN's formula size (y; dy for the backward kinds).
    y: TensorDesc,
    conv: ConvDesc,
    algo: Algo,
    workspace: usize,
}

/// cuDNN state of one device (see the module docs); lives in `Gpu` behind a `Mutex`.
pub(crate) struct CudnnState {
    handle: Handle,
    plans: HashMap<PlanKey, Plan>,
    workspace: Option<CudaSlice<u8>>,
}

// SAFETY: the raw handle and descriptors are plain pointers owned by this value; cuDNN allows a
// handle to move between threads as long as it is not used concurrently, which the `Mutex` around
// every `CudnnState` guarantees (nothing hands the pointers out).
unsafe impl Send for CudnnState {}

impl CudnnState {
    /// Checks that libcudnn can be loaded, creates a handle and binds it to `g`'s stream.
    pub(crate) fn new(g: &Gpu) -> std::result::Result<CudnnState, String> {
        // SAFETY: only tries to dlopen the library; nothing is called through it.
        if !unsafe { sys::is_culib_present() } {
            return Err(format!(
                "cuDNN (libcudnn.so.9) cannot be loaded; convolutions on CUDA need it. {LIB_ADVICE}"
            ));
        }
        g.ctx
            .bind_to_thread()
            .map_err(|e| format!("device {}: {e}", g.ordinal))?;
        let created = std::panic::catch_unwind(cr::create_handle).map_err(|_| {
            format!("cuDNN: creating a handle panicked (a missing symbol?). {LIB_ADVICE}")
        })?;
        let handle = Handle(created.map_err(|e| {
            format!(
                "cuDNN on device {}: cudnnCreate failed: {:?}. {LIB_ADVICE}",
                g.ordinal, e.0
            )
        })?);
        // SAFETY: the handle is valid; the stream outlives it (both live in the same `Gpu`).
        unsafe { cr::set_stream(handle.0, g.stream.cu_stream() as sys::cudaStream_t) }
            .map_err(|e| format!("cuDNN on device {}: cudnnSetStream: {:?}", g.ordinal, e.0))?;
        Ok(CudnnState {
            handle,
            plans: HashMap::new(),
            workspace: None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Search {
    Heuristic,
    Exhaustive,
}

fn search_mode(op: &'static str) -> Result<Search> {
    match std::env::var("ENGINE_CUDNN_SEARCH").as_deref() {
        Err(_) | Ok("") | Ok("heuristic") => Ok(Search::Heuristic),
        Ok("exhaustive") => Ok(Search::Exhaustive),
        Ok(other) => Err(Error::bad(
            op,
            format!("ENGINE_CUDNN_SEARCH={other:?}: expected `heuristic` or `exhaustive`"),
        )),
    }
}

fn workspace_limit(op: &'static str) -> Result<usize> {
    match std::env::var("ENGINE_CUDNN_WORKSPACE_MB") {
        Err(_) => Ok(1024 << 20),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|mb| mb.checked_mul(1 << 20))
            .ok_or_else(|| {
                Error::bad(
                    op,
                    format!("ENGINE_CUDNN_WORKSPACE_MB={v:?}: expected a number of MiB"),
                )
            }),
    }
}

/// Tensor data type, convolution compute type and initial math type for `dtype`.
fn types(
    dtype: DType,
) -> (
    sys::cudnnDataType_t,
    sys::cudnnDataType_t,
    sys::cudnnMathType_t,
) {
    use sys::cudnnDataType_t::*;
    use sys::cudnnMathType_t::*;
    match dtype {
        DType::F16 => (CUDNN_DATA_HALF, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH),
        DType::F32 => (CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_FMA_MATH),
        DType::F64 => (CUDNN_DATA_DOUBLE, CUDNN_DATA_DOUBLE, CUDNN_DEFAULT_MATH),
    }
}

// ------------------------------------------------------------------------------------------------
// Algorithm results

/// `cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t` with its enums read as plain integers, so a
/// value this binding does not know (a newer cuDNN) cannot produce an invalid Rust enum.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct RawPerf {
    algo: u32,
    status: u32,
    time: f32,
    memory: usize,
    determinism: u32,
    math_type: u32,
    reserved: [c_int; 3],
}

const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<RawPerf>() == size_of::<sys::cudnnConvolutionFwdAlgoPerf_t>());
    assert!(size_of::<RawPerf>() == size_of::<sys::cudnnConvolutionBwdDataAlgoPerf_t>());
    assert!(size_of::<RawPerf>() == size_of::<sys::cudnnConvolutionBwdFilterAlgoPerf_t>());
    assert!(align_of::<RawPerf>() == align_of::<sys::cudnnConvolutionFwdAlgoPerf_t>());
};

const NO_PERF: RawPerf = RawPerf {
    algo: 0,
    status: u32::MAX,
    time: 0.0,
    memory: 0,
    determinism: 0,
    math_type: 0,
    reserved: [0; 3],
};

const FWD_ALGOS: [sys::cudnnConvolutionFwdAlgo_t; 8] = {
    use sys::cudnnConvolutionFwdAlgo_t::*;
    [
        CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
        CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
        CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
        CUDNN_CONVOLUTION_FWD_ALGO_DIRECT,
        CUDNN_CONVOLUTION_FWD_ALGO_FFT,
        CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
        CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,
        CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
    ]
};
const DATA_ALGOS: [sys::cudnnConvolutionBwdDataAlgo_t; 6] = {
    use sys::cudnnConvolutionBwdDataAlgo_t::*;
    [
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT,
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING,
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD,
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED,
    ]
};
const FILTER_ALGOS: [sys::cudnnConvolutionBwdFilterAlgo_t; 7] = {
    use sys::cudnnConvolutionBwdFilterAlgo_t::*;
    [
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING,
    ]
};

impl Kind {
    /// Every algorithm of this kind, by its cuDNN value.
    fn algos(self) -> Vec<Algo> {
        match self {
            Kind::Forward => FWD_ALGOS.iter().map(|&a| Algo::Fwd(a)).collect(),
            Kind::BackwardData => DATA_ALGOS.iter().map(|&a| Algo::Data(a)).collect(),
            Kind::BackwardFilter => FILTER_ALGOS.iter().map(|&a| Algo::Filter(a)).collect(),
        }
    }
}

fn math_type(v: u32) -> Option<sys::cudnnMathType_t> {
    use sys::cudnnMathType_t::*;
    [
        CUDNN_DEFAULT_MATH,
        CUDNN_TENSOR_OP_MATH,
        CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION,
        CUDNN_FMA_MATH,
    ]
    .into_iter()
    .find(|&m| m as u32 == v)
}

/// The first usable result (results come best first): succeeded, a known algorithm and math type,
/// a workspace within `limit`, and for f32 no tensor-op math (that would be TF32).
fn choose(
    kind: Kind,
    dtype: DType,
    perfs: &[RawPerf],
    limit: usize,
) -> Option<(Algo, sys::cudnnMathType_t)> {
    use sys::cudnnMathType_t::*;
    let algos = kind.algos();
    perfs.iter().find_map(|p| {
        let math = math_type(p.math_type)?;
        let algo = *algos.get(p.algo as usize)?;
        let tensor_op = matches!(
            math,
            CUDNN_TENSOR_OP_MATH | CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
        );
        let ok = p.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS as u32
            && p.memory <= limit
            && !(dtype == DType::F32 && tensor_op);
        ok.then_some((algo, math))
    })
}

/// Device pointers of one call in cuDNN's roles.
#[derive(Clone, Copy)]
struct Ptrs {
    x: u64,
    w: u64,
    y: u64,
}

impl Ptrs {
    fn x(&self) -> *const c_void {
        self.x as usize as *const c_void
    }
    fn w(&self) -> *const c_void {
        self.w as usize as *const c_void
    }
    fn y(&self) -> *const c_void {
        self.y as usize as *const c_void
    }
    fn x_mut(&self) -> *mut c_void {
        self.x as usize as *mut c_void
    }
    fn w_mut(&self) -> *mut c_void {
        self.w as usize as *mut c_void
    }
    fn y_mut(&self) -> *mut c_void {
        self.y as usize as *mut c_void
    }
}

/// Descriptors of a plan under construction.
struct Descs {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    conv: ConvDesc,
}

impl Descs {
    /// The workspace `algo` needs with these descriptors.
    ///
    /// # Safety
    /// `h` is a live handle.
    unsafe fn workspace(
        &self,
        h: sys::cudnnHandle_t,
        algo: Algo,
    ) -> std::result::Result<usize, CudnnError> {
        match algo {
            Algo::Fwd(a) => cr::get_convolution_forward_workspace_size(
                h,
                self.x.0,
                self.w.0,
                self.conv.0,
                self.y.0,
                a,
            ),
            Algo::Data(a) => cr::get_convolution_backward_data_workspace_size(
                h,
                self.w.0,
                self.y.0,
                self.conv.0,
                self.x.0,
                a,
            ),
            Algo::Filter(a) => cr::get_convolution_backward_filter_workspace_size(
                h,
                self.x.0,
                self.y.0,
                self.conv.0,
                self.w.0,
                a,
            ),
        }
    }

    /// cuDNN's heuristic ranking (`cudnnGet*Algorithm_v7`), all algorithms of `kind`.
    ///
    /// # Safety
    /// `h` is a live handle.
    unsafe fn heuristic(
        &self,
        h: sys::cudnnHandle_t,
        kind: Kind,
    ) -> std::result::Result<Vec<RawPerf>, CudnnError> {
        let mut perfs = vec![NO_PERF; kind.algos().len()];
        let cap = perfs.len() as c_int;
        let mut got: c_int = 0;
        let p = perfs.as_mut_ptr();
        match kind {
            Kind::Forward => cr::get_convolution_forward_algorithm(
                h,
                self.x.0,
                self.w.0,
                self.conv.0,
                self.y.0,
                cap,
                &mut got,
                p.cast(),
            ),
            Kind::BackwardData => cr::get_convolution_backward_data_algorithm(
                h,
                self.w.0,
                self.y.0,
                self.conv.0,
                self.x.0,
                cap,
                &mut got,
                p.cast(),
            ),
            Kind::BackwardFilter => cr::get_convolution_backward_filter_algorithm(
                h,
                self.x.0,
                self.y.0,
                self.conv.0,
                self.w.0,
                cap,
                &mut got,
                p.cast(),
            ),
        }?;
        perfs.truncate(got.clamp(0, cap) as usize);
        Ok(perfs)
    }

    /// cuDNN's measured ranking (`cudnnFind*AlgorithmEx`) on the call's buffers.
    ///
    /// # Safety
    /// `h` is a live handle; `p` holds the call's buffers in cuDNN's roles, matching the descriptors
    /// (the output role is overwritten); `ws` addresses `ws_len` bytes of device memory.
    unsafe fn find(
        &self,
        h: sys::cudnnHandle_t,
        kind: Kind,
        p: Ptrs,
        ws: *mut c_void,
        ws_len: usize,
    ) -> std::result::Result<Vec<RawPerf>, CudnnError> {
        let mut perfs = vec![NO_PERF; kind.algos().len()];
        let cap = perfs.len() as c_int;
        let mut got: c_int = 0;
        let out = perfs.as_mut_ptr();
        match kind {
            Kind::Forward => sys::cudnnFindConvolutionForwardAlgorithmEx(
                h,
                self.x.0,
                p.x(),
                self.w.0,
                p.w(),
                self.conv.0,
                self.y.0,
                p.y_mut(),
                cap,
                &mut got,
                out.cast(),
                ws,
                ws_len,
            ),
            Kind::BackwardData => sys::cudnnFindConvolutionBackwardDataAlgorithmEx(
                h,
                self.w.0,
                p.w(),
                self.y.0,
                p.y(),
                self.conv.0,
                self.x.0,
                p.x_mut(),
                cap,
                &mut got,
                out.cast(),
                ws,
                ws_len,
            ),
            Kind::BackwardFilter => sys::cudnnFindConvolutionBackwardFilterAlgorithmEx(
                h,
                self.x.0,
                p.x(),
                self.y.0,
                p.y(),
                self.conv.0,
                self.w.0,
                p.w_mut(),
                cap,
                &mut got,
                out.cast(),
                ws,
                ws_len,
            ),
        }
        .result()?;
        perfs.truncate(got.clamp(0, cap) as usize);
        Ok(perfs)
    }
}

/// Creates the descriptors of `key` and chooses its algorithm. `ptrs` are the call's buffers, used
/// only by the exhaustive search (which overwrites the output role).
fn build_plan(
    g: &Gpu,
    h: sys::cudnnHandle_t,
    op: &'static str,
    key: &PlanKey,
    cg: &CuGeom,
    ptrs: Ptrs,
) -> Result<Plan> {
    let (dt, compute, math) = types(key.dtype);
    let fmt = key.format.cudnn();
    let e = |what: &'static str| move |err: CudnnError| cudnn_err(op, what, err);
    let descs = Descs {
        x: TensorDesc::new(fmt, dt, [cg.n, cg.cin, cg.h, cg.w]).map_err(e("input descriptor"))?,
        w: FilterDesc::new(fmt, dt, [cg.cout, cg.cin_g, cg.kh, cg.kw])
            .map_err(e("filter descriptor"))?,
        y: TensorDesc::new(fmt, dt, [cg.n, cg.cout, cg.ho, cg.wo])
            .map_err(e("output descriptor"))?,
        conv: ConvDesc::new(cg, compute, math).map_err(e("convolution descriptor"))?,
    };
    // cuDNN's own view of the output must be the one described (CuGeom::new computed it the same way).
    let mut od = [0 as c_int; 4];
    // SAFETY: live descriptors; four valid out-pointers.
    unsafe {
        sys::cudnnGetConvolution2dForwardOutputDim(
            descs.conv.0,
            descs.x.0,
            descs.w.0,
            &mut od[0],
            &mut od[1],
            &mut od[2],
            &mut od[3],
        )
    }
    .result()
    .map_err(e("output dims"))?;
    if od != [cg.n, cg.cout, cg.ho, cg.wo] {
        return Err(Error::bad(
            op,
            format!(
                "cuDNN computes output dims {od:?}, expected {:?}",
                [cg.n, cg.cout, cg.ho, cg.wo]
            ),
        ));
    }
    let limit = workspace_limit(op)?;
    let mut chosen = None;
    if search_mode(op)? == Search::Exhaustive {
        // Scratch as large as the hungriest algorithm (within the limit), freed after the search.
        // SAFETY: live handle and descriptors.
        let need = kind_max_workspace(&descs, h, key.kind, limit);
        // SAFETY: uninitialised scratch, only written and read by cuDNN during the search.
        if let Ok(mut scratch) = unsafe { g.stream.alloc::<u8>(need.max(1)) } {
            let (sp, _guard) = scratch.device_ptr_mut(&g.stream);
            // SAFETY: `ptrs` are the call's buffers matching the descriptors (launch_plan's caller);
            // the scratch holds `need` bytes.
            let perfs = unsafe { descs.find(h, key.kind, ptrs, sp as usize as *mut c_void, need) }
                .map_err(e("exhaustive algorithm search"))?;
            SEARCHES.fetch_add(1, Ordering::Relaxed);
            chosen = choose(key.kind, key.dtype, &perfs, need);
        }
    }
    if chosen.is_none() {
        // SAFETY: live handle and descriptors.
        let perfs = unsafe { descs.heuristic(h, key.kind) }.map_err(e("algorithm heuristic"))?;
        chosen = choose(key.kind, key.dtype, &perfs, limit);
    }
    let Some((algo, found_math)) = chosen else {
        return Err(Error::Msg(format!(
            "cuda {op}: cuDNN offers no usable {:?} algorithm for {} {cg:?} within the workspace \
             limit of {limit} bytes (ENGINE_CUDNN_WORKSPACE_MB)",
            key.kind, key.dtype
        )));
    };
    if key.dtype == DType::F16 && found_math != math {
        // SAFETY: live descriptor owned by `descs`.
        unsafe { cr::set_convolution_math_type(descs.conv.0, found_math) }
            .map_err(e("math type"))?;
    }
    // SAFETY: live handle and descriptors.
    let workspace = unsafe { descs.workspace(h, algo) }.map_err(e("workspace size"))?;
    Ok(Plan {
        x: descs.x,
        w: descs.w,
        y: descs.y,
        conv: descs.conv,
        algo,
        workspace,
    })
}

/// The largest workspace any algorithm of `kind` reports (at most `limit`; failures ignored).
fn kind_max_workspace(d: &Descs, h: sys::cudnnHandle_t, kind: Kind, limit: usize) -> usize {
    kind.algos()
        .into_iter()
        // SAFETY: live handle and descriptors (caller).
        .filter_map(|a| unsafe { d.workspace(h, a) }.ok())
        .filter(|&n| n <= limit)
        .max()
        .unwrap_or(0)
}

/// Grows the device's workspace to at least `need` bytes (rounded up to 1 MiB).
fn ensure_workspace(g: &Gpu, ws: &mut Option<CudaSlice<u8>>, need: usize) -> Result<()> {
    if need == 0 || ws.as_ref().is_some_and(|s| s.len() >= need) {
        return Ok(());
    }
    *ws = None; // free the old buffer first (stream-ordered) so the pool can reuse it
    let size = need.div_ceil(1 << 20) * (1 << 20);
    // SAFETY: uninitialised scratch, only ever used as cuDNN workspace.
    *ws = Some(unsafe { g.stream.alloc::<u8>(size) }.cu("cuDNN workspace")?);
    WORKSPACE_GROWS.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Running a convolution

/// One cuDNN convolution of `kind` over `geom` (cuDNN's view `cg`):
/// - Forward: `a` = x, `b` = w, `out` = y;
/// - BackwardData: `a` = w, `b` = dy, `out` = dx;
/// - BackwardFilter: `a` = x, `b` = dy, `out` = dw.
///
/// With `bias`, `out` is first filled with the per-channel bias (channels of `out`) and the
/// convolution adds onto it (beta = 1). The plan is looked up (or built) under the device's cuDNN
/// lock, which is held until the launch is enqueued.
#[allow(clippy::too_many_arguments)]
fn convolve(
    g: &Gpu,
    op: &'static str,
    kind: Kind,
    geom: &Conv2dGeometry,
    cg: &CuGeom,
    a: &CudaStorage,
    b: &CudaStorage,
    out: &mut CudaStorage,
    bias: Option<&CudaStorage>,
) -> Result<()> {
    let dtype = out.dtype();
    let key = PlanKey::new(geom, dtype, Format::Nchw, kind);
    let mut guard = g.cudnn()?.lock().unwrap_or_else(|p| p.into_inner());
    g.ctx.bind_to_thread().cu(op)?;
    let CudnnState {
        handle,
        plans,
        workspace,
    } = &mut *guard;
    let h = handle.0;
    // Pointers of a, b, out in cuDNN's (x, w, y) roles.
    let roles = |pa: u64, pb: u64, po: u64| match kind {
        Kind::Forward => Ptrs {
            x: pa,
            w: pb,
            y: po,
        },
        Kind::BackwardData => Ptrs {
            w: pa,
            y: pb,
            x: po,
        },
        Kind::BackwardFilter => Ptrs {
            x: pa,
            y: pb,
            w: po,
        },
    };
    let plan = match plans.entry(key) {
        Entry::Occupied(e) => {
            HITS.fetch_add(1, Ordering::Relaxed);
            e.into_mut()
        }
        Entry::Vacant(e) => {
            let plan = {
                let (pa, _ga) = a.buf().device_ptr(&g.stream);
                let (pb, _gb) = b.buf().device_ptr(&g.stream);
                let (po, _go) = out.buf_mut().device_ptr_mut(&g.stream);
                build_plan(g, h, op, &key, cg, roles(pa, pb, po))?
            };
            MISSES.fetch_add(1, Ordering::Relaxed);
            e.insert(plan)
        }
    };
    ensure_workspace(g, workspace, plan.workspace)?;
    if let Some(bias) = bias {
        let (c, plane) = match kind {
            Kind::Forward => (cg.cout as usize, cg.ho as usize * cg.wo as usize),
            Kind::BackwardData => (cg.cin as usize, cg.h as usize * cg.w as usize),
            Kind::BackwardFilter => {
                return Err(Error::bad(op, "the filter gradient takes no bias"));
            }
        };
        fill_bias(g, op, bias, out, c, plane)?;
    }
    let (a32, b32) = (1.0f32, if bias.is_some() { 1.0f32 } else { 0.0 });
    let (a64, b64) = (1.0f64, if bias.is_some() { 1.0f64 } else { 0.0 });
    let (alpha, beta): (*const c_void, *const c_void) = if dtype == DType::F64 {
        ((&a64 as *const f64).cast(), (&b64 as *const f64).cast())
    } else {
        ((&a32 as *const f32).cast(), (&b32 as *const f32).cast())
    };
    let (pa, _ga) = a.buf().device_ptr(&g.stream);
    let (pb, _gb) = b.buf().device_ptr(&g.stream);
    let (po, _go) = out.buf_mut().device_ptr_mut(&g.stream);
    let p = roles(pa, pb, po);
    let (ws_ptr, ws_len, _gw) = match (plan.workspace, workspace.as_mut()) {
        (0, _) | (_, None) => (std::ptr::null_mut(), 0, None),
        (_, Some(ws)) => {
            let len = ws.len();
            let (ptr, guard) = ws.device_ptr_mut(&g.stream);
            (ptr as usize as *mut c_void, len, Some(guard))
        }
    };
    // SAFETY: the descriptors describe exactly these buffers (lengths checked by the launchers against
    // the geometry the plan was built from, dtype part of the key); alpha/beta have the scaling type
    // of the dtype and outlive the call; the workspace holds `ws_len` ≥ `plan.workspace` bytes; all
    // work is enqueued on the stream the handle is bound to.
    let r = unsafe {
        match plan.algo {
            Algo::Fwd(algo) => cr::convolution_forward(
                h,
                alpha,
                plan.x.0,
                p.x(),
                plan.w.0,
                p.w(),
                plan.conv.0,
                algo,
                ws_ptr,
                ws_len,
                beta,
                plan.y.0,
                p.y_mut(),
            ),
            Algo::Data(algo) => cr::convolution_backward_data(
                h,
                alpha,
                plan.w.0,
                p.w(),
                plan.y.0,
                p.y(),
                plan.conv.0,
                algo,
                ws_ptr,
                ws_len,
                beta,
                plan.x.0,
                p.x_mut(),
            ),
            Algo::Filter(algo) => cr::convolution_backward_filter(
                h,
                alpha,
                plan.x.0,
                p.x(),
                plan.y.0,
                p.y(),
                plan.conv.0,
                algo,
                ws_ptr,
                ws_len,
                beta,
                plan.w.0,
                p.w_mut(),
            ),
        }
    };
    r.map_err(|e| cudnn_err(op, &format!("{:?} with {:?}", kind, plan.algo), e))
}

// ------------------------------------------------------------------------------------------------
// Helper kernels (cuda/conv.cu)

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
    let f = g.func("conv", &format!("conv_fill_bias_{}", suffix(y.dtype())))?;
    let (total64, plane64, c64) = (total as i64, plane as i64, c as i64);
    let mut lb = g.stream.launch_builder(&f);
    lb.arg(&total64)
        .arg(&plane64)
        .arg(&c64)
        .arg(bias.buf())
        .arg(y.buf_mut());
    // SAFETY: matches `conv_fill_bias_<T>(i64, i64, i64, const T*, T*)`; bias holds c T (checked by
    // the launcher), y `total` T.
    unsafe { lb.launch(g.grid(total)) }.cu(op)?;
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
    let f = g.func("conv", &format!("conv_window_{}", bits_suffix(src.dtype())))?;
    let v = [planes, hs, ws, hd, wd].map(|x| x as i64);
    let mut lb = g.stream.launch_builder(&f);
    lb.arg(&v[0])
        .arg(&v[1])
        .arg(&v[2])
        .arg(&v[3])
        .arg(&v[4])
        .arg(src.buf())
        .arg(dst.buf_mut());
    // SAFETY: matches `conv_window_<bits>(i64 ×5, const U*, U*)` with U of the dtype's width; src
    // holds planes·hs·ws elements (checked by the caller), dst planes·hd·wd.
    unsafe { lb.launch(g.grid(total)) }.cu(op)?;
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
        let f = g.func("conv", &format!("conv_bias_grad_{}", suffix(dy.dtype())))?;
        let (n64, c64, plane64) = (n as i64, c as i64, plane as i64);
        let blocks = c.min(g.sm_count() as usize * 32) as u32;
        let mut lb = g.stream.launch_builder(&f);
        lb.arg(&n64)
            .arg(&c64)
            .arg(&plane64)
            .arg(dy.buf())
            .arg(db.buf_mut());
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (super::THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: matches `conv_bias_grad_<T>(i64, i64, i64, const T*, T*)`; dy holds n·c·plane T, db
        // c T; 256 threads (a multiple of 32, ≤ 1024) as BlockGroup requires.
        unsafe { lb.launch(cfg) }.cu(OP)?;
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
