//! The convolution kernel structs and their CPU implementations (im2col + gemm): forward,
//! backward-input (also the transposed conv's forward), backward-weight and the bias gradient. CUDA
//! launchers for the same structs are in src/backend/cuda/conv/.

use super::channels_last as cl;
use super::im2col::*;
use super::{winograd, Conv2dGeometry};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::ops::matmul::{gemm_into, gemm_ld};
use crate::{Error, Result};
use rayon::prelude::*;

/// `y = conv(x, w) (+ bias)`; inputs `[x, w]` or `[x, w, bias]`, output `[n, cout, ho, wo]`.
pub struct Conv2dForward {
    pub geom: Conv2dGeometry,
    pub has_bias: bool,
    /// x, w and y are stored channels-last (`channels_last.rs` gives the layouts).
    pub channels_last: bool,
}

impl Conv2dForward {
    /// One block of `b` images: x [b, cin, h, w] → y [b, cout, ho, wo].
    #[allow(clippy::too_many_arguments)]
    fn block<T: Float>(
        &self,
        wt: &[T],
        bias: Option<&[T]>,
        x: &[T],
        b: usize,
        y: &mut [T],
        s: &mut Scratch<T>,
        threads: usize,
    ) {
        let g = &self.geom;
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        if b == 1 && !g.pointwise() {
            // One image, in tiles of output rows: y[:, tile] (+)= W · col(tile).
            if let Some(bv) = bias {
                for (row, &v) in y.chunks_exact_mut(p).zip(bv) {
                    row.fill(v);
                }
            }
            let tr = tile_rows(g);
            for oh0 in (0..g.ho).step_by(tr) {
                let nr = tr.min(g.ho - oh0);
                let tc = nr * g.wo;
                let col = sized(&mut s.col, g.groups * kp * tc);
                im2col_tile(g, x, oh0, nr, col, threads > 1);
                for grp in 0..g.groups {
                    gemm_ld(
                        &mut y[grp * cg * p + oh0 * g.wo..],
                        p,
                        &wt[grp * cg * kp..(grp + 1) * cg * kp],
                        kp,
                        &col[grp * kp * tc..(grp + 1) * kp * tc],
                        tc,
                        (cg, kp, tc),
                        (false, false),
                        bias.is_some(),
                        threads,
                    );
                }
            }
            return;
        }
        let bp = b * p;
        let cols: &[T] = if g.pointwise() && b == 1 {
            x
        } else if g.pointwise() {
            let col = sized(&mut s.col, g.cin * bp);
            gather(x, b, g.cin, p, col);
            col
        } else {
            let col = sized(&mut s.col, g.groups * kp * bp);
            im2col_block(g, x, b, col, threads > 1);
            col
        };
        // With one image the gemm writes y directly (bias pre-filled); else into `mat`, then scattered.
        let direct = b == 1;
        let out: &mut [T] = if direct {
            if let Some(bv) = bias {
                for (row, &v) in y.chunks_exact_mut(p).zip(bv) {
                    row.fill(v);
                }
            }
            y
        } else {
            sized(&mut s.mat, g.cout * bp)
        };
        for grp in 0..g.groups {
            gemm_into(
                &mut out[grp * cg * bp..(grp + 1) * cg * bp],
                &wt[grp * cg * kp..(grp + 1) * cg * kp],
                &cols[grp * kp * bp..(grp + 1) * kp * bp],
                cg,
                kp,
                bp,
                false,
                false,
                direct && bias.is_some(),
                threads,
            );
        }
        if !direct {
            scatter(&s.mat, b, g.cout, p, bias, y);
        }
    }
}

