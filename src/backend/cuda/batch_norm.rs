//! CUDA launchers for `BatchNormForward` and `BatchNormBackward` (`src/ops/batch_norm/`, kernels and
//! grid mappings in `cuda/batch_norm.cu`; plans and calls, i.e. kernel names and argument lists, in
//! `kernel_abi/batch_norm.rs`), plus the small checks the pool/resize/dropout launchers share.
//!
//! Forward: training = per-channel Welford statistics (`bn_stats_*`, S blocks per channel writing
//! partials), a per-channel finalize (saved statistics, running statistics, scale/shift), then one
//! elementwise pass (`bn_fwd_apply_*`) with the optional residual add and ReLU; eval = finalize + apply.
//! Backward: per-channel (Σg, Σg·x̂) partials (`bn_bwd_reduce_*`), a finalize (dγ, dβ and the
//! coefficients), then one elementwise pass writing dx and, with a residual, dresidual.
//! With hw = 1 ([N, C] inputs, channels-last tensors viewed as [N·H·W, C]) both reductions run the
//! row-major kernels instead (`bn_stats_rows_*`, `bn_bwd_reduce_rows_*`: 32 channels per block,
//! coalesced row loads), which write the same partials; `kernel_abi`'s `ReducePlan` picks. The
//! elementwise passes then run the row-major apply kernels (`bn_fwd_apply_rows_*`,
//! `bn_bwd_apply_rows_*`: 16 bytes of consecutive channels per access) when the vector width
//! divides C and every big buffer is 16-byte aligned, else the scalar ones; `ApplyPlan` picks.
//!
//! Dtypes: both kernels say `TAKES_MIXED_F16`, so `cuda::run` hands over f16 activations with f32
//! parameters and saved statistics (mixed-precision training) as they are. The big tensors (x,
//! residual; x, y, dy) are read in their storage type T, with no f32 copy; every per-channel input
//! is read in the compute type A = f32 (f64 for f64), cast first when it is not (c values). Only big
//! tensors of different dtypes (an f16 x with an f32 residual, say) are widened to f32 here (counted
//! by `take_widened_elements`); their big outputs (y, dx, dresidual) are then written straight in the
//! requested f16 (one rounding, like the CPU runner's narrowing) instead of being cast afterwards.
//! The per-channel outputs are written in A and `run` casts them when the op asked for another
//! dtype.
//!
//! Invariants: every buffer length is checked against `(n, c, hw)` before a launch; 16-byte vector
//! accesses are used only when every big buffer is 16-byte aligned (checked) and either `hw` is a
//! multiple of the vector width or `hw` = 1 and `c` is (the row apply kernels); nothing is launched
//! for empty outputs; all scratch is written before it is read.

use super::dispatch::widen;
use super::{gpu, layout, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::batch_norm::{
    self as plan, big_out_dtype, ApplyPlan, BwdApplyBufs, BwdFinalizeBufs, BwdReduceBufs,
    FwdFinalizeBufs, ReducePlan,
};
use crate::ops::batch_norm::{BatchNormBackward, BatchNormForward};
use crate::{DType, Error, Result};

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
    s.dptr(g) % 16 == 0
}

/// Whether every buffer of `bufs` is 16-byte aligned (the condition of every 16-byte access).
fn all_aligned16(g: &Gpu, bufs: &[&CudaStorage]) -> bool {
    bufs.iter().all(|s| aligned16(g, s))
}

/// The big tensors `big` in one storage dtype: as they are when they share one, else each f16 one
/// widened to f32 (a counted copy). `None` entries are the ones kept as they are.
fn one_big_dtype(op: &'static str, big: &[&CudaStorage]) -> Result<Vec<Option<CudaStorage>>> {
    let mixed = big.iter().any(|s| s.dtype() != big[0].dtype());
    big.iter()
        .map(|s| {
            (mixed && s.dtype() == DType::F16)
                .then(|| widen(op, s))
                .transpose()
        })
        .collect()
}

/// The per-channel inputs `small` in the compute type `a`: `None` where one already is, else a cast
/// copy (c values).
fn in_acc(small: &[&CudaStorage], a: DType) -> Result<Vec<Option<CudaStorage>>> {
    small
        .iter()
        .map(|s| (s.dtype() != a).then(|| layout::cast(s, a)).transpose())
        .collect()
}

/// `ss` with each replaced by its copy in `copies` where there is one.
fn chosen<'a>(ss: &[&'a CudaStorage], copies: &'a [Option<CudaStorage>]) -> Vec<&'a CudaStorage> {
    ss.iter()
        .zip(copies)
        .map(|(s, c)| c.as_ref().unwrap_or(s))
        .collect()
}

impl CudaKernel for BatchNormForward {
    const TAKES_MIXED_F16: bool = true;

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
        let mut big = vec![x];
        big.extend(res);
        let big_copies = one_big_dtype(OP, &big)?;
        let big = chosen(&big, &big_copies);
        let (x, res) = (big[0], big.get(1).copied());
        let dt = x.dtype();
        let a = acc_dtype(dt);
        let params = [gamma, beta, rm, rv];
        let param_copies = in_acc(&params, a)?;
        let [gamma, beta, rm, rv] = chosen(&params, &param_copies)[..] else {
            unreachable!("four parameters")
        };
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
        let mut bufs = vec![x, &y];
        bufs.extend(res);
        let aligned = all_aligned16(g, &bufs);
        let (v, vs) = plan::pick_vec(hw, dt, aligned);
        let apply = ApplyPlan::new(n, c, hw, dt, aligned);
        let m = n * hw;
        let mut coef = g.alloc(a, 2 * c)?;

