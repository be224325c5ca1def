//! Launch plans of cuda/sgd.cu's multi-tensor kernels (`multi_tensor_all_finite_*`,
//! `multi_tensor_sgd_*`): the per-tensor argument record, the chunking of every tensor into
//! [`CHUNK`]-element pieces, the grouping by gradient dtype, and the grid.
//!
//! Invariants: [`SgdTensorArgs`] has the field order and size (48 bytes) of its C twin; a group's
//! `chunk_starts` are the prefix sums of its tensors' chunk counts (one more entry than tensors,
//! starting at 0), so chunks partition every tensor and each element is updated by one thread.

use super::{Launch1d, THREADS};
use crate::DType;

/// Elements per chunk of the multi-tensor kernels: one block works through one chunk at a time.
pub const CHUNK: i64 = 32 * 1024;
/// `SGD_FIRST` in cuda/sgd.cu: the tensor's first applied step (the momentum buffer is not read).
pub const SGD_FIRST: i32 = 1;
/// The multi-tensor grids use at most this many blocks per SM.
pub const MULTI_TENSOR_BLOCKS_PER_SM: usize = 8;

/// The host mirror of `SgdTensorArgs` in cuda/sgd.cu: 4 device addresses (`param_f16` 0 when the
/// parameter is f32), the element count, the tensor's weight decay and its flags.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdTensorArgs {
    pub master: u64,
    pub momentum: u64,
    pub grad: u64,
    pub param_f16: u64,
    pub numel: i64,
    pub weight_decay: f32,
    pub flags: i32,
}
const _: () = assert!(std::mem::size_of::<SgdTensorArgs>() == 48);

/// The tensors of one gradient dtype: one launch of each multi-tensor kernel.
#[derive(Clone, Debug)]
pub struct SgdGroup {
    pub grad_dtype: DType,
    pub tensors: Vec<SgdTensorArgs>,
    /// Prefix sums of the tensors' chunk counts: `tensors.len() + 1` entries from 0.
    pub chunk_starts: Vec<i64>,
}

impl SgdGroup {
    /// Chunks of the whole group (0 when every tensor is empty: nothing is launched).
    pub fn chunks(&self) -> i64 {
        *self.chunk_starts.last().expect("starts with 0")
    }
}

/// Groups `(gradient dtype, record)` pairs by dtype, in order of first appearance, with chunks of
/// `chunk` elements.
pub fn group_by_grad_dtype(
    chunk: i64,
    items: impl IntoIterator<Item = (DType, SgdTensorArgs)>,
) -> Vec<SgdGroup> {
    let mut groups: Vec<SgdGroup> = Vec::new();
    for (dtype, args) in items {
        let k = match groups.iter().position(|g| g.grad_dtype == dtype) {
            Some(k) => k,
            None => {
                groups.push(SgdGroup {
                    grad_dtype: dtype,
                    tensors: Vec::new(),
                    chunk_starts: vec![0],
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[k];
        let chunks = (args.numel.max(0) as u64).div_ceil(chunk as u64) as i64;
        g.chunk_starts.push(g.chunks() + chunks);
        g.tensors.push(args);
    }
    groups
}

/// The grid of both multi-tensor kernels for `chunks` chunks: a block per chunk, clamped to
/// 1..=`sm_count`·[`MULTI_TENSOR_BLOCKS_PER_SM`] (the kernels grid-stride over chunks).
pub fn multi_tensor_launch(chunks: i64, sm_count: usize) -> Launch1d {
    Launch1d {
        blocks: chunks.clamp(1, (sm_count * MULTI_TENSOR_BLOCKS_PER_SM).max(1) as i64) as u32,
        threads: THREADS,
    }
}

/// `all_finite_finish`'s launch: one warp.
pub fn all_finite_finish_launch() -> Launch1d {
    Launch1d {
        blocks: 1,
        threads: 32,
    }
}
