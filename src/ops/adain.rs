//! Per-channel statistics of images and adaptive instance normalisation (AdaIN, Huang & Belongie
//! 2017): `channel_mean`, `channel_std` and the fused `adain` with an analytic backward.
//!
//! Invariants:
//! - Statistics are per `(n, c)` plane over `H×W` (`M = H·W` elements, `M ≥ 2`); the std is
//!   `sqrt(var_unbiased + eps)` with `var_unbiased = Σ(x − μ)² / (M − 1)`, exactly as the reference
//!   `calc_mean_std` computes it (`feat.view(N, C, -1).var(dim=2) + eps`, then `sqrt`).
//! - `adain(content, style) = σs · (c − μc)/σc + μs`. The style batch is `N` (plane for plane) or
//!   `1` (broadcast over the content batch); its spatial size may differ from the content's.
//! - Forward is one kernel and backward one kernel returning gradients for content and style; both
//!   run in parallel over `(n, c)` planes and recompute the statistics rather than saving them. The
//!   CUDA kernels copy this math:
//!
//!   ```text
//!   x̂  = (c − μc)/σc,  g = dy·σs
//!   dc = (g − mean(g) − x̂ · Σ(g·x̂)/(M − 1)) / σc
//!   dμs = Σ dy,  dσs = Σ dy·x̂   (summed over the batch when the style is broadcast)
//!   ds = dμs/Ms + dσs · (s − μs)/((Ms − 1)·σs)
//!   ```
//! - Inputs are `[N, C, H, W]`; anything else is an error, never a panic.

use super::{apply, apply1, chunk_len, same_dtype_device};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Error, Result, Shape, Tensor};
use rayon::prelude::*;

/// Mean and `sqrt(unbiased variance + eps)` of one plane (two passes).
#[inline]
fn mean_std<T: Float>(p: &[T], eps: T) -> (T, T) {
    let m = T::c(p.len() as f64);
    let mu = p.iter().copied().sum::<T>() / m;
    let ss: T = p.iter().map(|&x| (x - mu) * (x - mu)).sum();
    (mu, (ss / (m - T::one()) + eps).sqrt())
}

/// Planes per rayon task.
fn planes_per_task(planes: usize, hw: usize) -> usize {
    chunk_len(planes, (1 << 12) / hw.max(1) + 1)
}

/// Per-plane statistics of `[planes, hw]`: output `[mean]` or `[std]`.
pub struct PlaneStat {
    pub hw: usize,
    /// `None`: the mean; `Some(eps)`: `sqrt(var_unbiased + eps)`.
    pub std_eps: Option<f64>,
}

impl CpuKernel for PlaneStat {
    const NAME: &'static str = "channel_stat";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let x = inputs[0];
        let hw = self.hw;
        let planes = x.len() / hw;
        let eps = T::c(self.std_eps.unwrap_or(0.0));
        let want_std = self.std_eps.is_some();
        let out: Vec<T> = x
            .par_chunks(hw)
            .with_min_len(planes_per_task(planes, hw))
            .map(|p| {
                if want_std {
                    mean_std(p, eps).1
                } else {
                    p.iter().copied().sum::<T>() / T::c(hw as f64)
                }
            })
            .collect();
        Ok(vec![out])
    }
}

/// Backward of `PlaneStat`; inputs `[dy]` for the mean, `[x, std, dy]` for the std:
/// `dx = dy/M` or `dx = dy · (x − μ)/((M − 1)·σ)`.
pub struct PlaneStatBackward {
    pub hw: usize,
    pub std: bool,
}

impl CpuKernel for PlaneStatBackward {
    const NAME: &'static str = "channel_stat_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let hw = self.hw;
        let m = T::c(hw as f64);
        let dy = *inputs.last().expect("dy");
        let planes = dy.len();
        let mut dx = vec![T::zero(); planes * hw];
        dx.par_chunks_mut(hw)
            .enumerate()
            .with_min_len(planes_per_task(planes, hw))
            .for_each(|(p, d)| {
                if self.std {
                    let (x, sd) = (&inputs[0][p * hw..(p + 1) * hw], inputs[1][p]);
                    let mu = x.iter().copied().sum::<T>() / m;
                    let s = dy[p] / ((m - T::one()) * sd);
                    for (di, &xi) in d.iter_mut().zip(x) {
                        *di = (xi - mu) * s;
                    }
                } else {
                    d.fill(dy[p] / m);
                }
            });
        Ok(vec![dx])
    }
}

