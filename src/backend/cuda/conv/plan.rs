//! Plans (descriptors + chosen algorithm + workspace size) cached per `PlanKey`, the per-device
//! `CudnnState`, and algorithm choice: heuristic or exhaustive search, filtered by math type and the
//! workspace limit. See the design notes in `mod.rs`.

use super::*;

// ------------------------------------------------------------------------------------------------
// Plans and the per-device state

impl Format {
    pub(super) fn cudnn(self) -> sys::cudnnTensorFormat_t {
        match self {
            Format::Nchw => sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
            Format::Nhwc => sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct PlanKey {
    /// n, cin, h, w, cout, kh, kw, ho, wo, stride, padding, dilation (h, w each), groups.
    pub(super) geom: [usize; 16],
    pub(super) dtype: DType,
    pub(super) format: Format,
    pub(super) kind: Kind,
}

impl PlanKey {
    pub(super) fn new(g: &Conv2dGeometry, dtype: DType, format: Format, kind: Kind) -> PlanKey {
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

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Algo {
    Fwd(sys::cudnnConvolutionFwdAlgo_t),
    Data(sys::cudnnConvolutionBwdDataAlgo_t),
    Filter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

/// Cached descriptors and algorithm of one (geometry, dtype, format, kind).
pub(super) struct Plan {
    pub(super) descs: Descs,
    pub(super) algo: Algo,
    pub(super) workspace: usize,
    /// The other usable results of the search or heuristic, best first: tried in turn when a call
    /// with `algo` is refused (`Plan::fall_back`), as PyTorch's `try_all` does.
    pub(super) fallbacks: Vec<(Algo, sys::cudnnMathType_t)>,
}

impl Plan {
    /// Switches to the next fallback whose math type can be set and whose workspace cuDNN reports;
    /// false when none is left (the plan keeps its last algorithm).
    ///
    /// # Safety
    /// `h` is a live handle; `dtype` is the plan's.
    pub(super) unsafe fn fall_back(&mut self, h: sys::cudnnHandle_t, dtype: DType) -> bool {
        while !self.fallbacks.is_empty() {
            let (algo, math) = self.fallbacks.remove(0);
            // Only f16 plans change the math type per algorithm (see `build_plan`).
            if dtype == DType::F16
                && cr::set_convolution_math_type(self.descs.conv.0, math).is_err()
            {
                continue;
            }
            if let Ok(ws) = self.descs.workspace(h, algo) {
                self.algo = algo;
                self.workspace = ws;
                return true;
            }
        }
        false
    }
}

/// cuDNN state of one device (see the module docs); lives in `Gpu` behind a `Mutex`.
pub(crate) struct CudnnState {
    pub(super) handle: Handle,
    pub(super) plans: HashMap<PlanKey, Plan>,
    pub(super) workspace: Option<CudaSlice<u8>>,
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
pub(super) enum Search {
    Heuristic,
    Exhaustive,
}

pub(super) fn search_mode(op: &'static str) -> Result<Search> {
    match std::env::var("ENGINE_CUDNN_SEARCH").as_deref() {
        Err(_) | Ok("") | Ok("heuristic") => Ok(Search::Heuristic),
        Ok("exhaustive") => Ok(Search::Exhaustive),
        Ok(other) => Err(Error::bad(
            op,
            format!("ENGINE_CUDNN_SEARCH={other:?}: expected `heuristic` or `exhaustive`"),
        )),
    }
}

pub(super) fn workspace_limit(op: &'static str) -> Result<usize> {
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
pub(super) fn types(
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
pub(super) struct RawPerf {
    pub(super) algo: u32,
    pub(super) status: u32,
    pub(super) time: f32,
    pub(super) memory: usize,
    pub(super) determinism: u32,
    pub(super) math_type: u32,
    pub(super) reserved: [c_int; 3],
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
    pub(super) fn algos(self) -> Vec<Algo> {
        match self {
            Kind::Forward => FWD_ALGOS.iter().map(|&a| Algo::Fwd(a)).collect(),
            Kind::BackwardData => DATA_ALGOS.iter().map(|&a| Algo::Data(a)).collect(),
            Kind::BackwardFilter => FILTER_ALGOS.iter().map(|&a| Algo::Filter(a)).collect(),
        }
    }
}

pub(super) fn math_type(v: u32) -> Option<sys::cudnnMathType_t> {
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

/// The usable results, best first (cuDNN lists them so), each (algorithm, math type) once: the
/// result succeeded, names a known algorithm and math type, needs a workspace within `limit`, and
/// for f32 uses no tensor-op math (that would be TF32).
pub(super) fn usable(
    kind: Kind,
    dtype: DType,
    perfs: &[RawPerf],
    limit: usize,
) -> Vec<(Algo, sys::cudnnMathType_t)> {
    use sys::cudnnMathType_t::*;
    let algos = kind.algos();
    let mut out: Vec<(Algo, sys::cudnnMathType_t)> = Vec::new();
    for p in perfs {
        let (Some(math), Some(&algo)) = (math_type(p.math_type), algos.get(p.algo as usize)) else {
            continue;
        };
        let tensor_op = matches!(
            math,
            CUDNN_TENSOR_OP_MATH | CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
        );
        let ok = p.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS as u32
            && p.memory <= limit
            && !(dtype == DType::F32 && tensor_op);
        if ok && !out.iter().any(|&(a, m)| a == algo && m == math) {
            out.push((algo, math));
        }
    }
    out
}

/// Room for every result `kind`'s heuristic or search can return. cuDNN lists an algorithm once per
/// math type it considered (the descriptor's and `CUDNN_DEFAULT_MATH` where tensor cores may be
/// used, i.e. for f16), so there can be more results than algorithms; `cudnnGet*AlgorithmMaxCount`
/// gives the number. A shorter array would cut the list before `choose` filters it by workspace
/// limit and math type, and could drop the only usable entry.
///
/// # Safety
/// `h` is a live handle.
unsafe fn result_capacity(h: sys::cudnnHandle_t, kind: Kind) -> usize {
    let mut n: c_int = 0;
    let status = match kind {
        Kind::Forward => sys::cudnnGetConvolutionForwardAlgorithmMaxCount(h, &mut n),
        Kind::BackwardData => sys::cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &mut n),
        Kind::BackwardFilter => sys::cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &mut n),
    };
    let queried = match status {
        sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS => usize::try_from(n).unwrap_or(0),
        _ => 0,
    };
    // At least two entries per algorithm (both math types) whatever the query says; bounded so a
    // nonsense count cannot size a huge array.
    let algos = kind.algos().len();
    queried.clamp(2 * algos, 64 * algos)
}

/// Device pointers of one call in cuDNN's roles.
#[derive(Clone, Copy)]
pub(super) struct Ptrs {
    pub(super) x: u64,
    pub(super) w: u64,
    pub(super) y: u64,
}

impl Ptrs {
    pub(super) fn x(&self) -> *const c_void {
        self.x as usize as *const c_void
    }
    pub(super) fn w(&self) -> *const c_void {
        self.w as usize as *const c_void
    }
    pub(super) fn y(&self) -> *const c_void {
        self.y as usize as *const c_void
    }
    pub(super) fn x_mut(&self) -> *mut c_void {
        self.x as usize as *mut c_void
    }
    pub(super) fn w_mut(&self) -> *mut c_void {
        self.w as usize as *mut c_void
    }
    pub(super) fn y_mut(&self) -> *mut c_void {
        self.y as usize as *mut c_void
    }
}

/// Descriptors of a plan under construction.
pub(super) struct Descs {
    /// The convolution's input (x; dx for backward-data).
    pub(super) x: TensorDesc,
    /// The filter (w; dw for backward-filter).
    pub(super) w: FilterDesc,
    /// The convolution's output at cuDNN's formula size (y; dy for the backward kinds).
    pub(super) y: TensorDesc,
    pub(super) conv: ConvDesc,
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
        let mut perfs = vec![NO_PERF; result_capacity(h, kind)];
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
        let mut perfs = vec![NO_PERF; result_capacity(h, kind)];
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
pub(super) fn build_plan(
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
    // Candidates best first: the exhaustive search's (timed on this call's buffers), then the
    // heuristic's, so a refused algorithm falls back to the next (`Plan::fall_back`).
    let mut candidates = Vec::new();
    if search_mode(op)? == Search::Exhaustive {
        // Scratch as large as the hungriest algorithm (within the limit), freed after the search.
        // SAFETY: live handle and descriptors.
        let need = kind_max_workspace(&descs, h, key.kind, limit);
        // SAFETY: uninitialised scratch, only written and read by cuDNN during the search.
        if let Ok(mut scratch) = unsafe { g.stream.alloc::<u8>(need.max(1)) } {
            let (sp, _guard) = scratch.device_ptr_mut(&g.stream);
            // SAFETY: `ptrs` are the call's buffers matching the descriptors (launch_plan's caller);
            // the scratch holds `need` bytes.
            match unsafe { descs.find(h, key.kind, ptrs, sp as usize as *mut c_void, need) } {
                Ok(perfs) => {
                    SEARCHES.fetch_add(1, Ordering::Relaxed);
                    candidates = usable(key.kind, key.dtype, &perfs, need);
                }
                // The heuristic below still gives a plan.
                Err(err) => eprintln!(
                    "warning: {}; using cuDNN's heuristic for this shape",
                    cudnn_err(op, "exhaustive algorithm search", err)
                ),
            }
        }
    }
    // SAFETY: live handle and descriptors.
    let perfs = unsafe { descs.heuristic(h, key.kind) }.map_err(e("algorithm heuristic"))?;
    for c in usable(key.kind, key.dtype, &perfs, limit) {
        if !candidates.contains(&c) {
            candidates.push(c);
        }
    }
    if candidates.is_empty() {
        return Err(Error::Msg(format!(
            "cuda {op}: cuDNN offers no usable {:?} algorithm for {} {cg:?} within the workspace \
             limit of {limit} bytes (ENGINE_CUDNN_WORKSPACE_MB)",
            key.kind, key.dtype
        )));
    }
    // The first candidate whose math type and workspace size cuDNN accepts.
    let mut plan = Plan {
        descs,
        algo: candidates[0].0,
        workspace: 0,
        fallbacks: candidates,
    };
    // SAFETY: live handle; the plan's descriptors.
    if !unsafe { plan.fall_back(h, key.dtype) } {
        return Err(Error::Msg(format!(
            "cuda {op}: cuDNN reports no workspace size for any usable {:?} algorithm of {} {cg:?}",
            key.kind, key.dtype
        )));
    }
    Ok(plan)
}

/// The largest workspace any algorithm of `kind` reports (at most `limit`; failures ignored).
pub(super) fn kind_max_workspace(
    d: &Descs,
    h: sys::cudnnHandle_t,
    kind: Kind,
    limit: usize,
) -> usize {
    kind.algos()
        .into_iter()
        // SAFETY: live handle and descriptors (caller).
        .filter_map(|a| unsafe { d.workspace(h, a) }.ok())
        .filter(|&n| n <= limit)
        .max()
        .unwrap_or(0)
}

/// Grows the device's workspace to at least `need` bytes (rounded up to 1 MiB).
pub(super) fn ensure_workspace(g: &Gpu, ws: &mut Option<CudaSlice<u8>>, need: usize) -> Result<()> {
    if need == 0 || ws.as_ref().is_some_and(|s| s.len() >= need) {
        return Ok(());
    }
    *ws = None; // free the old buffer first (stream-ordered) so the pool can reuse it
    let size = need.div_ceil(1 << 20) * (1 << 20);
    // SAFETY: uninitialised scratch, only ever used as cuDNN workspace.
    *ws = Some(unsafe { g.alloc_bytes(size, "cuDNN workspace")? });
    WORKSPACE_GROWS.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
