//! CUDA launchers for `BatchNormForward` and `BatchNormBackward` (`src/ops/batch_norm.rs`, kernels and
//! grid mappings in `cuda/batch_norm.cu`), plus the small checks the pool/resize/dropout launchers share.
//!
//! Forward: training = per-channel Welford statistics (`bn_stats_*`, S blocks per channel writing
//! partials), a per-channel finalize (saved statistics, running statistics, scale/shift), then one
//! elementwise pass (`bn_fwd_apply_*`) with the optional residual add and ReLU; eval = finalize + apply.
//! Backward: per-channel (Σg, Σg·x̂) partials (`bn_bwd_reduce_*`), a finalize (dγ, dβ and the
//! coefficients), then one elementwise pass writing dx and, with a residual, dresidual.
//!
//! Dtypes: `cuda::run` hands the launcher inputs of one dtype T; with f16 activations and f32
//! parameters it has widened x/residual (forward) and x/y/dy (backward) to f32. The big outputs (y, dx,
//! dresidual) are then written straight in the requested f16 (one rounding, like the CPU runner's
//! narrowing) instead of being cast afterwards; the per-channel outputs are written in the compute
//! type (f32, or f64 for f64) and `run` casts them when the op asked for another dtype.
//!
//! Invariants: every buffer length is checked against `(n, c, hw)` before a launch; 16-byte vector
//! accesses are used only when `hw` is a multiple of the vector width and every big buffer is 16-byte
//! aligned (checked); nothing is launched for empty outputs; all scratch is written before it is read.

use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::batch_norm::{self as plan, big_out_dtype, reduce_launch, splits};
use crate::ops::batch_norm::{BatchNormBackward, BatchNormForward};
use crate::{DType, Error, Result};
use cudarc::driver::{DevicePtr, PushKernelArg};

pub(super) use crate::backend::kernel_abi::{acc_dtype, product};

/// Checks that `s` holds exactly `n` elements.
pub(super) fn check_len(op: &'static str, what: &str, s: &CudaStorage, n: usize) -> Result<()> {
    if s.len() != n {
        return Err(Error::bad(
            op,
            format!("{what} holds {} elements, the kernel needs {n}", s.len()),
        ));
    }
    Ok(())
}

/// Whether `s`'s device address is 16-byte aligned (allocations are; checked, not assumed).
fn aligned16(g: &Gpu, s: &CudaStorage) -> bool {
    let (ptr, _sync) = s.buf().device_ptr(&g.stream);
    ptr % 16 == 0
}

/// `(V, "v" | "s")`: the vector width the kernels use for planes of `hw` elements.
fn pick_vec(g: &Gpu, hw: usize, dtype: DType, bufs: &[&CudaStorage]) -> (usize, &'static str) {
    plan::pick_vec(hw, dtype, bufs.iter().all(|s| aligned16(g, s)))
}

impl CudaKernel for BatchNormForward {
    fn launch(&self, inputs: &[&CudaStorage], out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "batch_norm";
        let want = 5 + self.add_residual as usize;
        if inputs.len() != want || out.len() != 5 {
            return Err(Error::bad(
                OP,
                format!(
                    "kernel expects {want} inputs and 5 outputs, got {} and {}",
                    inputs.len(),
                    out.len()
                ),
            ));
        }
        let (n, c, hw) = (self.n, self.c, self.hw);
        let total = product(OP, &[n, c, hw])?;
        let (x, gamma, beta, rm, rv) = (inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]);
        check_len(OP, "x", x, total)?;
        for (what, s) in [
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", rm),
            ("running_var", rv),
        ] {
            check_len(OP, what, s, c)?;
        }
        let res = if self.add_residual {
            check_len(OP, "residual", inputs[5], total)?;
            Some(inputs[5])
        } else {
            None
        };
        let dt = x.dtype();
        let a = acc_dtype(dt);
        let y_dt = big_out_dtype(dt, out[0]);
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(y_dt, total)?;
        let mut save_mean = g.alloc(a, c)?;
        let mut save_invstd = g.alloc(a, c)?;
        let mut new_rm = g.alloc(a, c)?;
        let mut new_rv = g.alloc(a, c)?;
        if c == 0 {
            return Ok(vec![y, save_mean, save_invstd, new_rm, new_rv]);
        }
        let sfx = suffix(dt);
        let mut bufs = vec![x, &y];
        bufs.extend(res);
        let (v, vs) = pick_vec(g, hw, dt, &bufs);
        let m = n * hw;
        let mut coef = g.alloc(a, 2 * c)?;
        let (c64, hw64) = (c as i64, hw as i64);