/// Geometry shared by the AdaIN kernels.
#[derive(Clone, Copy, Debug)]
pub struct AdainDims {
    /// Content batch and channels.
    pub n: usize,
    pub c: usize,
    /// Content plane size H·W.
    pub hw: usize,
    /// Style batch (1 or n).
    pub ns: usize,
    /// Style plane size Hs·Ws.
    pub hws: usize,
    pub eps: f64,
}

impl AdainDims {
    /// Style plane used by content plane `p`.
    #[inline]
    fn style_plane(&self, p: usize) -> usize {
        if self.ns == 1 {
            p % self.c
        } else {
            p
        }
    }
    fn style_stats<T: Float>(&self, s: &[T]) -> Vec<(T, T)> {
        let eps = T::c(self.eps);
        s.par_chunks(self.hws)
            .with_min_len(planes_per_task(self.ns * self.c, self.hws))
            .map(|p| mean_std(p, eps))
            .collect()
    }
}

/// out = σs · (c − μc)/σc + μs; inputs `[content, style]`.
pub struct AdainForward(pub AdainDims);

impl CpuKernel for AdainForward {
    const NAME: &'static str = "adain";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let d = self.0;
        let (content, style) = (inputs[0], inputs[1]);
        let ss = d.style_stats(style);
        let eps = T::c(d.eps);
        let mut out = vec![T::zero(); content.len()];
        out.par_chunks_mut(d.hw)
            .zip(content.par_chunks(d.hw))
            .enumerate()
            .with_min_len(planes_per_task(d.n * d.c, d.hw))
            .for_each(|(p, (o, x))| {
                let (mc, sc) = mean_std(x, eps);
                let (ms, sd) = ss[d.style_plane(p)];
                let a = sd / sc;
                for (oi, &xi) in o.iter_mut().zip(x) {
                    *oi = (xi - mc) * a + ms;
                }
            });
        Ok(vec![out])
    }
}

/// Outputs `[d content, d style]`; inputs `[content, style, dy]`.
pub struct AdainBackward(pub AdainDims);

impl CpuKernel for AdainBackward {
    const NAME: &'static str = "adain_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let d = self.0;
        let (content, style, dy) = (inputs[0], inputs[1], inputs[2]);
        let ss = d.style_stats(style);
        let eps = T::c(d.eps);
        let m = T::c(d.hw as f64);
        let mut dc = vec![T::zero(); content.len()];
        // Per content plane: dc, and (Σ dy, Σ dy·x̂) for the style gradient.
        let sums: Vec<(T, T)> = dc
            .par_chunks_mut(d.hw)
            .zip(content.par_chunks(d.hw).zip(dy.par_chunks(d.hw)))
            .enumerate()
            .with_min_len(planes_per_task(d.n * d.c, d.hw))
            .map(|(p, (g_out, (x, g)))| {
                let (mc, sc) = mean_std(x, eps);
                let sd = ss[d.style_plane(p)].1;
                let rc = T::one() / sc;
                let (mut sum_dy, mut sum_dy_xh) = (T::zero(), T::zero());
                for (&xi, &gi) in x.iter().zip(g) {
                    sum_dy += gi;
                    sum_dy_xh += gi * (xi - mc) * rc;
                }
                // With g = dy·σs: mean(g) = σs·Σdy/M and Σ g·x̂ = σs·Σ dy·x̂.
                let mean_g = sd * sum_dy / m;
                let k = sd * sum_dy_xh / (m - T::one());
                for ((o, &xi), &gi) in g_out.iter_mut().zip(x).zip(g) {
                    let xh = (xi - mc) * rc;
                    *o = (gi * sd - mean_g - xh * k) * rc;
                }
                (sum_dy, sum_dy_xh)
            })
            .collect();
        // Accumulate into style planes in a fixed order (deterministic).
        let mut acc = vec![(T::zero(), T::zero()); d.ns * d.c];
        for (p, &(a, b)) in sums.iter().enumerate() {
            let sp = d.style_plane(p);
            acc[sp].0 += a;
            acc[sp].1 += b;
        }
        let ms_len = T::c(d.hws as f64);
        let mut ds = vec![T::zero(); style.len()];
        ds.par_chunks_mut(d.hws)
            .zip(style.par_chunks(d.hws))
            .enumerate()
            .with_min_len(planes_per_task(d.ns * d.c, d.hws))
            .for_each(|(sp, (o, s))| {
                let (mu, sd) = ss[sp];
                let (dmu, dsd) = acc[sp];
                let a = dmu / ms_len;
                let b = dsd / ((ms_len - T::one()) * sd);
                for (oi, &si) in o.iter_mut().zip(s) {
                    *oi = a + (si - mu) * b;
                }
            });
        Ok(vec![dc, ds])
    }
}

