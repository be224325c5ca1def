//! `convolve`: one cuDNN convolution of a given kind through its cached plan, with the shared
//! workspace and the output-window adaptation described in `mod.rs`.

use super::*;

// ------------------------------------------------------------------------------------------------
// Running a convolution

/// One cuDNN convolution of `kind` over `geom` (cuDNN's view `cg`), every operand in `format`:
/// - Forward: `a` = x, `b` = w, `out` = y;
/// - BackwardData: `a` = w, `b` = dy, `out` = dx;
/// - BackwardFilter: `a` = x, `b` = dy, `out` = dw.
///
/// With `bias`, `out` is first filled with the per-channel bias (channels of `out`) and the
/// convolution adds onto it (beta = 1). The plan is looked up (or built) under the device's cuDNN
/// lock, which is held until the launch is enqueued.
#[allow(clippy::too_many_arguments)]
pub(super) fn convolve(
    g: &Gpu,
    op: &'static str,
    kind: Kind,
    format: Format,
    geom: &Conv2dGeometry,
    cg: &CuGeom,
    a: &CudaStorage,
    b: &CudaStorage,
    out: &mut CudaStorage,
    bias: Option<&CudaStorage>,
) -> Result<()> {
    let dtype = out.dtype();
    let key = PlanKey::new(geom, dtype, format, kind);
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
    loop {
        ensure_workspace(g, workspace, plan.workspace)?;
        if let Some(bias) = bias {
            let Some((c, plane)) = cg.bias_layout(kind, format) else {
                return Err(Error::bad(op, "the filter gradient takes no bias"));
            };
            fill_bias(g, op, bias, out, c, plane)?;
        }
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
        // SAFETY: as `call` requires: the plan's descriptors describe exactly these buffers (lengths
        // checked by the launchers against the geometry the plan was built from, dtype part of the
        // key); the workspace holds `ws_len` ≥ `plan.workspace` bytes.
        let r = unsafe { call(h, plan, p, ws_ptr, ws_len, bias.is_some(), dtype) };
        let Err(err) = r else { return Ok(()) };
        // A refused call (cuDNN checks its arguments before it enqueues anything, so `out` holds at
        // most the bias fill, redone above) moves the plan, for good, to its next candidate.
        let failed = plan.algo;
        // SAFETY: live handle; the plan's own descriptors and dtype.
        if !unsafe { plan.fall_back(h, dtype) } {
            return Err(cudnn_err(op, &format!("{kind:?} with {failed:?}"), err));
        }
        FALLBACKS.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "warning: cuda {op}: cuDNN refused {kind:?} with {failed:?} ({err:?}); falling back to \
             {:?} for this shape",
            plan.algo
        );
    }
}

/// One cuDNN convolution call of `plan`'s kind with its algorithm, in cuDNN's (x, w, y) roles `p`;
/// beta = 1 when `accumulate` (the output holds the bias), else 0.
///
/// # Safety
/// `h` is live and bound to the stream the buffers are ordered on; `p` holds buffers matching the
/// plan's descriptors; `ws` points to `ws_len` ≥ `plan.workspace` bytes of device memory (or is null
/// when `plan.workspace` is 0).
unsafe fn call(
    h: sys::cudnnHandle_t,
    plan: &Plan,
    p: Ptrs,
    ws_ptr: *mut c_void,
    ws_len: usize,
    accumulate: bool,
    dtype: DType,
) -> std::result::Result<(), CudnnError> {
    let (a32, b32) = (1.0f32, if accumulate { 1.0f32 } else { 0.0 });
    let (a64, b64) = (1.0f64, if accumulate { 1.0f64 } else { 0.0 });
    // alpha/beta have the scaling type of the dtype and outlive the call.
    let (alpha, beta): (*const c_void, *const c_void) = if dtype == DType::F64 {
        ((&a64 as *const f64).cast(), (&b64 as *const f64).cast())
    } else {
        ((&a32 as *const f32).cast(), (&b32 as *const f32).cast())
    };
    let d = &plan.descs;
    match plan.algo {
        Algo::Fwd(algo) => cr::convolution_forward(
            h,
            alpha,
            d.x.0,
            p.x(),
            d.w.0,
            p.w(),
            d.conv.0,
            algo,
            ws_ptr,
            ws_len,
            beta,
            d.y.0,
            p.y_mut(),
        ),
        Algo::Data(algo) => cr::convolution_backward_data(
            h,
            alpha,
            d.w.0,
            p.w(),
            d.y.0,
            p.y(),
            d.conv.0,
            algo,
            ws_ptr,
            ws_len,
            beta,
            d.x.0,
            p.x_mut(),
        ),
        Algo::Filter(algo) => cr::convolution_backward_filter(
            h,
            alpha,
            d.x.0,
            p.x(),
            d.y.0,
            p.y(),
            d.conv.0,
            algo,
            ws_ptr,
            ws_len,
            beta,
            d.w.0,
            p.w_mut(),
        ),
    }
}