        let (s, part) = if self.training {
            let items = n * (hw / v);
            let s = splits(g.sms(), c, items);
            let mut part = g.alloc(a, 3 * c * s)?;
            let f = g.func("batch_norm", &format!("bn_stats_{sfx}_{vs}"))?;
            let (items64, s64) = (items as i64, s as i64);
            let mut b = g.stream.launch_builder(&f);
            b.arg(&c64)
                .arg(&hw64)
                .arg(&items64)
                .arg(&s64)
                .arg(x.buf())
                .arg(part.buf_mut());
            // SAFETY: matches `bn_stats_<T>_<v|s>(i64 c, i64 hw, i64 items, i64 splits, const T*, A*)`;
            // x holds n·c·hw T (checked), items = n·hw/V with V | hw, part holds 3·c·splits A.
            unsafe { b.launch(g.launch_cfg(reduce_launch(c * s))) }.cu(OP)?;
            (s, part)
        } else {
            // Not read in eval mode; a valid pointer all the same.
            (1, g.alloc(a, 1)?)
        };

        let f = g.func("batch_norm", &format!("bn_fwd_finalize_{sfx}"))?;
        let (s64, training, md) = (s as i64, self.training as i32, m as f64);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&c64)
            .arg(&s64)
            .arg(&training)
            .arg(&md)
            .arg(&self.eps)
            .arg(&self.momentum)
            .arg(gamma.buf())
            .arg(beta.buf())
            .arg(rm.buf())
            .arg(rv.buf())
            .arg(part.buf())
            .arg(save_mean.buf_mut())
            .arg(save_invstd.buf_mut())
            .arg(new_rm.buf_mut())
            .arg(new_rv.buf_mut())
            .arg(coef.buf_mut());
        // SAFETY: matches `bn_fwd_finalize_<T>(i64, i64, int, double, double, double, const T* ×4,
        // const A*, A* ×5)`; params hold c T (checked), part 3·c·splits A (read only in training),
        // the outputs c A and coef 2·c A.
        unsafe { b.launch(g.grid(c)) }.cu(OP)?;

        if total > 0 {
            let items = total / v;
            let f = g.func(
                "batch_norm",
                &format!("bn_fwd_apply_{sfx}_{}_{vs}", suffix(y_dt)),
            )?;
            let (items64, relu, has_res) = (items as i64, self.relu as i32, res.is_some() as i32);
            let r = res.unwrap_or(x);
            let mut b = g.stream.launch_builder(&f);
            b.arg(&items64)
                .arg(&c64)
                .arg(&hw64)
                .arg(&relu)
                .arg(&has_res)
                .arg(x.buf())
                .arg(r.buf())
                .arg(coef.buf())
                .arg(y.buf_mut());
            // SAFETY: matches `bn_fwd_apply_<T>_<TO>_<v|s>(i64, i64, i64, int, int, const T*, const T*,
            // const A*, TO*)`; x, residual (x itself when absent, then unread) and y hold n·c·hw
            // elements, V | hw and all three are 16-byte aligned when V > 1.
            unsafe { b.launch(g.grid(items)) }.cu(OP)?;
        }
        Ok(vec![y, save_mean, save_invstd, new_rm, new_rv])
    }
}

impl CudaKernel for BatchNormBackward {
    fn launch(&self, inputs: &[&CudaStorage], out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "batch_norm_backward";
        let n_out = 3 + self.add_residual as usize;
        if inputs.len() != 6 || out.len() != n_out {
            return Err(Error::bad(
                OP,
                format!(
                    "kernel expects 6 inputs and {n_out} outputs, got {} and {}",
                    inputs.len(),
                    out.len()
                ),
            ));
        }
        let (n, c, hw) = (self.n, self.c, self.hw);
        let total = product(OP, &[n, c, hw])?;
        let (x, gamma, mean, invstd, y, dy) = (
            inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5],
        );
        for (what, s, len) in [
            ("x", x, total),
            ("gamma", gamma, c),
            ("save_mean", mean, c),
            ("save_invstd", invstd, c),
            ("y", y, total),
            ("dy", dy, total),
        ] {
            check_len(OP, what, s, len)?;
        }
        let dt = x.dtype();
        let a = acc_dtype(dt);
        // dx and dresidual share one kernel output type.
        let mut dx_dt = big_out_dtype(dt, out[0]);
        if self.add_residual && big_out_dtype(dt, out[3]) != dx_dt {
            dx_dt = dt;
        }
        let g = gpu(x.ordinal())?;
        let mut dx = g.alloc(dx_dt, total)?;
        let mut dgamma = g.alloc(a, c)?;
        let mut dbeta = g.alloc(a, c)?;
        let mut dres = if self.add_residual {
            Some(g.alloc(dx_dt, total)?)
        } else {
            None
        };
        let finish = |dx, dgamma, dbeta, dres: Option<CudaStorage>| {
            let mut v = vec![dx, dgamma, dbeta];
            v.extend(dres);
            v
        };
        if c == 0 {
            return Ok(finish(dx, dgamma, dbeta, dres));
        }
        let sfx = suffix(dt);
        let mut bufs = vec![x, y, dy, &dx];
        bufs.extend(dres.as_ref());
        let (v, vs) = pick_vec(g, hw, dt, &bufs);
        let m = n * hw;
        let (c64, hw64, relu) = (c as i64, hw as i64, self.relu as i32);

