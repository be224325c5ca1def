//! The convolution kernel structs and their CPU implementations (im2col + gemm): forward,
//! backward-input (also the transposed conv's forward), backward-weight and the bias gradient. CUDA
//! launchers for the same structs are in src/backend/cuda/conv/.

use super::im2col::*;
use super::Conv2dGeometry;
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::ops::matmul::{gemm_into, gemm_ld};
use crate::{Error, Result};
use rayon::prelude::*;

/// `y = conv(x, w) (+ bias)`; inputs `[x, w]` or `[x, w, bias]`, output `[n, cout, ho, wo]`.
pub struct Conv2dForward {
    pub geom: Conv2dGeometry,
    pub has_bias: bool,
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
        let (x, wt) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "input", x, g.n * g.in_image())?;
        g.check_len(Self::NAME, "weight", wt, g.weight_len())?;
        let bias = if self.has_bias {
            g.check_len(Self::NAME, "bias", inputs[2], g.cout)?;
            Some(inputs[2])
        } else {
            None
        };
        let mut y = vec![T::zero(); g.n * g.out_image()];
        if y.is_empty() {
            return Ok(vec![y]);
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (ii, oi) = (g.in_image(), g.out_image());
        let parts = split_by(&mut y, &plan.tasks, oi);
        let work = |(range, ys): (std::ops::Range<usize>, &mut [T])| {
            let mut s = Scratch::default();
            let first = range.start;
            for blk in plan.blocks(range) {
                let (b, i0) = (blk.len(), blk.start);
                let yb = &mut ys[(i0 - first) * oi..(i0 - first + b) * oi];
                self.block(
                    wt,
                    bias,
                    &x[i0 * ii..(i0 + b) * ii],
                    b,
                    yb,
                    &mut s,
                    plan.gemm_threads,
                );
            }
        };
        if plan.tasks.len() > 1 {
            plan.tasks.clone().into_par_iter().zip(parts).for_each(work);
        } else {
            plan.tasks.clone().into_iter().zip(parts).for_each(work);
        }
        Ok(vec![y])
    }
}

/// `dx = conv_backward_input(dy, w) (+ bias)`; inputs `[dy, w]` or `[dy, w, bias]`, output
/// `[n, cin, h, w]`. With a bias (length `cin`) this is the transposed convolution's forward.
pub struct Conv2dBackwardInput {
    pub geom: Conv2dGeometry,
    pub has_bias: bool,
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

impl CpuKernel for Conv2dBackwardInput {
    const NAME: &'static str = "conv2d_backward_input";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = self.geom;
        g.validate(Self::NAME)?;
        check_inputs(Self::NAME, inputs.len(), 2 + self.has_bias as usize)?;
        let (dy, wt) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "output gradient", dy, g.n * g.out_image())?;
        g.check_len(Self::NAME, "weight", wt, g.weight_len())?;
        let bias = if self.has_bias {
            g.check_len(Self::NAME, "bias", inputs[2], g.cin)?;
            Some(inputs[2])
        } else {
            None
        };
        let mut dx = vec![T::zero(); g.n * g.in_image()];
        if dx.is_empty() {
            return Ok(vec![dx]);
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (ii, oi) = (g.in_image(), g.out_image());
        let parts = split_by(&mut dx, &plan.tasks, ii);
        let work = |(range, xs): (std::ops::Range<usize>, &mut [T])| {
            let mut s = Scratch::default();
            let first = range.start;
            for blk in plan.blocks(range) {
                let (b, i0) = (blk.len(), blk.start);
                let xb = &mut xs[(i0 - first) * ii..(i0 - first + b) * ii];
                self.block(
                    wt,
                    bias,
                    &dy[i0 * oi..(i0 + b) * oi],
                    b,
                    xb,
                    &mut s,
                    plan.gemm_threads,
                );
            }
        };
        if plan.tasks.len() > 1 {
            plan.tasks.clone().into_par_iter().zip(parts).for_each(work);
        } else {
            plan.tasks.clone().into_iter().zip(parts).for_each(work);
        }
        Ok(vec![dx])
    }
}

/// `dw = conv_backward_weight(x, dy)`; inputs `[x, dy]`, output `[cout, cin/groups, kh, kw]`.
pub struct Conv2dBackwardWeight {
    pub geom: Conv2dGeometry,
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
        let (x, dy) = (inputs[0], inputs[1]);
        g.check_len(Self::NAME, "input", x, g.n * g.in_image())?;
        g.check_len(Self::NAME, "output gradient", dy, g.n * g.out_image())?;
        let wlen = g.weight_len();
        let mut dw = vec![T::zero(); wlen];
        if wlen == 0 || g.n == 0 || g.out_plane() == 0 {
            return Ok(vec![dw]);
        }
        let plan = Plan::new(g.n, g.out_plane(), g.groups * g.krows());
        let (ii, oi) = (g.in_image(), g.out_image());
        let work = |range: std::ops::Range<usize>, acc: &mut [T]| {
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
        };
        if plan.tasks.len() == 1 {
            work(0..g.n, &mut dw);
            return Ok(vec![dw]);
        }
        // Per-task partial sums (`+=` inside gemm), then one parallel reduction.
        let partials: Vec<Vec<T>> = plan
            .tasks
            .clone()
            .into_par_iter()
            .map(|range| {
                let mut part = vec![T::zero(); wlen];
                work(range, &mut part);
                part
            })
            .collect();
        let chunk = wlen.div_ceil(rayon::current_num_threads() * 4).max(1 << 12);
        dw.par_chunks_mut(chunk).enumerate().for_each(|(ci, d)| {
            let (o, len) = (ci * chunk, d.len());
            for part in &partials {
                for (a, &b) in d.iter_mut().zip(&part[o..o + len]) {
                    *a += b;
                }
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
