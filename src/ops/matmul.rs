//! Matrix products through the `gemm` crate: `matmul` (batched over leading dims, or a 2-d right-hand
//! side shared by the batch), `matmul_t` with transpose flags, and `linear` (x·Wᵀ + b, PyTorch's
//! weight layout `[out, in]`). Backward: dA = dY·Bᵀ, dB = Aᵀ·dY, each one more matmul_t.

use super::{apply1, same_dtype_device};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Error, Result, Shape, Tensor};
use rayon::prelude::*;

/// `C[b] = op(A[b]) · op(B[b])` where op transposes when the flag is set. A is `[batch, m, k]`
/// (or `[batch, k, m]` when transposed), B `[batch?, k, n]` (or `[.., n, k]`).
pub struct Matmul {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    /// B is one matrix shared by every batch entry.
    pub b_shared: bool,
}

/// `dst[m×n] (+)= op(lhs) · op(rhs)` for densely stored row-major buffers (`gemm_ld` with the natural
/// row strides). `accumulate` adds into dst instead of overwriting it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: Float>(
    dst: &mut [T],
    lhs: &[T],
    rhs: &[T],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
    threads: usize,
) {
    let ldl = if trans_a { m } else { k };
    let ldr = if trans_b { k } else { n };
    gemm_ld(
        dst,
        n,
        lhs,
        ldl,
        rhs,
        ldr,
        (m, k, n),
        (trans_a, trans_b),
        accumulate,
        threads,
    );
}

/// `dst[m×n] (+)= op(lhs) · op(rhs)` for row-major matrices with explicit row strides (`ld*`, in
/// elements; for a transposed operand, the stride of its stored rows). Lets a tile address a band of
/// columns inside a wider matrix.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_ld<T: Float>(
    dst: &mut [T],
    ldd: usize,
    lhs: &[T],
    ldl: usize,
    rhs: &[T],
    ldr: usize,
    (m, k, n): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let need =
        |rows: usize, ld: usize, cols: usize| if rows == 0 { 0 } else { (rows - 1) * ld + cols };
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    // Hard checks: the unsafe call below relies on them.
    assert!(
        dst.len() >= need(m, ldd, n)
            && lhs.len() >= need(ar, ldl, ac)
            && rhs.len() >= need(br, ldr, bc),
        "gemm_ld: operand too short"
    );
    let (lhs_rs, lhs_cs) = if trans_a {
        (1, ldl as isize)
    } else {
        (ldl as isize, 1)
    };
    let (rhs_rs, rhs_cs) = if trans_b {
        (1, ldr as isize)
    } else {
        (ldr as isize, 1)
    };
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above shows every addressed element lies inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ldd as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        )
    }
}

impl CpuKernel for Matmul {
    const NAME: &'static str = "matmul";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (a, b) = (inputs[0], inputs[1]);
        let (m, k, n) = (self.m, self.k, self.n);
        let mut out = vec![T::zero(); self.batch * m * n];
        let threads = rayon::current_num_threads();
        if self.batch == 1 {
            gemm_into(
                &mut out,
                a,
                b,
                m,
                k,
                n,
                self.trans_a,
                self.trans_b,
                false,
                threads,
            );
        } else {
            out.par_chunks_mut(m * n).enumerate().for_each(|(i, o)| {
                let bi = if self.b_shared {
                    &b[..k * n]
                } else {
                    &b[i * k * n..(i + 1) * k * n]
                };
                gemm_into(
                    o,
                    &a[i * m * k..(i + 1) * m * k],
                    bi,
                    m,
                    k,
                    n,
                    self.trans_a,
                    self.trans_b,
                    false,
                    1,
                );
            });
        }
        Ok(vec![out])
    }
}

impl Tensor {
    /// `self · rhs` over the last two dims; leading dims are a batch (rhs may be 2-d and shared).
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.matmul_t(rhs, false, false)
    }

    /// `op(self) · op(rhs)`, where op transposes the last two dims when its flag is set.
    pub fn matmul_t(&self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        same_dtype_device("matmul", self, rhs)?;
        if self.rank() < 2 || rhs.rank() < 2 {
            return Err(Error::shape(
                "matmul",
                self.shape(),
                rhs.shape(),
                "both operands need at least 2 dims",
            ));
        }
        let (ad, bd) = (self.dims(), rhs.dims());
        let (ar, br) = (ad.len(), bd.len());
        let (m, ka) = if trans_a {
            (ad[ar - 1], ad[ar - 2])
        } else {
            (ad[ar - 2], ad[ar - 1])
        };
        let (kb, n) = if trans_b {
            (bd[br - 1], bd[br - 2])
        } else {
            (bd[br - 2], bd[br - 1])
        };
        if ka != kb {
            return Err(Error::shape(
                "matmul",
                self.shape(),
                rhs.shape(),
                format!("inner dims differ ({ka} vs {kb})"),
            ));
        }
        let batch_dims = &ad[..ar - 2];
        let batch: usize = batch_dims.iter().product();
        let b_shared = br == 2;
        if !b_shared && &bd[..br - 2] != batch_dims {
            return Err(Error::shape(
                "matmul",
                self.shape(),
                rhs.shape(),
                "batch dims differ",
            ));
        }
        let mut out_dims = batch_dims.to_vec();
        out_dims.extend([m, n]);
        let kernel = Matmul {
            batch,
            m,
            k: ka,
            n,
            trans_a,
            trans_b,
            b_shared,
        };
        let y = apply1(&kernel, &[self, rhs], Shape::new(out_dims), self.dtype())?;
        let (a, b) = (self.detach(), rhs.detach());
        let (need_a, need_b) = (self.requires_grad(), rhs.requires_grad());
        Ok(y.track("matmul", &[self, rhs], move |dy| {
            // Y = op(A)·op(B).  d op(A) = dY·op(B)ᵀ,  d op(B) = op(A)ᵀ·dY.
            let ga = if !need_a {
                None
            } else if trans_a {
                Some(b.matmul_t(dy, trans_b, true)?) // dA = (dY·op(B)ᵀ)ᵀ = op(B)·dYᵀ
            } else {
                Some(dy.matmul_t(&b, false, !trans_b)?)
            };
            let gb = if !need_b {
                None
            } else if b_shared && batch > 1 {
                if trans_a {
                    return Err(Error::bad("matmul", "backward of a transposed batched lhs with a shared 2-d rhs is not supported"));
                }
                // One B for the whole batch: fold the batch into rows, A as [batch·m, k], dY as [batch·m, n].
                let a2 = a.reshape(vec![batch * m, ka])?;
                let dy2 = dy.reshape(vec![batch * m, n])?;
                Some(if trans_b { dy2.matmul_t(&a2, true, false)? } else { a2.matmul_t(&dy2, true, false)? })
            } else if trans_b {
                Some(dy.matmul_t(&a, true, trans_a)?) // dB = (op(A)ᵀ·dY)ᵀ = dYᵀ·op(A)
            } else {
                Some(a.matmul_t(dy, !trans_a, false)?)
            };
            Ok(vec![ga, gb])
        }))
    }

    /// `x · Wᵀ + b` with `weight: [out, in]`, `bias: [out]`; `x: [.., in]`.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = self.matmul_t(weight, false, true)?;
        match bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }
}
