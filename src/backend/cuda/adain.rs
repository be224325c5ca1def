//! CUDA launchers for `PlaneStat`, `PlaneStatBackward`, `AdainForward` and `AdainBackward`
//! (`src/ops/adain.rs`, kernels in `cuda/adain.cu`).
//!
//! Every plane kernel runs one warp per plane (planes of ≤ 1024 elements) or one block per plane.
//! AdaIN computes the style statistics once (`style_stats`, into an f32/f64 scratch of `2·Ns·C`), then
//! the content kernel. The backward is three launches: style statistics; content gradient plus the
//! per-content-plane sums `(Σdy, Σdy·x̂)` (scratch `2·N·C`); style gradient, which adds those sums per
//! style plane in increasing content-plane order (the CPU's order; no atomics).
//!
//! Invariants: buffer lengths are checked against the geometry before any launch; outputs are returned
//! in the inputs' dtype; nothing is launched for empty outputs.

use super::softmax::check_len;
use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::{acc_dtype, product, rows::RowGroup};
use crate::ops::adain::{AdainBackward, AdainDims, AdainForward, PlaneStat, PlaneStatBackward};
use crate::{DType, Error, Result};
use cudarc::driver::PushKernelArg;

/// `[μ, σ]` per style plane (A = f32/f64), `2·ns·c` values.
fn style_stats(g: &Gpu, op: &'static str, d: &AdainDims, s: &CudaStorage) -> Result<CudaStorage> {
    let splanes = d.ns * d.c;
    let mut stats = g.alloc(acc_dtype(s.dtype()), 2 * splanes)?;
    if splanes > 0 {
        let grp = RowGroup::for_contiguous(d.hws);
        let f = g.func(
            "adain",
            &format!("style_stats_{}_{}", grp.name(), suffix(s.dtype())),
        )?;
        let (planes64, hw64, md) = (splanes as i64, d.hws as i64, d.hws as f64);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&planes64)
            .arg(&hw64)
            .arg(&md)
            .arg(&d.eps)
            .arg(s.buf())
            .arg(stats.buf_mut());
        // SAFETY: matches `style_stats_{warp,block}_<T>(i64, i64, double, double, const T*, A*)`; s
        // holds ns·c·hws T (checked by the caller), stats 2·ns·c A.
        unsafe { b.launch(g.launch_cfg(grp.launch(splanes, g.sms()))) }.cu(op)?;
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
        let f = g.func(
            "adain",
            &format!("plane_stat_{}_{}", grp.name(), suffix(x.dtype())),
        )?;
        let (planes64, hw64, md) = (planes as i64, hw as i64, hw as f64);
        let want_std = self.std_eps.is_some() as i32;
        let eps = self.std_eps.unwrap_or(0.0);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&planes64)
            .arg(&hw64)
            .arg(&md)
            .arg(&want_std)
            .arg(&eps)
            .arg(x.buf())
            .arg(out.buf_mut());
        // SAFETY: matches `plane_stat_{warp,block}_<T>(i64, i64, double, int, double, const T*, T*)`;
        // x holds planes·hw T, out planes T.
        unsafe { b.launch(g.launch_cfg(grp.launch(planes, g.sms()))) }.cu(OP)?;
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
        let (planes64, hw64, md) = (planes as i64, hw as i64, hw as f64);
        if self.std {
            let (x, sd) = (inputs[0], inputs[1]);
            check_len(OP, "x", x, total)?;
            check_len(OP, "std", sd, planes)?;
            let grp = RowGroup::for_contiguous(hw);
            let f = g.func(
                "adain",
                &format!("plane_stat_bwd_std_{}_{}", grp.name(), suffix(dy.dtype())),
            )?;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&planes64)
                .arg(&hw64)
                .arg(&md)
                .arg(x.buf())
                .arg(sd.buf())
                .arg(dy.buf())
                .arg(dx.buf_mut());
            // SAFETY: matches `plane_stat_bwd_std_{warp,block}_<T>(i64, i64, double, const T*,
            // const T*, const T*, T*)`; x and dx hold planes·hw T, std and dy planes T (checked).
            unsafe { b.launch(g.launch_cfg(grp.launch(planes, g.sms()))) }.cu(OP)?;
        } else {
            let f = g.func(
                "adain",
                &format!("plane_stat_bwd_mean_{}", suffix(dy.dtype())),
            )?;
            let total64 = total as i64;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&total64)
                .arg(&hw64)
                .arg(&md)
                .arg(dy.buf())
                .arg(dx.buf_mut());
            // SAFETY: matches `plane_stat_bwd_mean_<T>(i64, i64, double, const T*, T*)`; dx holds
            // planes·hw T and every i/hw < planes = dy.len().
            unsafe { b.launch(g.grid(total)) }.cu(OP)?;
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
        let stats = style_stats(g, OP, &d, style)?;
        let grp = RowGroup::for_contiguous(d.hw);
        let f = g.func(
            "adain",
            &format!("adain_fwd_{}_{}", grp.name(), suffix(content.dtype())),
        )?;
        let v: [i64; 4] = [planes as i64, d.hw as i64, d.c as i64, d.ns as i64];
        let md = d.hw as f64;
        let mut b = g.stream.launch_builder(&f);
        b.arg(&v[0])
            .arg(&v[1])
            .arg(&v[2])
            .arg(&v[3])
            .arg(&md)
            .arg(&d.eps)
            .arg(content.buf())
            .arg(stats.buf())
            .arg(out.buf_mut());
        // SAFETY: matches `adain_fwd_{warp,block}_<T>(i64, i64, i64, i64, double, double, const T*,
        // const A*, T*)`; content/out hold n·c·hw T, stats 2·ns·c A and every style plane index is
        // < ns·c (p mod c when ns == 1, p < n·c = ns·c otherwise).
        unsafe { b.launch(g.launch_cfg(grp.launch(planes, g.sms()))) }.cu(OP)?;
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
        let stats = style_stats(g, OP, &d, style)?;
        let mut sums = g.alloc(acc_dtype(dt), 2 * planes)?;
        let (planes64, hw64, c64, ns64, n64) = (
            planes as i64,
            d.hw as i64,
            d.c as i64,
            d.ns as i64,
            d.n as i64,
        );
        let md = d.hw as f64;
        let grp = RowGroup::for_contiguous(d.hw);
        let f = g.func(
            "adain",
            &format!("adain_bwd_content_{}_{}", grp.name(), suffix(dt)),
        )?;
        let mut b = g.stream.launch_builder(&f);
        b.arg(&planes64)
            .arg(&hw64)
            .arg(&c64)
            .arg(&ns64)
            .arg(&md)
            .arg(&d.eps)
            .arg(content.buf())
            .arg(stats.buf())
            .arg(dy.buf())
            .arg(dc.buf_mut())
            .arg(sums.buf_mut());
        // SAFETY: matches `adain_bwd_content_{warp,block}_<T>(i64, i64, i64, i64, double, double,
        // const T*, const A*, const T*, T*, A*)`; content, dy, dc hold n·c·hw T (checked), stats
        // 2·ns·c A, sums 2·n·c A.
        unsafe { b.launch(g.launch_cfg(grp.launch(planes, g.sms()))) }.cu(OP)?;

        let splanes = d.ns * d.c;
        let sgrp = RowGroup::for_contiguous(d.hws);
        let f = g.func(
            "adain",
            &format!("adain_bwd_style_{}_{}", sgrp.name(), suffix(dt)),
        )?;
        let (splanes64, hws64, msd) = (splanes as i64, d.hws as i64, d.hws as f64);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&splanes64)
            .arg(&hws64)
            .arg(&c64)
            .arg(&n64)
            .arg(&ns64)
            .arg(&msd)
            .arg(style.buf())
            .arg(stats.buf())
            .arg(sums.buf())
            .arg(ds.buf_mut());
        // SAFETY: matches `adain_bwd_style_{warp,block}_<T>(i64, i64, i64, i64, i64, double, const T*,
        // const A*, const A*, T*)`; style and ds hold ns·c·hws T, stats 2·ns·c A; the content planes
        // read are b·c + sp < n·c (ns == 1) or sp < ns·c = n·c, all within sums (2·n·c A).
        unsafe { b.launch(g.launch_cfg(sgrp.launch(splanes, g.sms()))) }.cu(OP)?;
        Ok(vec![dc, ds])
    }
}
