//! CUDA launchers for the losses of `src/ops/loss.rs` (kernels in `cuda/loss.cu`):
//! `CrossEntropySoft`, `CrossEntropySoftBackward`, `Distillation`, `DistillationBackward`, `PairLoss`
//! and `PairLossBackward`.
//!
//! Forward losses are two launches: a row (or chunk) kernel writes one partial sum per row (per chunk
//! for the pair losses) into an f32/f64 scratch buffer, then `mean_finish` — one block — reduces the
//! partials in a fixed order and applies the batch mean. The number of chunks of a pair loss is a
//! function of the element count only, so a loss is bit-for-bit reproducible. Backward kernels write
//! each row's (or element's) gradient directly.
//!
//! Contract details kept from the CPU kernels: scalars (1/N, 1/T, T²/N, T/N) are computed in f64 and
//! rounded to the compute type; an empty batch gives NaN (0/0) like the CPU; `dy` is the one-element
//! upstream gradient, read on the device (no host sync).

use super::softmax::check_len;
use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::loss::{
    mean_finish_launch, pair_code, pair_partial_launch, pair_parts,
};
use crate::backend::kernel_abi::{acc_dtype, rows::RowGroup};
use crate::ops::loss::{
    CrossEntropySoft, CrossEntropySoftBackward, Distillation, DistillationBackward, PairLoss,
    PairLossBackward,
};
use crate::{DType, Error, Result};
use cudarc::driver::PushKernelArg;

fn rows_len(op: &'static str, n: usize, k: usize) -> Result<usize> {
    n.checked_mul(k)
        .ok_or_else(|| Error::bad(op, format!("{n} × {k} overflows")))
}

/// `out[0] = (Σ parts[..count] / div) · mul` in dtype `dtype`, summed in a fixed order by one block.
fn mean_finish(
    g: &Gpu,
    op: &str,
    dtype: DType,
    parts: &CudaStorage,
    count: usize,
    div: f64,
    mul: f64,
) -> Result<CudaStorage> {
    let mut out = g.alloc(dtype, 1)?;
    let f = g.func("loss", &format!("mean_finish_{}", suffix(dtype)))?;
    let count64 = count as i64;
    let mut b = g.stream.launch_builder(&f);
    b.arg(&count64)
        .arg(parts.buf())
        .arg(&div)
        .arg(&mul)
        .arg(out.buf_mut());
    let cfg = g.launch_cfg(mean_finish_launch());
    // SAFETY: matches `mean_finish_<T>(i64, const A*, double, double, T*)`; `parts` holds at least
    // `count` values of A (the caller allocated it so), `out` one T. One block of 256 threads.
    unsafe { b.launch(cfg) }.cu(op)?;
    Ok(out)
}

impl CudaKernel for CrossEntropySoft {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "cross_entropy_soft";
        let (x, t) = (inputs[0], inputs[1]);
        let (n, k) = (self.n, self.k);
        let nk = rows_len(OP, n, k)?;
        check_len(OP, "logits", x, nk)?;
        check_len(OP, "targets", t, nk)?;
        let g = gpu(x.ordinal())?;
        let dt = x.dtype();
        let mut rows = g.alloc(acc_dtype(dt), n)?;
        if n > 0 {
            let grp = RowGroup::for_contiguous(k);
            let f = g.func(
                "loss",
                &format!("ce_soft_rows_{}_{}", grp.name(), suffix(dt)),
            )?;
            let (n64, k64) = (n as i64, k as i64);
            let mut b = g.stream.launch_builder(&f);
            b.arg(&n64)
                .arg(&k64)
                .arg(x.buf())
                .arg(t.buf())
                .arg(rows.buf_mut());
            // SAFETY: matches `ce_soft_rows_{warp,block}_<T>(i64, i64, const T*, const T*, A*)`; x and
            // t hold n·k T (checked), rows holds n A; 256-thread blocks.
            unsafe { b.launch(g.launch_cfg(grp.launch(n, g.sms()))) }.cu(OP)?;
        }
        let loss = mean_finish(g, OP, dt, &rows, n, n as f64, 1.0)?;
        Ok(vec![loss])
    }
}

impl CudaKernel for CrossEntropySoftBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "cross_entropy_soft_backward";
        let (x, t, dy) = (inputs[0], inputs[1], inputs[2]);
        let (n, k) = (self.n, self.k);
        let nk = rows_len(OP, n, k)?;
        check_len(OP, "logits", x, nk)?;
        check_len(OP, "targets", t, nk)?;
        check_len(OP, "dy", dy, 1)?;
        let g = gpu(x.ordinal())?;
        let dt = x.dtype();
        let mut dx = g.alloc(dt, nk)?;
        if nk == 0 {
            return Ok(vec![dx]);
        }
        let grp = RowGroup::for_contiguous(k);
        let f = g.func(
            "loss",
            &format!("ce_soft_bwd_{}_{}", grp.name(), suffix(dt)),
        )?;
        let (n64, k64, nd) = (n as i64, k as i64, n as f64);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&n64)
            .arg(&k64)
            .arg(&nd)
            .arg(x.buf())
            .arg(t.buf())
            .arg(dy.buf())
            .arg(dx.buf_mut());
        // SAFETY: matches `ce_soft_bwd_{warp,block}_<T>(i64, i64, double, const T*, const T*,
        // const T*, T*)`; x, t, dx hold n·k T and dy one T (checked).
        unsafe { b.launch(g.launch_cfg(grp.launch(n, g.sms()))) }.cu(OP)?;
        Ok(vec![dx])
    }
}

