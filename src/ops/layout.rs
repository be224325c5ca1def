//! Ops that move or reinterpret data without arithmetic: `reshape`/`flatten` (views), `to_dtype`,
//! memory-format changes (`to_format`, `contiguous`), `permute`/`transpose`, `concat` and `narrow`;
//! and [`to_nchw`]/[`to_nhwc`], the host-slice transposes with which CPU kernels that take a
//! `channels_last` flag (conv, pooling) run their NCHW code on channels-last storage.

use super::elementwise::Broadcast;
use super::reduce::StridedCopy;
use super::{apply1, apply1_in, chunk_len};
use crate::backend::{run_kernel, CpuKernel};
use crate::dtype::Float;
use crate::tensor::MemoryFormat;
use crate::{DType, Error, Result, Shape, Tensor};
use rayon::prelude::*;

/// Returns its input unchanged; with another output dtype this is a cast.
pub struct Cast;
impl CpuKernel for Cast {
    const NAME: &'static str = "to_dtype";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        Ok(vec![inputs[0].to_vec()])
    }
}

/// Copies `[outer, len·inner]` blocks of each input side by side along the concatenated dim.
pub struct Concat {
    pub outer: usize,
    /// `dim_extent_i · inner` for each input.
    pub blocks: Vec<usize>,
}
impl CpuKernel for Concat {
    const NAME: &'static str = "concat";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let row: usize = self.blocks.iter().sum();
        let mut out = vec![T::zero(); self.outer * row];
        out.par_chunks_mut(row)
            .with_min_len(chunk_len(self.outer, 1))
            .enumerate()
            .for_each(|(o, orow)| {
                let mut at = 0;
                for (x, &b) in inputs.iter().zip(&self.blocks) {
                    orow[at..at + b].copy_from_slice(&x[o * b..(o + 1) * b]);
                    at += b;
                }
            });
        Ok(vec![out])
    }
}

/// Takes `[start, start+len)` along a dim, as `outer` rows of `len·inner` from rows of `full·inner`.
pub struct Narrow {
    pub outer: usize,
    pub inner: usize,
    pub full: usize,
    pub start: usize,
    pub len: usize,
}
impl CpuKernel for Narrow {
    const NAME: &'static str = "narrow";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let x = inputs[0];
        let (b, fb, s) = (
            self.len * self.inner,
            self.full * self.inner,
            self.start * self.inner,
        );
        let mut out = vec![T::zero(); self.outer * b];
        out.par_chunks_mut(b.max(1))
            .enumerate()
            .for_each(|(o, orow)| orow.copy_from_slice(&x[o * fb + s..o * fb + s + b]));
        Ok(vec![out])
    }
}

/// The adjoint of `Narrow`: scatters the slice's gradient into zeros of the full shape.
pub struct NarrowBackward(pub Narrow);
impl CpuKernel for NarrowBackward {
    const NAME: &'static str = "narrow_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let g = inputs[0];
        let n = &self.0;
        let (b, fb, s) = (n.len * n.inner, n.full * n.inner, n.start * n.inner);
        let mut out = vec![T::zero(); n.outer * fb];
        out.par_chunks_mut(fb.max(1))
            .enumerate()
            .for_each(|(o, orow)| orow[s..s + b].copy_from_slice(&g[o * b..(o + 1) * b]));
        Ok(vec![out])
    }
}

impl Tensor {
    /// Same data, new shape of equal size (a view sharing storage). `usize::MAX` in one position is
    /// inferred, like PyTorch's -1.
    pub fn reshape(&self, dims: impl Into<Shape>) -> Result<Tensor> {
        let mut dims = dims.into().dims().to_vec();
        if let Some(pos) = dims.iter().position(|&d| d == usize::MAX) {
            let known: usize = dims.iter().filter(|&&d| d != usize::MAX).product();
            if known == 0 || self.numel() % known != 0 {
                return Err(Error::bad(
                    "reshape",
                    format!(
                        "cannot infer a dim reshaping {:?} to {:?}",
                        self.shape(),
                        dims
                    ),
                ));
            }
            dims[pos] = self.numel() / known;
        }
        let shape = Shape::new(dims);
        if shape.numel() != self.numel() {
            return Err(Error::shape(
                "reshape",
                self.shape(),
                &shape,
                "element counts differ",
            ));
        }
        let src = self.contiguous()?;
        let y = src.view_as(shape);
        let in_shape = self.shape().clone();
        Ok(y.track("reshape", &[self], move |dy| {
            Ok(vec![Some(dy.reshape(in_shape.clone())?)])
        }))
    }