impl CpuKernel for Conv2dForward {
    const NAME: &'static str = "conv2d";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        check_inputs(Self::NAME, inputs.len(), 2 + self.has_bias as usize)?;
        if self.channels_last {
            let (op, d) = (Self::NAME, g.dims4());
            let x = cl::to_nchw(op, "input", inputs[0], d.x)?;
            let w = cl::to_nchw(op, "weight", inputs[1], d.w)?;
            let mut ins: Vec<&[T]> = vec![&x, &w];
            ins.extend(inputs.get(2).copied());
            let nchw = Conv2dForward {
                channels_last: false,
                ..*self
            };
            let y = nchw.run(&ins)?.remove(0);
            return Ok(vec![cl::to_nhwc(op, "output", &y, d.y)?]);
        }
        let (x, wt) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "input", x, g.n * g.in_image())?;
        g.check_len(Self::NAME, "weight", wt, g.weight_len())?;
        let bias = if self.has_bias {
            g.check_len(Self::NAME, "bias", inputs[2], g.cout)?;
            Some(inputs[2])
        } else {
            None
        };
        if winograd::applies(&g) {
            return Ok(vec![winograd::forward(&g, x, wt, bias)]);
        }
        let mut y = vec![T::zero(); g.n * g.out_image()];
        if y.is_empty() {
            return Ok(vec![y]);
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (ii, threads) = (g.in_image(), plan.gemm_threads);
        plan.for_each_block(&mut y, g.out_image(), |imgs, yb, s| {
            let xb = &x[imgs.start * ii..imgs.end * ii];
            self.block(wt, bias, xb, imgs.len(), yb, s, threads);
        });
        Ok(vec![y])
    }
}

/// `dx = conv_backward_input(dy, w) (+ bias)`; inputs `[dy, w]` or `[dy, w, bias]`, output
/// `[n, cin, h, w]`. With a bias (length `cin`) this is the transposed convolution's forward.
pub struct Conv2dBackwardInput {
    pub geom: Conv2dGeometry,
    pub has_bias: bool,
    /// dy, w and dx are stored channels-last.
    pub channels_last: bool,
}

impl Conv2dBackwardInput {
    /// One block of `b` images: dy [b, cout, ho, wo] → dx [b, cin, h, w] (dx zeroed on entry).
    #[allow(clippy::too_many_arguments)]
    fn block<T: Float>(
        &self,
        wt: &[T],
        bias: Option<&[T]>,
        dy: &[T],
        b: usize,
        dx: &mut [T],
        s: &mut Scratch<T>,
        threads: usize,
    ) {
        let g = &self.geom;
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        if b == 1 && !g.pointwise() {
            // One image, in tiles of output rows: dcol(tile) = Wᵀ · dy[:, tile], then col2im.
            let tr = tile_rows(g);
            for oh0 in (0..g.ho).step_by(tr) {
                let nr = tr.min(g.ho - oh0);
                let tc = nr * g.wo;
                let dcol = sized(&mut s.col, g.groups * kp * tc);
                for grp in 0..g.groups {
                    gemm_ld(
                        &mut dcol[grp * kp * tc..(grp + 1) * kp * tc],
                        tc,
                        &wt[grp * cg * kp..(grp + 1) * cg * kp],
                        kp,
                        &dy[grp * cg * p + oh0 * g.wo..],
                        p,
                        (kp, cg, tc),
                        (true, false),
                        false,
                        threads,
                    );
                }
                col2im_tile(g, dcol, oh0, nr, dx, threads > 1);
            }
            add_channel_bias(g, bias, dx);
            return;
        }
        let bp = b * p;
        let dys: &[T] = if b == 1 {
            dy
        } else {
            let m = sized(&mut s.mat, g.cout * bp);
            gather(dy, b, g.cout, p, m);
            m
        };
        let direct = g.pointwise() && b == 1;
        let dcol: &mut [T] = if direct {
            &mut *dx
        } else {
            sized(&mut s.col, g.groups * kp * bp)
        };
        for grp in 0..g.groups {
            gemm_into(
                &mut dcol[grp * kp * bp..(grp + 1) * kp * bp],
                &wt[grp * cg * kp..(grp + 1) * cg * kp],
                &dys[grp * cg * bp..(grp + 1) * cg * bp],
                kp,
                cg,
                bp,
                true,
                false,
                false,
                threads,
            );
        }
        if g.pointwise() && !direct {
            scatter(&s.col, b, g.cin, p, None, dx);
        } else if !direct {
            col2im_block(g, &s.col, b, dx, threads > 1);
        }
        add_channel_bias(g, bias, dx);
    }
}