        let items = n * (hw / v);
        let s = splits(g.sms(), c, items);
        let mut part = g.alloc(a, 2 * c * s)?;
        let f = g.func("batch_norm", &format!("bn_bwd_reduce_{sfx}_{vs}"))?;
        let (items64, s64) = (items as i64, s as i64);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&c64)
            .arg(&hw64)
            .arg(&items64)
            .arg(&s64)
            .arg(&relu)
            .arg(x.buf())
            .arg(mean.buf())
            .arg(invstd.buf())
            .arg(y.buf())
            .arg(dy.buf())
            .arg(part.buf_mut());
        // SAFETY: matches `bn_bwd_reduce_<T>_<v|s>(i64, i64, i64, i64, int, const T* ×5, A*)`; x, y,
        // dy hold n·c·hw T, mean/invstd c T (checked), part 2·c·splits A; V | hw.
        unsafe { b.launch(g.launch_cfg(reduce_launch(c * s))) }.cu(OP)?;

        let mut coef = g.alloc(a, 5 * c)?;
        let f = g.func("batch_norm", &format!("bn_bwd_finalize_{sfx}"))?;
        let md = m as f64;
        let mut b = g.stream.launch_builder(&f);
        b.arg(&c64)
            .arg(&s64)
            .arg(&md)
            .arg(gamma.buf())
            .arg(mean.buf())
            .arg(invstd.buf())
            .arg(part.buf())
            .arg(dgamma.buf_mut())
            .arg(dbeta.buf_mut())
            .arg(coef.buf_mut());
        // SAFETY: matches `bn_bwd_finalize_<T>(i64, i64, double, const T* ×3, const A*, A* ×3)`;
        // gamma/mean/invstd hold c T, part 2·c·splits A, dgamma/dbeta c A, coef 5·c A.
        unsafe { b.launch(g.grid(c)) }.cu(OP)?;

        if total > 0 {
            let items = total / v;
            let f = g.func(
                "batch_norm",
                &format!("bn_bwd_apply_{sfx}_{}_{vs}", suffix(dx_dt)),
            )?;
            let (items64, training, want_dres) =
                (items as i64, self.training as i32, self.add_residual as i32);
            // Without a residual the kernel never writes `dres`; it still needs a valid pointer.
            let mut dummy = if dres.is_none() {
                Some(g.alloc(dx_dt, 0)?)
            } else {
                None
            };
            let dres_buf = match (&mut dres, &mut dummy) {
                (Some(d), _) | (None, Some(d)) => d.buf_mut(),
                (None, None) => unreachable!("one of them is set"),
            };
            let mut b = g.stream.launch_builder(&f);
            b.arg(&items64)
                .arg(&c64)
                .arg(&hw64)
                .arg(&training)
                .arg(&relu)
                .arg(&want_dres)
                .arg(x.buf())
                .arg(y.buf())
                .arg(dy.buf())
                .arg(coef.buf())
                .arg(dx.buf_mut())
                .arg(dres_buf);
            // SAFETY: matches `bn_bwd_apply_<T>_<TO>_<v|s>(i64, i64, i64, int, int, int, const T* ×3,
            // const A*, TO*, TO*)`; x, y, dy, dx (and dres when written) hold n·c·hw elements, coef
            // 5·c A; V | hw and every big buffer is 16-byte aligned when V > 1.
            unsafe { b.launch(g.grid(items)) }.cu(OP)?;
        }
        Ok(finish(dx, dgamma, dbeta, dres))
    }
}