impl CudaKernel for Distillation {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "distillation_loss";
        let (s, t) = (inputs[0], inputs[1]);
        let (n, k) = (self.n, self.k);
        let nk = rows_len(OP, n, k)?;
        check_len(OP, "student", s, nk)?;
        check_len(OP, "teacher", t, nk)?;
        let g = gpu(s.ordinal())?;
        let dt = s.dtype();
        let mut rows = g.alloc(acc_dtype(dt), n)?;
        if n > 0 {
            let grp = RowGroup::for_contiguous(k);
            let f = g.func(
                "loss",
                &format!("distill_rows_{}_{}", grp.name(), suffix(dt)),
            )?;
            let (n64, k64, inv_t) = (n as i64, k as i64, 1.0 / self.temperature);
            let mut b = g.stream.launch_builder(&f);
            b.arg(&n64)
                .arg(&k64)
                .arg(&inv_t)
                .arg(s.buf())
                .arg(t.buf())
                .arg(rows.buf_mut());
            // SAFETY: matches `distill_rows_{warp,block}_<T>(i64, i64, double, const T*, const T*,
            // A*)`; s and t hold n·k T (checked), rows n A.
            unsafe { b.launch(g.launch_cfg(grp.launch(n, g.sms()))) }.cu(OP)?;
        }
        let tt = self.temperature * self.temperature;
        let loss = mean_finish(g, OP, dt, &rows, n, 1.0, tt / n as f64)?;
        Ok(vec![loss])
    }
}

impl CudaKernel for DistillationBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "distillation_loss_backward";
        let (s, t, dy) = (inputs[0], inputs[1], inputs[2]);
        let (n, k) = (self.n, self.k);
        let nk = rows_len(OP, n, k)?;
        check_len(OP, "student", s, nk)?;
        check_len(OP, "teacher", t, nk)?;
        check_len(OP, "dy", dy, 1)?;
        let g = gpu(s.ordinal())?;
        let dt = s.dtype();
        let mut dx = g.alloc(dt, nk)?;
        if nk == 0 {
            return Ok(vec![dx]);
        }
        let grp = RowGroup::for_contiguous(k);
        let f = g.func(
            "loss",
            &format!("distill_bwd_{}_{}", grp.name(), suffix(dt)),
        )?;
        let (n64, k64) = (n as i64, k as i64);
        let (inv_t, t_over_n) = (1.0 / self.temperature, self.temperature / n as f64);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&n64)
            .arg(&k64)
            .arg(&inv_t)
            .arg(&t_over_n)
            .arg(s.buf())
            .arg(t.buf())
            .arg(dy.buf())
            .arg(dx.buf_mut());
        // SAFETY: matches `distill_bwd_{warp,block}_<T>(i64, i64, double, double, const T*,
        // const T*, const T*, T*)`; s, t, dx hold n·k T and dy one T (checked).
        unsafe { b.launch(g.launch_cfg(grp.launch(n, g.sms()))) }.cu(OP)?;
        Ok(vec![dx])
    }
}

impl CudaKernel for PairLoss {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "pair_loss";
        let (a, b) = (inputs[0], inputs[1]);
        let n = a.len();
        check_len(OP, "target", b, n)?;
        let g = gpu(a.ordinal())?;
        let dt = a.dtype();
        // The chunk count depends on n only (not on the device), so the sum order is fixed.
        let parts = pair_parts(n);
        let mut partial = g.alloc(acc_dtype(dt), parts)?;
        if parts > 0 {
            let f = g.func("loss", &format!("pair_partial_{}", suffix(dt)))?;
            let (n64, code) = (n as i64, pair_code(self.kind));
            let mut l = g.stream.launch_builder(&f);
            l.arg(&n64)
                .arg(&code)
                .arg(a.buf())
                .arg(b.buf())
                .arg(partial.buf_mut());
            let cfg = g.launch_cfg(pair_partial_launch(parts));
            // SAFETY: matches `pair_partial_<T>(i64, int, const T*, const T*, A*)`; a and b hold n T
            // (checked); exactly `parts` blocks, each writing partial[blockIdx.x] < parts.
            unsafe { l.launch(cfg) }.cu(OP)?;
        }
        // n == 0: 0/0 = NaN, as on the CPU.
        let loss = mean_finish(g, OP, dt, &partial, parts, n as f64, 1.0)?;
        Ok(vec![loss])
    }
}

impl CudaKernel for PairLossBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "pair_loss_backward";
        let (a, b, dy) = (inputs[0], inputs[1], inputs[2]);
        let n = a.len();
        check_len(OP, "target", b, n)?;
        check_len(OP, "dy", dy, 1)?;
        let g = gpu(a.ordinal())?;
        let dt = a.dtype();
        let mut da = g.alloc(dt, n)?;
        let mut db = g.alloc(dt, n)?;
        if n > 0 {
            let f = g.func("loss", &format!("pair_bwd_{}", suffix(dt)))?;
            let (n64, code, nd) = (n as i64, pair_code(self.kind), n.max(1) as f64);
            let mut l = g.stream.launch_builder(&f);
            l.arg(&n64)
                .arg(&code)
                .arg(&nd)
                .arg(a.buf())
                .arg(b.buf())
                .arg(dy.buf())
                .arg(da.buf_mut())
                .arg(db.buf_mut());
            // SAFETY: matches `pair_bwd_<T>(i64, int, double, const T*, const T*, const T*, T*, T*)`;
            // a, b, da, db hold n T and dy one T (checked).
            unsafe { l.launch(g.grid(n)) }.cu(OP)?;
        }
        Ok(vec![da, db])
    }
}
