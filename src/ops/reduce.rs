//! Reductions and their adjoint, broadcasting: `sum_dims`/`mean_dims` (keepdim or not), `sum_all`,
//! `mean_all`, `sum_to` (reduce a broadcast result back to an input's shape) and `broadcast_to`.
//! The backward of a sum is a broadcast and the backward of a broadcast is a sum.

use super::elementwise::Broadcast;
use super::{apply1, chunk_len};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Error, Result, Shape, Tensor};
use rayon::prelude::*;

/// Sums the input over the dims where `out_keep` (same rank) has extent 1 and the input does not.
pub struct SumKeep {
    pub input: Shape,
    pub out_keep: Shape,
}

impl CpuKernel for SumKeep {
    const NAME: &'static str = "sum";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let x = inputs[0];
        let ind = self.input.dims();
        let outd = self.out_keep.dims();
        let in_strides = self.input.contiguous_strides();
        let kept: Vec<usize> = (0..ind.len()).filter(|&d| outd[d] == ind[d]).collect();
        let reduced: Vec<usize> = (0..ind.len()).filter(|&d| outd[d] != ind[d]).collect();
        let n_out = self.out_keep.numel();
        let n_red: usize = reduced.iter().map(|&d| ind[d]).product();
        // Innermost reduced dim runs in the inner loop.
        let inner = reduced.last().copied();
        let (inner_len, inner_stride) = inner.map(|d| (ind[d], in_strides[d])).unwrap_or((1, 0));
        let outer_red: Vec<usize> = reduced
            .iter()
            .copied()
            .filter(|&d| Some(d) != inner)
            .collect();
        let n_outer_red = n_red / inner_len.max(1);
        let sum_one = |o: usize| -> T {
            // Base offset from the kept dims.
            let mut rem = o;
            let mut base = 0;
            for &d in kept.iter().rev() {
                base += (rem % ind[d]) * in_strides[d];
                rem /= ind[d];
            }
            let mut acc = T::zero();
            for r in 0..n_outer_red {
                let mut rem = r;
                let mut off = base;
                for &d in outer_red.iter().rev() {
                    off += (rem % ind[d]) * in_strides[d];
                    rem /= ind[d];
                }
                let mut s = T::zero();
                for j in 0..inner_len {
                    s += x[off + j * inner_stride];
                }
                acc += s;
            }
            acc
        };
        let out: Vec<T> = if n_out >= rayon::current_num_threads() * 4 {
            (0..n_out)
                .into_par_iter()
                .with_min_len(chunk_len(n_out, 16))
                .map(sum_one)
                .collect()
        } else if n_out == 1 && reduced.len() == ind.len() {
            // Full reduction: parallel partial sums over fixed contiguous chunks, collected in order
            // and added serially, so the result does not depend on thread scheduling.
            let c = chunk_len(x.len(), 1 << 15);
            let partials: Vec<T> = x
                .par_chunks(c)
                .map(|ch| ch.iter().copied().sum::<T>())
                .collect();
            vec![partials.into_iter().sum()]
        } else {
            (0..n_out).map(sum_one).collect()
        };
        Ok(vec![out])
    }
}

/// Copies a strided view of the input into a dense output: broadcasting (stride 0) and permutation.
pub struct StridedCopy {
    pub map: Broadcast,
    pub numel: usize,
}

impl CpuKernel for StridedCopy {
    const NAME: &'static str = "strided_copy";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let x = inputs[0];
        let row = self.map.row_len().max(1);
        let stride = self.map.inner_stride();
        let mut out = vec![T::zero(); self.numel];
        out.par_chunks_mut(row)
            .enumerate()
            .with_min_len(chunk_len(self.numel / row, 64))
            .for_each(|(r, orow)| {
                let base = self.map.row_offset(r);
                for (j, v) in orow.iter_mut().enumerate() {
                    *v = x[base + j * stride];
                }
            });
        Ok(vec![out])
    }
}

impl Tensor {
    /// Sums over `dims`; with `keepdim` the reduced dims stay as extent 1.
    pub fn sum_dims(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let mut keep = self.dims().to_vec();
        let mut resolved = Vec::new();
        for &d in dims {
            let d = self.shape().dim_index("sum_dims", d)?;
            keep[d] = 1;
            resolved.push(d);
        }
        let keep_shape = Shape::new(keep.clone());
        let y = self.reduce_to_keep(&keep_shape)?;
        if keepdim {
            Ok(y)
        } else {
            let squeezed: Vec<usize> = keep
                .iter()
                .enumerate()
                .filter(|(i, _)| !resolved.contains(i))
                .map(|(_, &v)| v)
                .collect();
            y.reshape(squeezed)
        }
    }
    pub fn mean_dims(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let mut count = 1;
        for &d in dims {
            count *= self.dims()[self.shape().dim_index("mean_dims", d)?];
        }
        self.sum_dims(dims, keepdim)?.scale(1.0 / count as f64)
    }
    /// Sum of all elements, shape `[]`.
    pub fn sum_all(&self) -> Result<Tensor> {
        let all: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum_dims(&all, false)
    }
    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.numel().max(1);
        self.sum_all()?.scale(1.0 / n as f64)
    }

    /// Sums a (broadcast) tensor down to `shape`, which must broadcast to `self.shape()`.
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let r = self.rank();
        if shape.rank() > r {
            return Err(Error::shape(
                "sum_to",
                self.shape(),
                shape,
                "target has more dims than the source",
            ));
        }
        let mut keep = vec![1; r];
        for i in 0..shape.rank() {
            let o = r - shape.rank() + i;
            let d = shape.dims()[i];
            if d != 1 && d != self.dims()[o] {
                return Err(Error::shape(
                    "sum_to",
                    self.shape(),
                    shape,
                    "target does not broadcast to the source",
                ));
            }
            keep[o] = d;
        }
        self.reduce_to_keep(&Shape::new(keep))?
            .reshape(shape.dims().to_vec())
    }

    /// Sum over the dims where `keep` has 1 (same rank as self), keeping them.
    fn reduce_to_keep(&self, keep: &Shape) -> Result<Tensor> {
        let y = apply1(
            &SumKeep {
                input: self.shape().clone(),
                out_keep: keep.clone(),
            },
            &[self],
            keep.clone(),
            self.dtype(),
        )?;
        let in_shape = self.shape().clone();
        Ok(y.track("sum", &[self], move |dy| {
            Ok(vec![Some(dy.broadcast_to(&in_shape)?)])
        }))
    }

    /// Materialises `self` broadcast to `shape`.
    pub fn broadcast_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let out = Shape::broadcast("broadcast_to", self.shape(), shape)?;
        if &out != shape {
            return Err(Error::shape(
                "broadcast_to",
                self.shape(),
                shape,
                "cannot broadcast to the target",
            ));
        }
        let y = apply1(
            &StridedCopy {
                map: Broadcast::new(self.shape(), shape),
                numel: shape.numel(),
            },
            &[self],
            shape.clone(),
            self.dtype(),
        )?;
        let in_shape = self.shape().clone();
        Ok(y.track("broadcast_to", &[self], move |dy| {
            Ok(vec![Some(dy.sum_to(&in_shape)?)])
        }))
    }
}
