//! `gemm` of the simulated device: a host reference of cuBLAS's column-major, strided-batched GEMM,
//! under the real `matmul.rs` launcher (which maps the engine's row-major matmul onto cuBLAS by
//! swapping operands and leading dimensions). Computing exactly what cuBLAS would from the
//! launcher's `GemmGeometry`, it checks that mapping without a GPU.
//!
//! Invariants: element (r, c) of a column-major operand with leading dimension `ld` is at
//! `r + c·ld`; a stored-transposed operand is read as its transpose; sums are in f64, rounded once to
//! the output dtype; an operand index outside its buffer is an error naming the operand (cuBLAS would
//! read out of bounds).

use super::matmul::GemmGeometry;
use super::{CudaStorage, Gpu};
use crate::backend::cpu::CpuStorage;
use crate::{Error, Result};

/// `c = op(a)·op(b)` per `geom` (cuBLAS's roles).
pub(super) fn gemm(
    _g: &Gpu,
    geom: &GemmGeometry,
    a: &CudaStorage,
    b: &CudaStorage,
    c: &mut CudaStorage,
) -> Result<()> {
    let (m, n, k) = (geom.m as usize, geom.n as usize, geom.k as usize);
    let (lda, ldb, ldc) = (geom.lda as usize, geom.ldb as usize, geom.ldc as usize);
    let batch = geom.batch as usize;
    if batch == 0 || m == 0 || n == 0 || k == 0 {
        // The launcher never calls with an empty product (it returns zeros itself).
        return Err(Error::bad(
            "matmul",
            format!("cuda-sim: empty GEMM m {m} n {n} k {k} batch {batch}"),
        ));
    }
    // The largest element each operand's view reaches.
    let last = |stride: i64, rows: usize, cols: usize, ld: usize| {
        stride as usize * (batch - 1) + (rows - 1) + (cols - 1) * ld
    };
    let (ar, ac) = if geom.transa { (k, m) } else { (m, k) };
    let (br, bc) = if geom.transb { (n, k) } else { (k, n) };
    for (what, end, len) in [
        ("A", last(geom.stride_a, ar, ac, lda), a.len()),
        ("B", last(geom.stride_b, br, bc, ldb), b.len()),
        ("C", last(geom.stride_c, m, n, ldc), c.len()),
    ] {
        if end >= len {
            return Err(Error::bad(
                "matmul",
                format!(
                    "cuda-sim: GEMM operand {what} reaches element {end} of a {len}-element buffer"
                ),
            ));
        }
    }
    let (av, bv) = (
        a.to_cpu_uncounted().to_vec::<f64>(),
        b.to_cpu_uncounted().to_vec::<f64>(),
    );
    // Elements of C outside the batch's views keep their value (none do for the launcher's plans).
    let mut cv = c.to_cpu_uncounted().to_vec::<f64>();
    for i in 0..batch {
        let (oa, ob, oc) = (
            geom.stride_a as usize * i,
            geom.stride_b as usize * i,
            geom.stride_c as usize * i,
        );
        for col in 0..n {
            for r in 0..m {
                let mut s = 0.0f64;
                for kk in 0..k {
                    let x = if geom.transa {
                        av[oa + kk + r * lda]
                    } else {
                        av[oa + r + kk * lda]
                    };
                    let y = if geom.transb {
                        bv[ob + col + kk * ldb]
                    } else {
                        bv[ob + kk + col * ldb]
                    };
                    s += x * y;
                }
                cv[oc + r + col * ldc] = s;
            }
        }
    }
    c.overwrite(&CpuStorage::from_vec(cv).to_dtype(c.dtype()))
}