        let (s, part) = if self.training {
            let reduce = ReducePlan::new(g.sms(), n, c, hw, (v, vs));
            let s = reduce.splits;
            let mut part = g.alloc(a, 3 * c * s)?;
            let call = reduce.stats(dt, x.dptr(g), part.dptr_mut(g));
            // SAFETY: x holds n·c·hw T (checked; rows = n when hw = 1, else items = n·hw/V with
            // V | hw), part holds 3·c·splits A.
            unsafe { g.launch(&call, g.launch_cfg(reduce.launch())) }?;
            (s, part)
        } else {
            // Not read in eval mode; a valid pointer all the same.
            (1, g.alloc(a, 1)?)
        };

        let call = plan::fwd_finalize(
            dt,
            c,
            s,
            self.training,
            m,
            self.eps,
            self.momentum,
            FwdFinalizeBufs {
                gamma: gamma.dptr(g),
                beta: beta.dptr(g),
                rm: rm.dptr(g),
                rv: rv.dptr(g),
                part: part.dptr(g),
                save_mean: save_mean.dptr_mut(g),
                save_invstd: save_invstd.dptr_mut(g),
                new_rm: new_rm.dptr_mut(g),
                new_rv: new_rv.dptr_mut(g),
                coef: coef.dptr_mut(g),
            },
        );
        // SAFETY: params hold c A (checked, then in A), part 3·c·splits A (read only in
        // training), the outputs c A and coef 2·c A.
        unsafe { g.launch(&call, g.grid(c)) }?;

        if total > 0 {
            let call = apply.fwd_apply(
                dt,
                y_dt,
                self.relu,
                x.dptr(g),
                res.map(|r| r.dptr(g)),
                coef.dptr(g),
                y.dptr_mut(g),
            );
            // SAFETY: x, residual (x itself when absent, then unread) and y hold n·c·hw elements,
            // coef 2·c A; when V > 1 all three are 16-byte aligned and V | hw, or hw = 1 and V | c
            // (the row kernels).
            unsafe { g.launch(&call, g.grid(apply.items)) }?;
        }
        Ok(vec![y, save_mean, save_invstd, new_rm, new_rv])
    }
}

impl CudaKernel for BatchNormBackward {
    const TAKES_MIXED_F16: bool = true;

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
        let big = [x, y, dy];
        let big_copies = one_big_dtype(OP, &big)?;
        let [x, y, dy] = chosen(&big, &big_copies)[..] else {
            unreachable!("three big tensors")
        };
        let dt = x.dtype();
        let a = acc_dtype(dt);
        let small = [gamma, mean, invstd];
        let small_copies = in_acc(&small, a)?;
        let [gamma, mean, invstd] = chosen(&small, &small_copies)[..] else {
            unreachable!("three per-channel inputs")
        };
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
        let mut bufs = vec![x, y, dy, &dx];
        bufs.extend(dres.as_ref());
        let aligned = all_aligned16(g, &bufs);
        let (v, vs) = plan::pick_vec(hw, dt, aligned);
        let apply = ApplyPlan::new(n, c, hw, dt, aligned);
        let m = n * hw;

        let reduce = ReducePlan::new(g.sms(), n, c, hw, (v, vs));
        let s = reduce.splits;
        let mut part = g.alloc(a, 2 * c * s)?;
        let call = reduce.bwd_reduce(
            dt,
            self.relu,
            BwdReduceBufs {
                x: x.dptr(g),
                mean: mean.dptr(g),
                invstd: invstd.dptr(g),
                y: y.dptr(g),
                dy: dy.dptr(g),
                part: part.dptr_mut(g),
            },
        );
        // SAFETY: x, y, dy hold n·c·hw T, mean/invstd c A (checked), part 2·c·splits A; V | hw
        // (the row kernels, hw = 1, read n rows of c).
        unsafe { g.launch(&call, g.launch_cfg(reduce.launch())) }?;

        let mut coef = g.alloc(a, 5 * c)?;
        let call = plan::bwd_finalize(
            dt,
            c,
            s,
            m,
            BwdFinalizeBufs {
                gamma: gamma.dptr(g),
                mean: mean.dptr(g),
                invstd: invstd.dptr(g),
                part: part.dptr(g),
                dgamma: dgamma.dptr_mut(g),
                dbeta: dbeta.dptr_mut(g),
                coef: coef.dptr_mut(g),
            },
        );
        // SAFETY: gamma/mean/invstd hold c A, part 2·c·splits A, dgamma/dbeta c A, coef 5·c A.
        unsafe { g.launch(&call, g.grid(c)) }?;

        if total > 0 {
            // Without a residual the kernel never writes `dres`; it still needs a valid pointer.
            let mut dummy = if dres.is_none() {
                Some(g.alloc(dx_dt, 0)?)
            } else {
                None
            };
            let dres_ptr = match (&mut dres, &mut dummy) {
                (Some(d), _) | (None, Some(d)) => d.dptr_mut(g),
                (None, None) => unreachable!("one of them is set"),
            };
            let call = apply.bwd_apply(
                dt,
                dx_dt,
                self.training,
                self.relu,
                self.add_residual,
                BwdApplyBufs {
                    x: x.dptr(g),
                    y: y.dptr(g),
                    dy: dy.dptr(g),
                    coef: coef.dptr(g),
                    dx: dx.dptr_mut(g),
                    dres: dres_ptr,
                },
            );
            // SAFETY: x, y, dy, dx (and dres when written) hold n·c·hw elements, coef 5·c A; when
            // V > 1 every big buffer is 16-byte aligned and V | hw, or hw = 1 and V | c (the row
            // kernels).
            unsafe { g.launch(&call, g.grid(apply.items)) }?;
        }
        Ok(finish(dx, dgamma, dbeta, dres))
    }
}
