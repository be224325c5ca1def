// Data-movement kernels for src/ops/layout.rs and the `StridedCopy` kernel of src/ops/reduce.rs:
// dtype casts (f16/f32/f64, every ordered pair), a 2-d block copy used by `Concat`, `Narrow` and
// `NarrowBackward`, and a strided gather used by `StridedCopy` (broadcast, permute, memory formats).
//
// Invariants:
// - Copy kernels move raw bits: they are instantiated per element *size* (u16, u32, u64), so one kernel
//   serves every dtype of that size and never changes a value (NaN payloads and signed zeros included).
// - Casts round to nearest even: f32→f16 with __float2half_rn, f64→f16 directly with __double2half
//   (one rounding, like `half::f16::from_f64`), f64→f32 with the default C conversion (rn).
// - `copy2d` views source and destination as rows: element (r, c) of an `rows × cols` block is read at
//   `r·src_rs + src_off + c` and written at `r·dst_rs + dst_off + c`. Distinct (r, c) never write the
//   same destination element as long as cols ≤ dst_rs, which every launcher guarantees.
// - All offsets are 64-bit.
#include "common.cuh"

__device__ __forceinline__ void cv(float &d, __half s) { d = __half2float(s); }
__device__ __forceinline__ void cv(double &d, __half s) { d = (double)__half2float(s); }
__device__ __forceinline__ void cv(__half &d, float s) { d = __float2half_rn(s); }
__device__ __forceinline__ void cv(double &d, float s) { d = (double)s; }
__device__ __forceinline__ void cv(__half &d, double s) { d = __double2half(s); }
__device__ __forceinline__ void cv(float &d, double s) { d = (float)s; }

template <typename S, typename D>
__device__ void cast_impl(i64 n, const S *x, D *y) {
    for (i64 i = gs_start(); i < n; i += gs_step()) {
        D v;
        cv(v, x[i]);
        y[i] = v;
    }
}

#define CAST(SN, S, DN, D)                                                                                   \
    extern "C" __global__ void cast_##SN##_##DN(i64 n, const S *x, D *y) { cast_impl<S, D>(n, x, y); }

CAST(f16, __half, f32, float)
CAST(f16, __half, f64, double)
CAST(f32, float, f16, __half)
CAST(f32, float, f64, double)
CAST(f64, double, f16, __half)
CAST(f64, double, f32, float)

template <typename U>
__device__ void copy2d_impl(i64 n, i64 cols, i64 src_rs, i64 src_off, i64 dst_rs, i64 dst_off, const U *src,
                            U *dst) {
    for (i64 i = gs_start(); i < n; i += gs_step()) {
        i64 r = i / cols;
        i64 c = i - r * cols;
        dst[r * dst_rs + dst_off + c] = src[r * src_rs + src_off + c];
    }
}

template <typename U>
__device__ void strided_copy_impl(i64 n, const StridedArgs &a, const U *x, U *y) {
    for (i64 i = gs_start(); i < n; i += gs_step()) y[i] = x[strided_offset(a, i)];
}

#define COPIES(UN, U)                                                                                        \
    extern "C" __global__ void copy2d_##UN(i64 n, i64 cols, i64 src_rs, i64 src_off, i64 dst_rs,            \
                                           i64 dst_off, const U *src, U *dst) {                             \
        copy2d_impl<U>(n, cols, src_rs, src_off, dst_rs, dst_off, src, dst);                                \
    }                                                                                                        \
    extern "C" __global__ void strided_copy_##UN(i64 n, StridedArgs a, const U *x, U *y) {                  \
        strided_copy_impl<U>(n, a, x, y);                                                                   \
    }

COPIES(u16, unsigned short)
COPIES(u32, unsigned int)
COPIES(u64, unsigned long long)
