//! The calls of cuda/sgd.cu's kernels (kernel names and argument lists; see call.rs) and the launch
//! plans of its multi-tensor kernels: `sgd_step_*` (`SgdStep`, one parameter tensor), `all_finite_*`
//! and `all_finite_finish` (`AllFinite`), and the fused `multi_tensor_all_finite_*` and
//! `multi_tensor_sgd_*` with their per-tensor argument record, the chunking of every tensor into
//! [`CHUNK`]-element pieces, the grouping by gradient dtype, and the grid.
//!
//! Invariants: [`SgdTensorArgs`] has the field order and size (48 bytes) of its C twin; a group's
//! `chunk_starts` are the prefix sums of its tensors' chunk counts (one more entry than tensors,
//! starting at 0), so chunks partition every tensor and each element is updated by one thread; the
//! step scalars come from the op structs (`SgdStep`, `MultiTensorHyper`) by field name, so no two
//! same-typed scalars can trade places at a call site.

use super::call::KernelCall;
use super::{suffix, Launch1d, THREADS};
use crate::optim::sgd::{MultiTensorHyper, SgdStep};
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

/// `sgd_step_<T>(i64 n, double lr, double mu, double wd, double inv, int first, int nesterov,
/// const T* p, const T* g, const T* buf, T* p_out, T* b_out)`: one SGD step of `k` over n elements
/// (`buf` is not read on a first step); all five buffers hold n elements of `dtype`.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step<P>(
    dtype: DType,
    n: usize,
    k: &SgdStep,
    p: P,
    g: P,
    buf: P,
    p_out: P,
    b_out: P,
) -> KernelCall<P> {
    KernelCall::new("sgd", format!("sgd_step_{}", suffix(dtype)))
        .i64(n)
        .f64(k.lr)
        .f64(k.momentum)
        .f64(k.weight_decay)
        .f64(k.inv_scale)
        .i32(k.first_step as i32)
        .i32(k.nesterov as i32)
        .ptr(p)
        .ptr(g)
        .ptr(buf)
        .ptr(p_out)
        .ptr(b_out)
}

/// `all_finite_<T>(i64 n, const T* x, unsigned* flag)`: ORs 1 into the (zeroed) u32 `flag` when
/// any of x's n elements is inf or NaN.
pub fn all_finite<P>(dtype: DType, n: usize, x: P, flag: P) -> KernelCall<P> {
    KernelCall::new("sgd", format!("all_finite_{}", suffix(dtype)))
        .i64(n)
        .ptr(x)
        .ptr(flag)
}

/// `all_finite_finish(const unsigned* flag, float* out)`: `out[0]` = 1 when `flag` is 0, else 0;
/// launched on [`all_finite_finish_launch`].
pub fn all_finite_finish<P>(flag: P, out: P) -> KernelCall<P> {
    KernelCall::new("sgd", "all_finite_finish")
        .ptr(flag)
        .ptr(out)
}

/// `multi_tensor_all_finite_<G>(const SgdTensorArgs* ts, int n_tensors, const i64* chunk_start,
/// i64 chunk, unsigned* flag)`: ORs 1 into the u32 `flag` when any gradient of the group is inf or
/// NaN. `ts` holds the group's `n_tensors` records, `chunk_start` their `n_tensors + 1` chunk prefix
/// sums for chunks of `chunk` elements; `grad_dtype` (f16 or f32) picks the kernel.
pub fn multi_tensor_all_finite<P>(
    grad_dtype: DType,
    ts: P,
    n_tensors: usize,
    chunk_start: P,
    chunk: i64,
    flag: P,
) -> KernelCall<P> {
    KernelCall::new(
        "sgd",
        format!("multi_tensor_all_finite_{}", suffix(grad_dtype)),
    )
    .ptr(ts)
    .i32(i32::try_from(n_tensors).expect("tensor count fits in int"))
    .ptr(chunk_start)
    .signed(chunk)
    .ptr(flag)
}

/// `multi_tensor_sgd_<G>(const SgdTensorArgs* ts, int n_tensors, const i64* chunk_start, i64 chunk,
/// float lr, float mu, float inv_scale, int nesterov, const unsigned* flag)`: the step of `hp`
/// (rounded to f32) over every tensor of the group, in place, unless `flag` is set; arguments as in
/// [`multi_tensor_all_finite`].
pub fn multi_tensor_sgd<P>(
    grad_dtype: DType,
    ts: P,
    n_tensors: usize,
    chunk_start: P,
    chunk: i64,
    hp: &MultiTensorHyper,
    flag: P,
) -> KernelCall<P> {
    KernelCall::new("sgd", format!("multi_tensor_sgd_{}", suffix(grad_dtype)))
        .ptr(ts)
        .i32(i32::try_from(n_tensors).expect("tensor count fits in int"))
        .ptr(chunk_start)
        .signed(chunk)
        .f32(hp.lr as f32)
        .f32(hp.momentum as f32)
        .f32(hp.inv_scale as f32)
        .i32(hp.nesterov as i32)
        .ptr(flag)
}
