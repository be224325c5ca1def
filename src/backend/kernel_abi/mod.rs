//! How the host launches the kernels of `cuda/*.cu`, independent of any device: the host mirrors of
//! the kernels' argument structs, op codes, kernel-name suffixes, and every launch choice (grid size,
//! warp/block/lane variant, vector width, split count) as a pure function of sizes and the GPU's SM
//! count.
//!
//! Two users, one source of truth: the CUDA launchers (`src/backend/cuda/`) turn these plans into
//! cudarc launches, and the emulator tests (`tests/cuda_emu_*.rs`, feature `cuda-emu`) launch the same
//! kernels with the same arguments and grids on CPU fibers. A change here is therefore tested by the
//! emulator before it ever reaches a GPU.
//!
//! Invariants: every `#[repr(C)]` struct here has the size and field order of its C twin (asserted
//! at compile time where the C side states a size); every grid has at least one block and at most
//! the cap its launcher documents; nothing here touches a device.

pub mod adain;
pub mod adam;
pub mod batch_norm;
pub mod call;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod layout;
pub mod loss;
pub mod mixup;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod rows;
pub mod sgd;
pub mod softmax;

use crate::{DType, Error, Result};

/// Threads per block of the 1-d launches.
pub const THREADS: u32 = 256;
/// The most dims a [`StridedArgs`] holds (`MAX_DIMS` in cuda/common.cuh).
pub const MAX_DIMS: usize = 8;
/// Grid-stride launches use at most this many blocks per SM.
pub const BLOCKS_PER_SM: usize = 32;

/// A 1-d launch: `blocks` blocks of `threads` threads, no dynamic shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch1d {
    pub blocks: u32,
    pub threads: u32,
}

impl Launch1d {
    /// `blocks` blocks (clamped to 1..=`sm_count`·[`BLOCKS_PER_SM`]) of [`THREADS`] threads: the
    /// grid of every grid-stride kernel, for which any cap is correct.
    pub fn capped(blocks: usize, sm_count: usize) -> Launch1d {
        Launch1d {
            blocks: blocks.clamp(1, (sm_count * BLOCKS_PER_SM).max(1)) as u32,
            threads: THREADS,
        }
    }
    /// A thread per item: ceil(`n` / [`THREADS`]) blocks, capped as in [`Launch1d::capped`].
    pub fn per_item(n: usize, sm_count: usize) -> Launch1d {
        Launch1d::capped(n.div_ceil(THREADS as usize), sm_count)
    }
    /// Exactly `blocks` blocks of [`THREADS`] threads (kernels that index outputs by block).
    pub fn exact(blocks: usize) -> Launch1d {
        Launch1d {
            blocks: u32::try_from(blocks).expect("grid size fits in u32"),
            threads: THREADS,
        }
    }
    /// One block of [`THREADS`] threads.
    pub fn one_block() -> Launch1d {
        Launch1d {
            blocks: 1,
            threads: THREADS,
        }
    }
    /// The grid as (x, y, z).
    pub fn grid(self) -> [u32; 3] {
        [self.blocks, 1, 1]
    }
    /// The block shape as (x, y, z).
    pub fn block(self) -> [u32; 3] {
        [self.threads, 1, 1]
    }
}

/// The kernel-name suffix of a dtype (`unary_f32`).
pub fn suffix(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "f16",
        DType::F32 => "f32",
        DType::F64 => "f64",
    }
}

/// The kernel-name suffix of a dtype's bit width, for kernels that only move bits (`copy2d_u32`).
pub fn bits_suffix(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "u16",
        DType::F32 => "u32",
        DType::F64 => "u64",
    }
}

/// `Acc<T>` of cuda/common.cuh: the accumulation and scratch dtype, f64 for f64 and f32 otherwise.
pub fn acc_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// `a · b · …`, or an error naming `op` when it overflows.
pub fn product(op: &'static str, v: &[usize]) -> Result<usize> {
    v.iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| Error::bad(op, format!("sizes {v:?} overflow")))
}

/// Extents and one operand's strides of a dense row-major output, mirrored by `StridedArgs` in
/// cuda/common.cuh (8 + 8 i64, rank, pad: 136 bytes, 8-aligned). Passed by value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StridedArgs {
    pub dims: [i64; MAX_DIMS],
    pub strides: [i64; MAX_DIMS],
    pub rank: i32,
    pub pad: i32,
}
const _: () = assert!(std::mem::size_of::<StridedArgs>() == 136);

