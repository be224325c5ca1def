//! CUDA launchers for `PlaneStat`, `PlaneStatBackward`, `AdainForward` and `AdainBackward`
//! (`src/ops/adain.rs`, kernels in `cuda/adain.cu`).
//!
//! Every plane kernel runs one warp per plane (planes of ≤ 1024 elements) or one block per plane.
//! AdaIN computes the style statistics once (`style_stats`, into an f32/f64 scratch of `2·Ns·C`), then
//! the content kernel. The backward is three launches: style statistics; content gradient plus the
//! per-content-plane sums `(Σdy, Σdy·x̂)` (scratch `2·N·C`); style gradient, which adds those sums per
//! style plane in increasing content-plane order (the CPU's order; no atomics). The kernel names and
//! argument lists come from `kernel_abi/adain.rs`.
//!
//! Invariants: buffer lengths are checked against the geometry before any launch; outputs are returned
//! in the inputs' dtype; nothing is launched for empty outputs.

use super::softmax::check_len;
use super::{gpu, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::{acc_dtype, adain, product, rows::RowGroup};
use crate::ops::adain::{AdainBackward, AdainDims, AdainForward, PlaneStat, PlaneStatBackward};
use crate::{DType, Error, Result};

/// `[μ, σ]` per style plane (A = f32/f64), `2·ns·c` values.
fn style_stats(g: &Gpu, d: &AdainDims, s: &CudaStorage) -> Result<CudaStorage> {
    let splanes = d.ns * d.c;
    let mut stats = g.alloc(acc_dtype(s.dtype()), 2 * splanes)?;
    if splanes > 0 {
        let grp = RowGroup::for_contiguous(d.hws);
        let call = adain::style_stats(grp, s.dtype(), d, s.dptr(g), stats.dptr_mut(g));
        // SAFETY: s holds ns·c·hws T (checked by the caller), stats 2·ns·c A.
        unsafe { g.launch(&call, g.launch_cfg(grp.launch(splanes, g.sms()))) }?;
    }
    Ok(stats)
}

fn check_dims(
    op: &'static str,
    d: &AdainDims,
    content: &CudaStorage,
    style: &CudaStorage,
) -> Result<()> {
    if d.ns != 1 && d.ns != d.n {
        return Err(Error::bad(
            op,
            format!(
                "style batch {} must be 1 or the content batch {}",
                d.ns, d.n
            ),
        ));
    }
    if d.hw == 0 || d.hws == 0 {
        return Err(Error::bad(op, format!("empty planes in {d:?}")));
    }
    check_len(op, "content", content, product(op, &[d.n, d.c, d.hw])?)?;
    check_len(op, "style", style, product(op, &[d.ns, d.c, d.hws])?)
}

impl CudaKernel for PlaneStat {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "channel_stat";
        let x = inputs[0];
        let hw = self.hw;
        if hw == 0 {
            return Err(Error::bad(OP, "planes of zero elements"));
        }
        // Like the CPU (`par_chunks(hw)`), a trailing partial plane would count as a plane; the op
        // never builds one, so refuse it rather than read past a plane.
        if x.len() % hw != 0 {
            return Err(Error::bad(
                OP,
                format!("{} elements do not split into planes of {hw}", x.len()),
            ));
        }
        let planes = x.len() / hw;
        let g = gpu(x.ordinal())?;
        let mut out = g.alloc(x.dtype(), planes)?;
        if planes == 0 {
            return Ok(vec![out]);
        }
        let grp = RowGroup::for_contiguous(hw);
        let call = adain::plane_stat(
            grp,
            x.dtype(),
            planes,
            hw,
            self.std_eps,
            x.dptr(g),
            out.dptr_mut(g),
        );
        // SAFETY: x holds planes·hw T, out planes T.
        unsafe { g.launch(&call, g.launch_cfg(grp.launch(planes, g.sms()))) }?;
        Ok(vec![out])
    }
}