/// `dx[b, c] += bias[c]` over images `[b, cin, h, w]`.
pub(super) fn add_channel_bias<T: Float>(g: &Conv2dGeometry, bias: Option<&[T]>, dx: &mut [T]) {
    if let Some(bv) = bias {
        for (j, xc) in dx.chunks_exact_mut(g.h * g.w).enumerate() {
            let v = bv[j % g.cin];
            xc.iter_mut().for_each(|a| *a += v);
        }
    }
}

impl Conv2dBackwardInput {
    /// With stride 1 and dilation 1 the input gradient is itself a forward convolution: `dy`, padded
    /// by `k − 1 − padding`, correlated with the kernel rotated by 180° and with its channel axes
    /// swapped within each group. That path runs im2col on `dy` (a copy; one shifted span per row for
    /// same-size convs) where the Wᵀ·dY path runs col2im (a read-add-write per tap and output row):
    /// col2im was 8% of a ResNet-18 28×28 training step. `None` where the rewrite does not apply:
    /// strided or dilated convs, padding ≥ kernel, 1×1 pointwise (it needs no col2im), or an output
    /// smaller than the full `h + 2p − k + 1`.
    fn as_forward(&self) -> Option<Conv2dForward> {
        let g = &self.geom;
        let full = |i: usize, p: usize, k: usize| (i + 2 * p + 1).checked_sub(k);
        let applies = g.stride == (1, 1)
            && g.dilation == (1, 1)
            && g.padding.0 < g.kh
            && g.padding.1 < g.kw
            && !g.pointwise()
            && full(g.h, g.padding.0, g.kh) == Some(g.ho)
            && full(g.w, g.padding.1, g.kw) == Some(g.wo);
        applies.then(|| Conv2dForward {
            geom: Conv2dGeometry {
                n: g.n,
                cin: g.cout,
                h: g.ho,
                w: g.wo,
                cout: g.cin,
                kh: g.kh,
                kw: g.kw,
                ho: g.h,
                wo: g.w,
                stride: (1, 1),
                padding: (g.kh - 1 - g.padding.0, g.kw - 1 - g.padding.1),
                dilation: (1, 1),
                groups: g.groups,
            },
            has_bias: self.has_bias,
            channels_last: false,
        })
    }

    /// The weight of `as_forward`'s convolution: `w' [cin, cout/groups, kh, kw]` with
    /// `w'[grp·cin_g + i, o, a, b] = w[grp·cout_g + o, i, kh−1−a, kw−1−b]`.
    fn rotated_weight<T: Float>(&self, wt: &[T]) -> Vec<T> {
        let g = &self.geom;
        let (cin_g, cout_g, kk) = (g.cin / g.groups, g.cout_g(), g.kh * g.kw);
        let mut out = vec![T::zero(); wt.len()];
        for grp in 0..g.groups {
            for o in 0..cout_g {
                for i in 0..cin_g {
                    let src = &wt[((grp * cout_g + o) * cin_g + i) * kk..][..kk];
                    let dst = &mut out[((grp * cin_g + i) * cout_g + o) * kk..][..kk];
                    for (d, &v) in dst.iter_mut().zip(src.iter().rev()) {
                        *d = v;
                    }
                }
            }
        }
        out
    }

