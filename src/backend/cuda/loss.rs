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
//! upstream gradient, read on the device (no host sync). The kernel names and argument lists (and
//! those scalars) come from `kernel_abi/loss.rs`.

use super::softmax::check_len;
use super::{gpu, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::loss::{self, mean_finish_launch, pair_partial_launch, pair_parts};
use crate::backend::kernel_abi::{acc_dtype, rows::RowGroup};
use crate::ops::loss::{
    CrossEntropySoft, CrossEntropySoftBackward, Distillation, DistillationBackward, PairLoss,
    PairLossBackward,
};
use crate::{DType, Error, Result};

fn rows_len(op: &'static str, n: usize, k: usize) -> Result<usize> {
    n.checked_mul(k)
        .ok_or_else(|| Error::bad(op, format!("{n} × {k} overflows")))
}

/// `out[0] = (Σ parts[..count] / div) · mul` in dtype `dtype`, summed in a fixed order by one block.
fn mean_finish(
    g: &Gpu,
    dtype: DType,
    parts: &CudaStorage,
    count: usize,
    div: f64,
    mul: f64,
) -> Result<CudaStorage> {
    let mut out = g.alloc(dtype, 1)?;
    let call = loss::mean_finish(dtype, count, parts.dptr(g), div, mul, out.dptr_mut(g));
    // SAFETY: `parts` holds at least `count` values of A (the caller allocated it so), `out` one T.
    unsafe { g.launch(&call, g.launch_cfg(mean_finish_launch())) }?;
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
            let call = loss::ce_soft_rows(grp, dt, n, k, x.dptr(g), t.dptr(g), rows.dptr_mut(g));
            // SAFETY: x and t hold n·k T (checked), rows holds n A.
            unsafe { g.launch(&call, g.launch_cfg(grp.launch(n, g.sms()))) }?;
        }
        let loss = mean_finish(g, dt, &rows, n, n as f64, 1.0)?;
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
        let call = loss::ce_soft_bwd(
            grp,
            dt,
            n,
            k,
            x.dptr(g),
            t.dptr(g),
            dy.dptr(g),
            dx.dptr_mut(g),
        );
        // SAFETY: x, t, dx hold n·k T and dy one T (checked).
        unsafe { g.launch(&call, g.launch_cfg(grp.launch(n, g.sms()))) }?;
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
            let call = loss::distill_rows(
                grp,
                dt,
                n,
                k,
                self.temperature,
                s.dptr(g),
                t.dptr(g),
                rows.dptr_mut(g),
            );
            // SAFETY: s and t hold n·k T (checked), rows n A.
            unsafe { g.launch(&call, g.launch_cfg(grp.launch(n, g.sms()))) }?;
        }
        let tt = self.temperature * self.temperature;
        let loss = mean_finish(g, dt, &rows, n, 1.0, tt / n as f64)?;
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
        let call = loss::distill_bwd(
            grp,
            dt,
            n,
            k,
            self.temperature,
            s.dptr(g),
            t.dptr(g),
            dy.dptr(g),
            dx.dptr_mut(g),
        );
        // SAFETY: s, t, dx hold n·k T and dy one T (checked).
        unsafe { g.launch(&call, g.launch_cfg(grp.launch(n, g.sms()))) }?;
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
            let call =
                loss::pair_partial(self.kind, dt, n, a.dptr(g), b.dptr(g), partial.dptr_mut(g));
            // SAFETY: a and b hold n T (checked); exactly `parts` blocks, each writing
            // partial[blockIdx.x] < parts.
            unsafe { g.launch(&call, g.launch_cfg(pair_partial_launch(parts))) }?;
        }
        // n == 0: 0/0 = NaN, as on the CPU.
        let loss = mean_finish(g, dt, &partial, parts, n as f64, 1.0)?;
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
            let call = loss::pair_bwd(
                self.kind,
                dt,
                n,
                a.dptr(g),
                b.dptr(g),
                dy.dptr(g),
                da.dptr_mut(g),
                db.dptr_mut(g),
            );
            // SAFETY: a, b, da, db hold n T and dy one T (checked).
            unsafe { g.launch(&call, g.grid(n)) }?;
        }
        Ok(vec![da, db])
    }
}