fn check_eps(op: &'static str, eps: f64) -> Result<()> {
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::bad(
            op,
            format!("eps must be finite and ≥ 0, got {eps}"),
        ));
    }
    Ok(())
}

/// `(n, c, h·w)` of an image whose planes must hold at least `min_hw` elements.
fn plane_dims(op: &'static str, t: &Tensor, min_hw: usize) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = t.shape().dims4(op)?;
    if h * w < min_hw {
        return Err(Error::bad(
            op,
            format!(
                "planes of shape {:?} have {} elements; the unbiased variance needs at least {min_hw}",
                t.shape(),
                h * w
            ),
        ));
    }
    Ok((n, c, h * w))
}

impl Tensor {
    fn plane_stat(&self, op: &'static str, std_eps: Option<f64>) -> Result<Tensor> {
        let (n, c, hw) = plane_dims(op, self, if std_eps.is_some() { 2 } else { 1 })?;
        let out_shape = Shape::new(vec![n, c, 1, 1]);
        let y = apply1(&PlaneStat { hw, std_eps }, &[self], out_shape, self.dtype())?;
        let x = self.detach();
        let y_saved = y.detach();
        Ok(y.track(op, &[self], move |dy| {
            let std = std_eps.is_some();
            let inputs: Vec<&Tensor> = if std {
                vec![&x, &y_saved, dy]
            } else {
                vec![dy]
            };
            let dx = apply1(
                &PlaneStatBackward { hw, std },
                &inputs,
                x.shape().clone(),
                x.dtype(),
            )?;
            Ok(vec![Some(dx)])
        }))
    }

    /// Per-`(n, c)` mean over `H×W`: `[N, C, H, W] → [N, C, 1, 1]`.
    pub fn channel_mean(&self) -> Result<Tensor> {
        self.plane_stat("channel_mean", None)
    }

    /// Per-`(n, c)` `sqrt(var_unbiased + eps)` over `H×W` → `[N, C, 1, 1]` (needs `H·W ≥ 2`).
    pub fn channel_std(&self, eps: f64) -> Result<Tensor> {
        check_eps("channel_std", eps)?;
        self.plane_stat("channel_std", Some(eps))
    }

    /// AdaIN(content = self, style) `= σ(s)·(c − μ(c))/σ(c) + μ(s)` per `(n, c)` over `H×W`, σ from
    /// the unbiased variance + `eps` (1e-5 in the reference). `self` `[N, C, H, W]`, `style`
    /// `[N or 1, C, Hs, Ws]`. Gradients flow to both content and style.
    pub fn adain(&self, style: &Tensor, eps: f64) -> Result<Tensor> {
        const OP: &str = "adain";
        check_eps(OP, eps)?;
        same_dtype_device(OP, self, style)?;
        let (n, c, hw) = plane_dims(OP, self, 2)?;
        let (ns, cs, hws) = plane_dims(OP, style, 2)?;
        if cs != c || (ns != n && ns != 1) {
            return Err(Error::shape(
                OP,
                self.shape(),
                style.shape(),
                "style must be [N or 1, C, Hs, Ws] with the content's C",
            ));
        }
        let dims = AdainDims {
            n,
            c,
            hw,
            ns,
            hws,
            eps,
        };
        let y = apply1(
            &AdainForward(dims),
            &[self, style],
            self.shape().clone(),
            self.dtype(),
        )?;
        let (x, s) = (self.detach(), style.detach());
        Ok(y.track(OP, &[self, style], move |dy| {
            let mut g = apply(
                &AdainBackward(dims),
                &[&x, &s, dy],
                &[
                    (x.shape().clone(), x.dtype()),
                    (s.shape().clone(), s.dtype()),
                ],
            )?;
            let ds = g.pop();
            let dc = g.pop();
            Ok(vec![dc, ds])
        }))
    }
}
