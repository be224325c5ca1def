// Row-wise ("one group of threads per row") helpers shared by cuda/softmax.cu, cuda/loss.cu and
// cuda/adain.cu: math overloads for float/double, and two *group* policies that let one kernel body run
// with either one warp per row or one block per row.
//
// A group policy `G` provides:
//   G::rank(), G::size()     this thread's index in its group and the group's thread count;
//   G::first(), G::step()    the first row of this group and the row stride (grid-stride over rows);
//   G::sum(v), G::max(v)     an all-reduce over the group: every thread of the group gets the result.
//
// Invariants:
// - WarpGroup: blockDim.x is a multiple of 32; a warp owns a row, and all 32 lanes of a warp run the
//   same number of row iterations (the row index is uniform per warp), so full-mask shuffles are safe.
// - BlockGroup: blockDim.x is a multiple of 32 and at most 1024; the row index is uniform per block,
//   so the __syncthreads() inside `sum`/`max` are reached by every thread. The shared scratch is
//   protected by a trailing __syncthreads(), so reductions can follow each other directly.
// - Reductions are deterministic: each thread accumulates a fixed strided share in a fixed order, then
//   a fixed shuffle tree (and, for blocks, a fixed tree over the warp results) combines them. The same
//   launch configuration therefore gives bit-identical results run after run. No float atomics.
// - `max` follows fmax/fmaxf semantics (a NaN operand is ignored), which is what Rust's `f32::max`
//   (used by the CPU kernels' folds) does too.
#pragma once
#include "common.cuh"

__device__ __forceinline__ float r_exp(float x) { return expf(x); }
__device__ __forceinline__ double r_exp(double x) { return exp(x); }
__device__ __forceinline__ float r_log(float x) { return logf(x); }
__device__ __forceinline__ double r_log(double x) { return log(x); }
__device__ __forceinline__ float r_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double r_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float r_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double r_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float r_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double r_abs(double x) { return fabs(x); }
__device__ __forceinline__ float r_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double r_max(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ float r_neg_inf(float) { return -INFINITY; }
__device__ __forceinline__ double r_neg_inf(double) { return -(double)INFINITY; }

template <typename A>
__device__ __forceinline__ A warp_allsum(A v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename A>
__device__ __forceinline__ A warp_allmax(A v) {
    for (int o = 16; o > 0; o >>= 1) v = r_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

struct WarpGroup {
    __device__ static __forceinline__ int rank() { return threadIdx.x & 31; }
    __device__ static __forceinline__ int size() { return 32; }
    __device__ static __forceinline__ i64 first() { return ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5; }
    __device__ static __forceinline__ i64 step() { return ((i64)gridDim.x * blockDim.x) >> 5; }
    template <typename A> __device__ static __forceinline__ A sum(A v) { return warp_allsum(v); }
    template <typename A> __device__ static __forceinline__ A max(A v) { return warp_allmax(v); }
};

// Combines per-warp results through shared memory; `IS_MAX` picks max instead of sum.
template <typename A, bool IS_MAX>
__device__ __forceinline__ A block_allreduce(A v) {
    __shared__ A scratch[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = IS_MAX ? warp_allmax(v) : warp_allsum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    const A id = IS_MAX ? r_neg_inf(A(0)) : A(0);
    A w = lane < n_warps ? scratch[lane] : id;
    w = IS_MAX ? warp_allmax(w) : warp_allsum(w);
    __syncthreads(); // scratch may be rewritten by the next reduction
    return w;
}

struct BlockGroup {
    __device__ static __forceinline__ int rank() { return threadIdx.x; }
    __device__ static __forceinline__ int size() { return blockDim.x; }
    __device__ static __forceinline__ i64 first() { return blockIdx.x; }
    __device__ static __forceinline__ i64 step() { return gridDim.x; }
    template <typename A> __device__ static __forceinline__ A sum(A v) { return block_allreduce<A, false>(v); }
    template <typename A> __device__ static __forceinline__ A max(A v) { return block_allreduce<A, true>(v); }
};