    /// `[N, ...] → [N, prod(...)]`.
    pub fn flatten_from(&self, dim: usize) -> Result<Tensor> {
        let d = self.dims();
        let mut out: Vec<usize> = d[..dim.min(d.len())].to_vec();
        out.push(d[dim.min(d.len())..].iter().product());
        self.reshape(out)
    }

    /// A copy in another dtype (gradients are cast back).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        // Elementwise in storage order: the memory format is kept.
        let y = apply1_in(self.format(), &Cast, &[self], self.shape().clone(), dtype)?;
        let src = self.dtype();
        Ok(y.track("to_dtype", &[self], move |dy| {
            Ok(vec![Some(dy.to_dtype(src)?)])
        }))
    }

    /// Same values in the given memory format.
    pub fn to_format(&self, format: MemoryFormat) -> Result<Tensor> {
        if format == self.format() {
            return Ok(self.clone());
        }
        FORMAT_CONVERSIONS.with(|c| c.set(c.get() + 1));
        let (n, c, h, w) = self.shape().dims4("to_format")?;
        let map = match format {
            // Dense NHWC output read from NCHW input.
            MemoryFormat::ChannelsLast => {
                Broadcast::from_parts(vec![n, h, w, c], vec![c * h * w, w, 1, h * w])
            }
            // Dense NCHW output read from NHWC input.
            MemoryFormat::Contiguous => {
                Broadcast::from_parts(vec![n, c, h, w], vec![h * w * c, 1, w * c, c])
            }
        };
        let kernel = StridedCopy {
            map,
            numel: self.numel(),
        };
        let storage = {
            let guard = self.storage();
            run_kernel(&kernel, &[&*guard], &[self.dtype()])?
                .pop()
                .expect("one output")
        };
        let y = Tensor::from_storage(storage, self.shape().clone(), format)?;
        let src = self.format();
        Ok(y.track("to_format", &[self], move |dy| {
            Ok(vec![Some(dy.to_format(src)?)])
        }))
    }

    /// Row-major storage (a no-op when already so).
    pub fn contiguous(&self) -> Result<Tensor> {
        self.to_format(MemoryFormat::Contiguous)
    }

    /// Reorders dims: output dim `i` is input dim `perm[i]` (a copy).
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::bad(
                "permute",
                format!("{perm:?} is not a permutation of {r} dims"),
            ));
        }
        let x = self.contiguous()?;
        let st = x.shape().contiguous_strides();
        let out: Vec<usize> = perm.iter().map(|&p| x.dims()[p]).collect();
        let strides: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
        let y = apply1(
            &StridedCopy {
                map: Broadcast::from_parts(out.clone(), strides),
                numel: x.numel(),
            },
            &[&x],
            Shape::new(out),
            x.dtype(),
        )?;
        let mut inv = vec![0; r];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        Ok(y.track("permute", &[self], move |dy| {
            Ok(vec![Some(dy.permute(&inv)?)])
        }))
    }

    /// Swaps two dims (a copy).
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        if a >= perm.len() || b >= perm.len() {
            return Err(Error::bad(
                "transpose",
                format!("dims {a}, {b} out of range for {:?}", self.shape()),
            ));
        }
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Joins tensors along `dim`; all other dims must match.
    pub fn concat(tensors: &[&Tensor], dim: usize) -> Result<Tensor> {
        let first = *tensors
            .first()
            .ok_or_else(|| Error::bad("concat", "no tensors given"))?;
        if dim >= first.rank() {
            return Err(Error::bad(
                "concat",
                format!("dim {dim} out of range for {:?}", first.shape()),
            ));
        }
        for t in tensors {
            super::same_dtype_device("concat", first, t)?;
            let ok = t.rank() == first.rank()
                && (0..t.rank()).all(|d| d == dim || t.dims()[d] == first.dims()[d]);
            if !ok {
                return Err(Error::shape(
                    "concat",
                    first.shape(),
                    t.shape(),
                    format!("all dims but {dim} must match"),
                ));
            }
        }
        let outer: usize = first.dims()[..dim].iter().product();
        let inner: usize = first.dims()[dim + 1..].iter().product();
        let extents: Vec<usize> = tensors.iter().map(|t| t.dims()[dim]).collect();
        let mut out = first.dims().to_vec();
        out[dim] = extents.iter().sum();
        let kernel = Concat {
            outer,
            blocks: extents.iter().map(|e| e * inner).collect(),
        };
        let y = apply1(&kernel, tensors, Shape::new(out), first.dtype())?;
        Ok(y.track("concat", tensors, move |dy| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(extents.len());
            for &e in &extents {
                grads.push(Some(dy.narrow(dim, start, e)?));
                start += e;
            }
            Ok(grads)
        }))
    }

    /// Elements `[start, start+len)` along `dim` (a copy).
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        if dim >= self.rank() || start + len > self.dims()[dim] {
            return Err(Error::bad(
                "narrow",
                format!(
                    "range {start}..{} of dim {dim} is outside {:?}",
                    start + len,
                    self.shape()
                ),
            ));
        }
        let outer: usize = self.dims()[..dim].iter().product();
        let inner: usize = self.dims()[dim + 1..].iter().product();
        let full = self.dims()[dim];
        let mut out = self.dims().to_vec();
        out[dim] = len;
        let y = apply1(
            &Narrow {
                outer,
                inner,
                full,
                start,
                len,
            },
            &[self],
            Shape::new(out),
            self.dtype(),
        )?;
        let in_shape = self.shape().clone();
        Ok(y.track("narrow", &[self], move |dy| {
            let k = NarrowBackward(Narrow {
                outer,
                inner,
                full,
                start,
                len,
            });
            Ok(vec![Some(apply1(&k, &[dy], in_shape.clone(), dy.dtype())?)])
        }))
    }
}