    /// The Wᵀ·dY + col2im path, for every geometry (the rewrite's fallback, and its reference in the
    /// tests). Lengths are checked by `run`.
    fn run_col2im<T: Float>(&self, dy: &[T], wt: &[T], bias: Option<&[T]>) -> Vec<T> {
        let g = self.geom;
        let mut dx = vec![T::zero(); g.n * g.in_image()];
        if dx.is_empty() {
            return dx;
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (oi, threads) = (g.out_image(), plan.gemm_threads);
        plan.for_each_block(&mut dx, g.in_image(), |imgs, xb, s| {
            let dyb = &dy[imgs.start * oi..imgs.end * oi];
            self.block(wt, bias, dyb, imgs.len(), xb, s, threads);
        });
        dx
    }
}

impl CpuKernel for Conv2dBackwardInput {
    const NAME: &'static str = "conv2d_backward_input";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        check_inputs(Self::NAME, inputs.len(), 2 + self.has_bias as usize)?;
        if self.channels_last {
            let (op, d) = (Self::NAME, g.dims4());
            let dy = cl::to_nchw(op, "output gradient", inputs[0], d.y)?;
            let w = cl::to_nchw(op, "weight", inputs[1], d.w)?;
            let mut ins: Vec<&[T]> = vec![&dy, &w];
            ins.extend(inputs.get(2).copied());
            let nchw = Conv2dBackwardInput {
                channels_last: false,
                ..*self
            };
            let dx = nchw.run(&ins)?.remove(0);
            return Ok(vec![cl::to_nhwc(op, "input gradient", &dx, d.x)?]);
        }
        let (dy, wt) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "output gradient", dy, g.n * g.out_image())?;
        g.check_len(Self::NAME, "weight", wt, g.weight_len())?;
        let bias = if self.has_bias {
            g.check_len(Self::NAME, "bias", inputs[2], g.cin)?;
            Some(inputs[2])
        } else {
            None
        };
        if let Some(forward) = self.as_forward() {
            let rotated = self.rotated_weight(wt);
            let mut ins: Vec<&[T]> = vec![dy, &rotated];
            ins.extend(bias);
            return forward.run(&ins);
        }
        Ok(vec![self.run_col2im(dy, wt, bias)])
    }
}

/// `dw = conv_backward_weight(x, dy)`; inputs `[x, dy]`, output `[cout, cin/groups, kh, kw]`.
pub struct Conv2dBackwardWeight {
    pub geom: Conv2dGeometry,
    /// x, dy and dw are stored channels-last.
    pub channels_last: bool,
}

impl Conv2dBackwardWeight {
    /// `dw += Σ over the block of b images` of dY_g · col_gᵀ.
    fn block<T: Float>(
        &self,
        x: &[T],
        dy: &[T],
        b: usize,
        dw: &mut [T],
        s: &mut Scratch<T>,
        threads: usize,
    ) {
        let g = &self.geom;
        let (p, kp, cg) = (g.out_plane(), g.krows(), g.cout_g());
        if b == 1 && !g.pointwise() {
            // One image, in tiles of output rows: dW += dy[:, tile] · col(tile)ᵀ.
            let tr = tile_rows(g);
            for oh0 in (0..g.ho).step_by(tr) {
                let nr = tr.min(g.ho - oh0);
                let tc = nr * g.wo;
                let col = sized(&mut s.col, g.groups * kp * tc);
                im2col_tile(g, x, oh0, nr, col, threads > 1);
                for grp in 0..g.groups {
                    gemm_ld(
                        &mut dw[grp * cg * kp..(grp + 1) * cg * kp],
                        kp,
                        &dy[grp * cg * p + oh0 * g.wo..],
                        p,
                        &col[grp * kp * tc..(grp + 1) * kp * tc],
                        tc,
                        (cg, tc, kp),
                        (false, true),
                        true,
                        threads,
                    );
                }
            }
            return;
        }
        let bp = b * p;
        let cols: &[T] = if g.pointwise() && b == 1 {
            x
        } else if g.pointwise() {
            let col = sized(&mut s.col, g.cin * bp);
            gather(x, b, g.cin, p, col);
            col
        } else {
            let col = sized(&mut s.col, g.groups * kp * bp);
            im2col_block(g, x, b, col, threads > 1);
            col
        };
        let dys: &[T] = if b == 1 {
            dy
        } else {
            let m = sized(&mut s.mat, g.cout * bp);
            gather(dy, b, g.cout, p, m);
            m
        };
        for grp in 0..g.groups {
            gemm_into(
                &mut dw[grp * cg * kp..(grp + 1) * cg * kp],
                &dys[grp * cg * bp..(grp + 1) * cg * bp],
                &cols[grp * kp * bp..(grp + 1) * kp * bp],
                cg,
                bp,
                kp,
                false,
                true,
                true,
                threads,
            );
        }
    }
}