impl StridedArgs {
    /// Packs collapsed `dims` and one operand's `strides`; fails when more than [`MAX_DIMS`] remain.
    pub fn new(op: &'static str, dims: &[usize], strides: &[usize]) -> Result<StridedArgs> {
        if dims.len() > MAX_DIMS {
            return Err(Error::bad(
                op,
                format!(
                    "CUDA kernels take at most {MAX_DIMS} dims after merging contiguous ones; got {dims:?}"
                ),
            ));
        }
        let mut a = StridedArgs {
            rank: dims.len() as i32,
            ..Default::default()
        };
        for (d, (&n, &s)) in dims.iter().zip(strides).enumerate() {
            a.dims[d] = n as i64;
            a.strides[d] = s as i64;
        }
        Ok(a)
    }
}

/// Drops extent-1 dims and merges neighbouring dims that are contiguous for every operand
/// (`strides[k][d]` is operand k's stride of dim d). The offsets the result describes are identical
/// for every row-major position, and there are fewer dims to decompose in the kernel.
pub fn collapse(dims: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut out_dims: Vec<usize> = Vec::with_capacity(dims.len());
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::with_capacity(dims.len()); strides.len()];
    for (d, &n) in dims.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let mergeable = !out_dims.is_empty()
            && strides
                .iter()
                .zip(&out_strides)
                .all(|(s, o)| *o.last().expect("non-empty") == s[d] * n);
        if mergeable {
            *out_dims.last_mut().expect("non-empty") *= n;
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                *o.last_mut().expect("non-empty") = s[d];
            }
        } else {
            out_dims.push(n);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    (out_dims, out_strides)
}

/// The largest element offset a collapsed map (`dims`, one operand's `strides`) reads, plus one: the
/// length the operand's buffer must have. 0 for an empty map.
pub fn extent(dims: &[usize], strides: &[usize]) -> usize {
    if dims.contains(&0) {
        return 0;
    }
    dims.iter()
        .zip(strides)
        .map(|(&d, &s)| (d - 1) * s)
        .sum::<usize>()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_merges_contiguous_and_drops_ones() {
        // [2,3,4] contiguous and a [1,3,1] broadcast operand.
        let (d, s) = collapse(&[2, 3, 4], &[&[12, 4, 1], &[0, 1, 0]]);
        assert_eq!(d, vec![2, 3, 4]);
        assert_eq!(s, vec![vec![12, 4, 1], vec![0, 1, 0]]);
        let (d, s) = collapse(&[2, 3, 4], &[&[12, 4, 1], &[12, 4, 1]]);
        assert_eq!(d, vec![24]);
        assert_eq!(s, vec![vec![1], vec![1]]);
        let (d, s) = collapse(&[2, 1, 3, 4], &[&[12, 12, 4, 1], &[0, 0, 4, 1]]);
        assert_eq!(d, vec![2, 12]);
        assert_eq!(s, vec![vec![12, 1], vec![0, 1]]);
        let (d, _) = collapse(&[1, 1], &[&[1, 1]]);
        assert!(d.is_empty());
    }

    #[test]
    fn grids_are_clamped_to_one_and_the_cap() {
        assert_eq!(Launch1d::per_item(0, 4).blocks, 1);
        assert_eq!(Launch1d::per_item(257, 4).blocks, 2);
        assert_eq!(Launch1d::per_item(1 << 30, 4).blocks, 128);
        assert_eq!(Launch1d::capped(1000, 132).blocks, 1000);
    }

    #[test]
    fn strided_args_refuse_too_many_dims_and_extent_counts_the_last_offset() {
        assert!(StridedArgs::new("t", &[2; 9], &[1; 9]).is_err());
        let a = StridedArgs::new("t", &[3, 4], &[8, 1]).unwrap();
        assert_eq!((a.rank, a.dims[1], a.strides[0]), (2, 4, 8));
        assert_eq!(extent(&[3, 4], &[8, 1]), 2 * 8 + 3 + 1);
        assert_eq!(extent(&[3, 0], &[8, 1]), 0);
    }
}