thread_local! {
    static FORMAT_CONVERSIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many memory-format conversions (`Tensor::to_format` calls that copied) this thread has made:
/// a channels-last network should convert only at its few NCHW-only ops, which tests check with the
/// difference of two readings. Ops run on the calling thread, so the count is exact per thread.
pub fn format_conversions() -> u64 {
    FORMAT_CONVERSIONS.with(|c| c.get())
}

fn check_numel(op: &'static str, what: &str, v_len: usize, [n, c, h, w]: [usize; 4]) -> Result<()> {
    if v_len != n * c * h * w {
        return Err(Error::bad(
            op,
            format!("{what} has {v_len} elements, the geometry needs {n}·{c}·{h}·{w}"),
        ));
    }
    Ok(())
}

/// `[n, h, w, c]` storage → `[n, c, h, w]` storage.
pub(crate) fn to_nchw<T: Copy>(
    op: &'static str,
    what: &str,
    v: &[T],
    d: [usize; 4],
) -> Result<Vec<T>> {
    relayout(op, what, v, d, false)
}

/// `[n, c, h, w]` storage → `[n, h, w, c]` storage.
pub(crate) fn to_nhwc<T: Copy>(
    op: &'static str,
    what: &str,
    v: &[T],
    d: [usize; 4],
) -> Result<Vec<T>> {
    relayout(op, what, v, d, true)
}

/// Copies `v` (logical dims `d`) between the two layouts: NCHW → NHWC when `to_nhwc`, else back.
fn relayout<T: Copy>(
    op: &'static str,
    what: &str,
    v: &[T],
    d: [usize; 4],
    to_nhwc: bool,
) -> Result<Vec<T>> {
    check_numel(op, what, v.len(), d)?;
    let [n, c, h, w] = d;
    let plane = h * w;
    let mut out = v.to_vec();
    for img in 0..n {
        for ch in 0..c {
            for p in 0..plane {
                let nchw = (img * c + ch) * plane + p;
                let nhwc = (img * plane + p) * c + ch;
                if to_nhwc {
                    out[nhwc] = v[nchw];
                } else {
                    out[nchw] = v[nhwc];
                }
            }
        }
    }
    Ok(out)
}