impl CudaKernel for PlaneStatBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "channel_stat_backward";
        let hw = self.hw;
        let dy = *inputs.last().expect("dy");
        let planes = dy.len();
        let total = product(OP, &[planes, hw])?;
        if self.std && inputs.len() != 3 {
            return Err(Error::bad(OP, "the std backward takes [x, std, dy]"));
        }
        let g = gpu(dy.ordinal())?;
        let mut dx = g.alloc(dy.dtype(), total)?;
        if total == 0 {
            return Ok(vec![dx]);
        }
        if self.std {
            let (x, sd) = (inputs[0], inputs[1]);
            check_len(OP, "x", x, total)?;
            check_len(OP, "std", sd, planes)?;
            let grp = RowGroup::for_contiguous(hw);
            let call = adain::plane_stat_bwd_std(
                grp,
                dy.dtype(),
                planes,
                hw,
                x.dptr(g),
                sd.dptr(g),
                dy.dptr(g),
                dx.dptr_mut(g),
            );
            // SAFETY: x and dx hold planes·hw T, std and dy planes T (checked).
            unsafe { g.launch(&call, g.launch_cfg(grp.launch(planes, g.sms()))) }?;
        } else {
            let call =
                adain::plane_stat_bwd_mean(dy.dtype(), total, hw, dy.dptr(g), dx.dptr_mut(g));
            // SAFETY: dx holds planes·hw T and every i/hw < planes = dy.len().
            unsafe { g.launch(&call, g.grid(total)) }?;
        }
        Ok(vec![dx])
    }
}

impl CudaKernel for AdainForward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "adain";
        let d = self.0;
        let (content, style) = (inputs[0], inputs[1]);
        check_dims(OP, &d, content, style)?;
        let g = gpu(content.ordinal())?;
        let mut out = g.alloc(content.dtype(), content.len())?;
        let planes = d.n * d.c;
        if planes == 0 {
            return Ok(vec![out]);
        }
        let stats = style_stats(g, &d, style)?;
        let grp = RowGroup::for_contiguous(d.hw);
        let call = adain::adain_fwd(
            grp,
            content.dtype(),
            &d,
            content.dptr(g),
            stats.dptr(g),
            out.dptr_mut(g),
        );
        // SAFETY: content/out hold n·c·hw T, stats 2·ns·c A and every style plane index is < ns·c
        // (p mod c when ns == 1, p < n·c = ns·c otherwise).
        unsafe { g.launch(&call, g.launch_cfg(grp.launch(planes, g.sms()))) }?;
        Ok(vec![out])
    }
}

impl CudaKernel for AdainBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "adain_backward";
        let d = self.0;
        let (content, style, dy) = (inputs[0], inputs[1], inputs[2]);
        check_dims(OP, &d, content, style)?;
        check_len(OP, "dy", dy, content.len())?;
        let g = gpu(content.ordinal())?;
        let dt = content.dtype();
        let mut dc = g.alloc(dt, content.len())?;
        let planes = d.n * d.c;
        if planes == 0 {
            // No content planes: the style gradient is zero (Σ over an empty batch).
            let ds = g.zeros(dt, style.len())?;
            return Ok(vec![dc, ds]);
        }
        let mut ds = g.alloc(dt, style.len())?;
        let stats = style_stats(g, &d, style)?;
        let mut sums = g.alloc(acc_dtype(dt), 2 * planes)?;
        let grp = RowGroup::for_contiguous(d.hw);
        let call = adain::adain_bwd_content(
            grp,
            dt,
            &d,
            content.dptr(g),
            stats.dptr(g),
            dy.dptr(g),
            dc.dptr_mut(g),
            sums.dptr_mut(g),
        );
        // SAFETY: content, dy, dc hold n·c·hw T (checked), stats 2·ns·c A, sums 2·n·c A.
        unsafe { g.launch(&call, g.launch_cfg(grp.launch(planes, g.sms()))) }?;

        let splanes = d.ns * d.c;
        let sgrp = RowGroup::for_contiguous(d.hws);
        let call = adain::adain_bwd_style(
            sgrp,
            dt,
            &d,
            style.dptr(g),
            stats.dptr(g),
            sums.dptr(g),
            ds.dptr_mut(g),
        );
        // SAFETY: style and ds hold ns·c·hws T, stats 2·ns·c A; the content planes read are
        // b·c + sp < n·c (ns == 1) or sp < ns·c = n·c, all within sums (2·n·c A).
        unsafe { g.launch(&call, g.launch_cfg(sgrp.launch(splanes, g.sms()))) }?;
        Ok(vec![dc, ds])
    }
}