impl CpuKernel for Conv2dBackwardWeight {
    const NAME: &'static str = "conv2d_backward_weight";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        check_inputs(Self::NAME, inputs.len(), 2)?;
        if self.channels_last {
            let (op, d) = (Self::NAME, g.dims4());
            let x = cl::to_nchw(op, "input", inputs[0], d.x)?;
            let dy = cl::to_nchw(op, "output gradient", inputs[1], d.y)?;
            let nchw = Conv2dBackwardWeight {
                channels_last: false,
                ..*self
            };
            let dw = nchw.run(&[&x, &dy])?.remove(0);
            return Ok(vec![cl::to_nhwc(op, "weight gradient", &dw, d.w)?]);
        }
        let (x, dy) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "input", x, g.n * g.in_image())?;
        g.check_len(Self::NAME, "output gradient", dy, g.n * g.out_image())?;
        let wlen = g.weight_len();
        if wlen == 0 || g.n == 0 || g.out_plane() == 0 {
            return Ok(vec![vec![T::zero(); wlen]]);
        }
        if winograd::applies(&g) {
            return Ok(vec![winograd::backward_weight(&g, x, dy)]);
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (ii, oi) = (g.in_image(), g.out_image());
        // Per-task partial sums (`+=` inside gemm), then one reduction.
        let dw = plan.sum_over_tasks(wlen, |range, acc: &mut [T]| {
            let mut s = Scratch::default();
            for blk in plan.blocks(range) {
                let (b, i0) = (blk.len(), blk.start);
                self.block(
                    &x[i0 * ii..(i0 + b) * ii],
                    &dy[i0 * oi..(i0 + b) * oi],
                    b,
                    acc,
                    &mut s,
                    plan.gemm_threads,
                );
            }
        });
        Ok(vec![dw])
    }
}

/// `db[c] = Σ_{n, h, w} dy[n, c, h, w]`; input `[dy]` of `n · c · plane` elements, output `[c]`.
pub struct Conv2dBiasGrad {
    pub n: usize,
    pub c: usize,
    pub plane: usize,
}

