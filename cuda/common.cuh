// Shared device helpers for every kernel in cuda/*.cu.
//
// Invariants:
// - Element types: `__half` (f16 storage, arithmetic in f32), `float`, `double`. `Acc<T>::type` is the
//   compute type: float for half and float, double for double. Values are loaded with `ld` (widening)
//   and stored with `st` (round-to-nearest-even narrowing), so an f16 kernel sees the same storage
//   rounding as the CPU backend, which widens f16 to f32 before computing and rounds after.
// - Indexing is 64-bit (`i64`) everywhere a size or offset can exceed 2^31; loops are grid-stride so any
//   grid size is correct (launchers cap the grid).
// - Shape/stride descriptors are passed by value as small POD structs whose layout is mirrored by
//   `#[repr(C)]` structs in src/backend/cuda/*.rs; MAX_DIMS must match `MAX_DIMS` there.
// - Every kernel is `extern "C"` so the Rust side loads it by its plain name.
#pragma once
#include <cuda_fp16.h>

typedef long long i64;

#define MAX_DIMS 8

template <typename T> struct Acc;
template <> struct Acc<__half> { typedef float type; };
template <> struct Acc<float> { typedef float type; };
template <> struct Acc<double> { typedef double type; };

__device__ __forceinline__ float ld(const __half *p, i64 i) { return __half2float(p[i]); }
__device__ __forceinline__ float ld(const float *p, i64 i) { return p[i]; }
__device__ __forceinline__ double ld(const double *p, i64 i) { return p[i]; }

__device__ __forceinline__ void st(__half *p, i64 i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void st(float *p, i64 i, float v) { p[i] = v; }
__device__ __forceinline__ void st(double *p, i64 i, double v) { p[i] = v; }

// First index and stride of a 1-d grid-stride loop, in 64 bits.
__device__ __forceinline__ i64 gs_start() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 gs_step() { return (i64)gridDim.x * blockDim.x; }

// Extents and input strides of a (collapsed) row-major output, for strided reads.
struct StridedArgs {
    i64 dims[MAX_DIMS];
    i64 strides[MAX_DIMS];
    int rank;
    int pad_;
};

// Input offset of row-major output position `i` under `a`.
__device__ __forceinline__ i64 strided_offset(const StridedArgs &a, i64 i) {
    i64 off = 0;
    for (int d = a.rank - 1; d >= 0; --d) {
        i64 n = a.dims[d];
        i64 q = i / n;
        off += (i - q * n) * a.strides[d];
        i = q;
    }
    return off;
}