impl CpuKernel for Conv2dBiasGrad {
    const NAME: &'static str = "conv2d_bias_grad";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let dy = inputs.first().copied().unwrap_or(&[]);
        if inputs.len() != 1 || dy.len() != self.n * self.c * self.plane {
            return Err(Error::bad(
                Self::NAME,
                format!(
                    "expected one input of {}·{}·{} elements",
                    self.n, self.c, self.plane
                ),
            ));
        }
        let (c, plane) = (self.c, self.plane);
        let mut db = vec![T::zero(); c];
        db.par_iter_mut().enumerate().for_each(|(ch, d)| {
            let mut s = T::zero();
            for i in 0..self.n {
                let o = (i * c + ch) * plane;
                s += dy[o..o + plane].iter().copied().sum::<T>();
            }
            *d = s;
        });
        Ok(vec![db])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `dx` straight from the definition, in f64: dx[n, ci, ih, iw] = Σ dy[n, co, oh, ow] ·
    /// w[co, ci mod cin_g, ki, kj] over the taps with oh·s − p + ki·d = ih (same for w), co in ci's group.
    fn naive_backward_input(g: &Conv2dGeometry, dy: &[f64], wt: &[f64]) -> Vec<f64> {
        let (cin_g, cout_g) = (g.cin / g.groups, g.cout / g.groups);
        let mut dx = vec![0.0; g.n * g.in_image()];
        for n in 0..g.n {
            for co in 0..g.cout {
                let grp = co / cout_g;
                for i in 0..cin_g {
                    let ci = grp * cin_g + i;
                    for (oh, ow, ki, kj) in output_taps(g) {
                        let ih =
                            (oh * g.stride.0 + ki * g.dilation.0) as isize - g.padding.0 as isize;
                        let iw =
                            (ow * g.stride.1 + kj * g.dilation.1) as isize - g.padding.1 as isize;
                        if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                            continue;
                        }
                        let d = dy[((n * g.cout + co) * g.ho + oh) * g.wo + ow];
                        let w = wt[((co * cin_g + i) * g.kh + ki) * g.kw + kj];
                        dx[((n * g.cin + ci) * g.h + ih as usize) * g.w + iw as usize] += d * w;
                    }
                }
            }
        }
        dx
    }

    fn output_taps(g: &Conv2dGeometry) -> Vec<(usize, usize, usize, usize)> {
        let mut v = vec![];
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        v.push((oh, ow, ki, kj));
                    }
                }
            }
        }
        v
    }

    /// The stride-1 rewrite (a forward conv of dy with the rotated kernel) and the col2im path both
    /// equal the definition, for same-size and shrinking convs, rectangular kernels, groups, batch 1
    /// (row tiles) and batches (blocks), with and without a bias; strided and dilated convs keep the
    /// col2im path.
    #[test]
    fn backward_input_rewrite_matches_col2im_and_definition() {
        // (n, cin, cout, h, w, kh, kw, pad, stride, dilation, groups)
        let cases = [
            (2, 3, 4, 7, 7, 3, 3, (1, 1), 1, 1, 1),
            (1, 4, 6, 9, 5, 3, 3, (1, 1), 1, 1, 2),
            (3, 2, 3, 6, 8, 5, 3, (2, 0), 1, 1, 1),
            (2, 3, 2, 5, 5, 3, 3, (0, 0), 1, 1, 1),
            (1, 2, 2, 4, 4, 4, 4, (1, 2), 1, 1, 1),
            (2, 3, 4, 8, 8, 3, 3, (1, 1), 2, 1, 1),
            (2, 2, 2, 9, 9, 3, 3, (2, 2), 1, 2, 1),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (n, cin, cout, h, w, kh, kw, (ph, pw), s, d, groups) in cases {
            let g = Conv2dGeometry {
                n,
                cin,
                h,
                w,
                cout,
                kh,
                kw,
                ho: (h + 2 * ph - d * (kh - 1) - 1) / s + 1,
                wo: (w + 2 * pw - d * (kw - 1) - 1) / s + 1,
                stride: (s, s),
                padding: (ph, pw),
                dilation: (d, d),
                groups,
            };
            let dy: Vec<f64> = (0..n * g.out_image())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let wt: Vec<f64> = (0..g.weight_len())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let want = naive_backward_input(&g, &dy, &wt);
            let kernel = Conv2dBackwardInput {
                geom: g,
                has_bias: false,
                channels_last: false,
            };
            assert_eq!(kernel.as_forward().is_some(), s == 1 && d == 1, "{g:?}");
            let via_run = kernel.run::<f64>(&[&dy, &wt]).unwrap().remove(0);
            let via_col2im = kernel.run_col2im::<f64>(&dy, &wt, None);
            for (i, ((a, b), c)) in via_run.iter().zip(&via_col2im).zip(&want).enumerate() {
                assert!(
                    (a - c).abs() < 1e-12 && (b - c).abs() < 1e-12,
                    "{g:?} at {i}: run {a}, col2im {b}, definition {c}"
                );
            }
            // With a bias (the transposed conv's forward): dx + bias[channel] on both paths.
            let bias: Vec<f64> = (0..cin).map(|_| rng.random_range(-1.0..1.0)).collect();
            let with_bias = Conv2dBackwardInput {
                geom: g,
                has_bias: true,
                channels_last: false,
            };
            let via_run = with_bias.run::<f64>(&[&dy, &wt, &bias]).unwrap().remove(0);
            let via_col2im = with_bias.run_col2im::<f64>(&dy, &wt, Some(&bias));
            for (i, ((a, b), c)) in via_run.iter().zip(&via_col2im).zip(&want).enumerate() {
                let c = c + bias[(i / (h * w)) % cin];
                assert!(
                    (a - c).abs() < 1e-12 && (b - c).abs() < 1e-12,
                    "{g:?} with bias at {i}: run {a}, col2im {b}, definition {c}"
                );
            }
        }
    }
}
