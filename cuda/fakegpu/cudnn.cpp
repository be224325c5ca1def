// The fake GPU's cuDNN: the subset of cuDNN 9's legacy convolution API that the engine's CUDA backend
// calls through cudarc (src/backend/cuda/conv/: handles, 4-d tensor/filter/convolution descriptors,
// output dims, algorithm heuristic and exhaustive search, workspace sizes, forward, backward-data and
// backward-filter convolutions), computed on the CPU. Part of libengine_fakegpu.so (see fakegpu.h).
//
// Invariants:
// - Every entry point takes fakegpu::guard() first. Handles and descriptors are heap objects recorded
//   in a registry, so a null, destroyed or wrongly typed one is refused with CUDNN_STATUS_BAD_PARAM
//   instead of being dereferenced. Status values are only ones cudarc's cudnn-09021 enum has.
// - An API call validates synchronously, as cuDNN does before it launches anything (descriptor
//   agreement, groups, output dims equal to cuDNN's formula, algorithm, workspace size), then queues
//   the computation on the handle's stream, capturing descriptor contents and alpha/beta by value.
//   The queued op checks every buffer it touches with fakegpu::check_device first.
// - Semantics are cuDNN's: out = alpha * op(...) + beta * out, out not read when beta == 0; groups,
//   padding, stride, dilation; CONVOLUTION mode flips the filter, CROSS_CORRELATION does not; any
//   tensor strides (NCHW, NHWC, explicit); filters NCHW (KCRS) or NHWC (KRSC). Configurations:
//   HALF data with FLOAT compute (float accumulation, one rounding to half), FLOAT/FLOAT, DOUBLE/
//   DOUBLE; FLOAT data whose math type is not CUDNN_FMA_MATH is computed with inputs rounded to TF32,
//   as Ampere and later GPUs may do. TRUE_HALF (HALF compute) and other types: NOT_SUPPORTED.
// - Algorithms: 0 of each kind (no workspace) and 1 (IMPLICIT_PRECOMP_GEMM / BWD_*_ALGO_1), which
//   needs a workspace the size of the packed filter in the compute type and really keeps the packed
//   filter (or the filter-gradient accumulator) there. The others are reported NOT_SUPPORTED.
//   Find*AlgorithmEx poisons its output buffer with NaN (0xFF bytes) instead of computing it.
#include "fakegpu.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace {

// cudnnStatus_t (cudnn-09021)
enum : int { OK = 0, BAD_PARAM = 2000, NOT_SUPPORTED = 3000, ALLOC_FAILED = 4004, EXEC_FAILED = 5000 };
enum : int { DT_FLOAT = 0, DT_DOUBLE = 1, DT_HALF = 2 };       // cudnnDataType_t
enum : int { FMT_NCHW = 0, FMT_NHWC = 1, FMT_NCHW_VECT_C = 2 }; // cudnnTensorFormat_t
enum : int { MODE_CONVOLUTION = 0, MODE_CROSS_CORRELATION = 1 };
enum : int { MATH_DEFAULT = 0, MATH_TENSOR_OP = 1, MATH_FMA = 3 }; // cudnnMathType_t (0..3 valid)
enum Kind : int { FWD = 0, BWD_DATA = 1, BWD_FILTER = 2 };
constexpr int ALGO_COUNT[3] = {8, 6, 7}; // CUDNN_CONVOLUTION_{FWD,BWD_DATA,BWD_FILTER}_ALGO_COUNT
constexpr int SUPPORTED_ALGOS = 2;       // algorithms 0 and 1 of each kind

struct Handle {
    void *stream = nullptr; // CUstream; null is the legacy default stream
};
// One operand: logical dims (n,c,h,w or k,c,r,s) and element strides.
struct Operand {
    int d[4];
    long long s[4];
    long long count() const { return (long long)d[0] * d[1] * d[2] * d[3]; }
    size_t extent(size_t esz) const { // bytes from the first to past the last element
        long long last = 0;
        for (int i = 0; i < 4; i++) last += (long long)(d[i] - 1) * s[i];
        return size_t(last + 1) * esz;
    }
};
// A tensor or filter descriptor (filters: KCRS strides for NCHW, KRSC for NHWC).
struct Desc {
    bool set = false;
    int dt = 0;
    Operand o{};
};
using Tensor = Desc;
using Filter = Desc;
struct ConvDesc {
    bool set = false;
    int pad[2] = {}, stride[2] = {1, 1}, dil[2] = {1, 1};
    int mode = MODE_CROSS_CORRELATION, compute = DT_FLOAT, math = MATH_DEFAULT, groups = 1;
};

// cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t: identical layouts.
struct Perf {
    int algo, status;
    float time;
    size_t memory;
    int determinism, mathType, reserved[3];
};
static_assert(sizeof(Perf) == 48 && offsetof(Perf, memory) == 16 && offsetof(Perf, reserved) == 32);

enum ObjKind : int { OBJ_HANDLE, OBJ_TENSOR, OBJ_FILTER, OBJ_CONV };

// Live handles and descriptors (leaked on purpose: no destructor-order issues at exit).
std::unordered_map<const void *, int> &registry() {
    static auto *m = new std::unordered_map<const void *, int>();
    return *m;
}
template <class T> T *live(T *p, int kind) {
    auto it = registry().find(p);
    return it != registry().end() && it->second == kind ? p : nullptr;
}
template <class T> int create(T **out, int kind) {
    if (!out) return BAD_PARAM;
    T *p = new T();
    registry()[p] = kind;
    *out = p;
    return OK;
}
template <class T> int destroy(T *p, int kind, bool null_ok) {
    if (!p) return null_ok ? OK : BAD_PARAM;
    if (!live(p, kind)) return BAD_PARAM;
    registry().erase(p);
    delete p;
    return OK;
}

// ------------------------------------------------------------------------------------------------
// Numbers (h2f, f2h, tf32: fakegpu.h)

using fakegpu::f2h;
using fakegpu::h2f;
using fakegpu::tf32;

template <class T, class S> inline T ld(const S *p) { return T(*p); }
template <> inline float ld<float, uint16_t>(const uint16_t *p) { return h2f(*p); }
template <class T, class S> inline void st(S *p, T v) { *p = S(v); }
template <> inline void st<float, uint16_t>(uint16_t *p, float v) { *p = f2h(v); }

size_t elem_size(int dt) { return dt == DT_DOUBLE ? 8 : dt == DT_FLOAT ? 4 : 2; }

// ------------------------------------------------------------------------------------------------
// Geometry

// A convolution as one call sees it; x is the input, w the filter, y the output (cuDNN's roles).
struct Geo {
    int dt, compute;
    bool tf32, flip;
    Operand x, w, y;
    int groups, ph, pw, sh, sw, dh, dw;
    size_t esz() const { return elem_size(dt); }
    size_t csz() const { return compute == DT_DOUBLE ? 8 : 4; }
};

// cuDNN's output dims for (x, w, conv); validates the three descriptors and their agreement.
int output_dims(const Tensor *x, const Filter *w, const ConvDesc *cd, int od[4]) {
    if (!live(x, OBJ_TENSOR) || !live(w, OBJ_FILTER) || !live(cd, OBJ_CONV)) return BAD_PARAM;
    if (!x->set || !w->set || !cd->set || x->dt != w->dt) return BAD_PARAM;
    int g = cd->groups;
    if (x->o.d[1] != (long long)w->o.d[1] * g || w->o.d[0] % g != 0) return BAD_PARAM;
    od[0] = x->o.d[0];
    od[1] = w->o.d[0];
    for (int i = 0; i < 2; i++) {
        long long span = (long long)cd->dil[i] * (w->o.d[2 + i] - 1) + 1;
        long long room = (long long)x->o.d[2 + i] + 2LL * cd->pad[i] - span;
        if (room < 0) return BAD_PARAM;
        od[2 + i] = int(room / cd->stride[i] + 1);
    }
    return OK;
}

// Validates a call's descriptors (handle, agreement, output dims, supported configuration).
int geometry(const Handle *h, const Tensor *x, const Filter *w, const ConvDesc *cd, const Tensor *y,
             Geo *g) {
    if (!live(h, OBJ_HANDLE) || !live(y, OBJ_TENSOR) || !y->set) return BAD_PARAM;
    int od[4];
    if (int st = output_dims(x, w, cd, od)) return st;
    if (y->dt != x->dt) return BAD_PARAM;
    for (int i = 0; i < 4; i++)
        if (y->o.d[i] != od[i]) return BAD_PARAM;
    bool ok = (x->dt == DT_HALF && cd->compute == DT_FLOAT) ||
              (x->dt == DT_FLOAT && cd->compute == DT_FLOAT) ||
              (x->dt == DT_DOUBLE && cd->compute == DT_DOUBLE);
    if (!ok) return NOT_SUPPORTED;
    *g = Geo{x->dt, cd->compute, x->dt == DT_FLOAT && cd->math != MATH_FMA,
             cd->mode == MODE_CONVOLUTION, x->o, w->o, y->o, cd->groups, cd->pad[0],
             cd->pad[1], cd->stride[0], cd->stride[1], cd->dil[0], cd->dil[1]};
    return OK;
}

size_t workspace_need(const Geo &g, int algo) {
    return algo == 1 ? (size_t(g.w.count()) * g.csz() + 255) / 256 * 256 : 0;
}

// Status of `algo` of `kind`: BAD_PARAM out of range, NOT_SUPPORTED if not implemented here.
int algo_status(int kind, int algo) {
    if (algo < 0 || algo >= ALGO_COUNT[kind]) return BAD_PARAM;
    return algo < SUPPORTED_ALGOS ? OK : NOT_SUPPORTED;
}

// ------------------------------------------------------------------------------------------------
// Computation

// Copies an operand into a packed [d0][d1][d2][d3] array of T (the last two dims reversed if `flip`).
template <class T, class S> void pack(const S *base, const Operand &o, T *out, bool round, bool flip) {
    long long i = 0;
    for (int a = 0; a < o.d[0]; a++)
        for (int b = 0; b < o.d[1]; b++)
            for (int c = 0; c < o.d[2]; c++)
                for (int e = 0; e < o.d[3]; e++, i++) {
                    int cc = flip ? o.d[2] - 1 - c : c, ee = flip ? o.d[3] - 1 - e : e;
                    T v = ld<T>(base + a * o.s[0] + b * o.s[1] + cc * o.s[2] + ee * o.s[3]);
                    if constexpr (sizeof(T) == 4) v = round ? tf32(v) : v;
                    out[i] = v;
                }
}

// out = alpha * acc + beta * out over an operand (acc packed as by `pack`); out unread if beta == 0.
template <class T, class S>
void unpack(S *base, const Operand &o, const T *acc, T alpha, T beta, bool flip) {
    long long i = 0;
    for (int a = 0; a < o.d[0]; a++)
        for (int b = 0; b < o.d[1]; b++)
            for (int c = 0; c < o.d[2]; c++)
                for (int e = 0; e < o.d[3]; e++, i++) {
                    int cc = flip ? o.d[2] - 1 - c : c, ee = flip ? o.d[3] - 1 - e : e;
                    S *p = base + a * o.s[0] + b * o.s[1] + cc * o.s[2] + ee * o.s[3];
                    T v = alpha * acc[i];
                    if (beta != T(0)) v += beta * ld<T>(p);
                    st<T>(p, v);
                }
}

// Output columns [lo, hi) whose input column ow·stride + off lies in [0, len).
inline void col_range(int off, int stride, int len, int wo, int *lo, int *hi) {
    *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = len - 1 - off < 0 ? 0 : std::min(wo, (len - 1 - off) / stride + 1);
}

struct Call {
    int kind, algo;
    Geo g;
    uint64_t x, w, y, ws;
    size_t ws_size;
    double alpha, beta;
};

// The convolutions over packed operands (xp: N·C·H·W, wp: K·Cg·R·S, yp: N·K·Ho·Wo), accumulating
// into the output role (zero on entry). `Data`: backward-data (xp += Wᵀ·yp), else forward (yp += W·xp).
template <class T, bool Data> void conv_direct(const Geo &g, T *xp, const T *wp, T *yp) {
    const int N = g.x.d[0], C = g.x.d[1], H = g.x.d[2], W = g.x.d[3], K = g.w.d[0], Cg = g.w.d[1];
    const int R = g.w.d[2], S = g.w.d[3], Ho = g.y.d[2], Wo = g.y.d[3], Kg = K / g.groups;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            T *yk = yp + ((long long)n * K + k) * Ho * Wo;
            for (int cc = 0; cc < Cg; cc++) {
                T *xc = xp + ((long long)n * C + (k / Kg) * Cg + cc) * H * W;
                for (int r = 0; r < R; r++)
                    for (int s = 0; s < S; s++) {
                        T wv = wp[(((long long)k * Cg + cc) * R + r) * S + s];
                        int off = s * g.dw - g.pw, lo, hi;
                        col_range(off, g.sw, W, Wo, &lo, &hi);
                        for (int oh = 0; oh < Ho; oh++) {
                            int ih = oh * g.sh - g.ph + r * g.dh;
                            if (ih < 0 || ih >= H) continue;
                            T *xrow = xc + (long long)ih * W + off, *yrow = yk + (long long)oh * Wo;
                            const long long sw = g.sw;
                            if constexpr (Data)
                                for (int ow = lo; ow < hi; ow++) xrow[ow * sw] += wv * yrow[ow];
                            else
                                for (int ow = lo; ow < hi; ow++) yrow[ow] += wv * xrow[ow * sw];
                        }
                    }
            }
        }
}

template <class T> void conv_bwd_filter(const Geo &g, const T *xp, T *wp, const T *yp) {
    const int N = g.x.d[0], C = g.x.d[1], H = g.x.d[2], W = g.x.d[3], K = g.w.d[0], Cg = g.w.d[1];
    const int R = g.w.d[2], S = g.w.d[3], Ho = g.y.d[2], Wo = g.y.d[3], Kg = K / g.groups;
    for (int k = 0; k < K; k++)
        for (int cc = 0; cc < Cg; cc++) {
            int c = (k / Kg) * Cg + cc;
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++) {
                    int off = s * g.dw - g.pw, lo, hi;
                    col_range(off, g.sw, W, Wo, &lo, &hi);
                    const long long sw = g.sw;
                    T sum = 0;
                    for (int n = 0; n < N; n++) {
                        const T *xi = xp + ((long long)n * C + c) * H * W;
                        const T *dy = yp + ((long long)n * K + k) * Ho * Wo;
                        for (int oh = 0; oh < Ho; oh++) {
                            int ih = oh * g.sh - g.ph + r * g.dh;
                            if (ih < 0 || ih >= H) continue;
                            const T *row = xi + (long long)ih * W + off;
                            const T *drow = dy + (long long)oh * Wo;
                            for (int ow = lo; ow < hi; ow++) sum += drow[ow] * row[ow * sw];
                        }
                    }
                    wp[(((long long)k * Cg + cc) * R + r) * S + s] = sum;
                }
        }
}

template <class T, class S> void compute(const Call &c) {
    const Geo &g = c.g;
    const S *x = reinterpret_cast<const S *>(c.x), *w = reinterpret_cast<const S *>(c.w);
    const S *y = reinterpret_cast<const S *>(c.y);
    // The filter role lives in the workspace with algorithm 1, in a host vector with algorithm 0.
    std::vector<T> xv(size_t(g.x.count()), T(0)), yv(size_t(g.y.count()), T(0)), wv;
    T *wp = reinterpret_cast<T *>(c.ws);
    if (c.algo == 0) {
        wv.resize(size_t(g.w.count()));
        wp = wv.data();
    }
    T alpha = T(c.alpha), beta = T(c.beta);
    switch (c.kind) {
    case FWD:
        pack(x, g.x, xv.data(), g.tf32, false);
        pack(w, g.w, wp, g.tf32, g.flip);
        conv_direct<T, false>(g, xv.data(), wp, yv.data());
        unpack(const_cast<S *>(y), g.y, yv.data(), alpha, beta, false);
        break;
    case BWD_DATA:
        pack(w, g.w, wp, g.tf32, g.flip);
        pack(y, g.y, yv.data(), g.tf32, false);
        conv_direct<T, true>(g, xv.data(), wp, yv.data());
        unpack(const_cast<S *>(x), g.x, xv.data(), alpha, beta, false);
        break;
    default:
        pack(x, g.x, xv.data(), g.tf32, false);
        pack(y, g.y, yv.data(), g.tf32, false);
        conv_bwd_filter(g, xv.data(), wp, yv.data());
        unpack(const_cast<S *>(w), g.w, wp, alpha, beta, g.flip);
        break;
    }
}

const char *const NAMES[3][5] = {
    {"cudnnConvolutionForward x", "cudnnConvolutionForward w", "cudnnConvolutionForward y",
     "cudnnConvolutionForward workspace", "cudnnConvolutionForward"},
    {"cudnnConvolutionBackwardData dx", "cudnnConvolutionBackwardData w",
     "cudnnConvolutionBackwardData dy", "cudnnConvolutionBackwardData workspace",
     "cudnnConvolutionBackwardData"},
    {"cudnnConvolutionBackwardFilter x", "cudnnConvolutionBackwardFilter dw",
     "cudnnConvolutionBackwardFilter dy", "cudnnConvolutionBackwardFilter workspace",
     "cudnnConvolutionBackwardFilter"},
};

// The queued part of a convolution: checks every buffer, then computes.
void execute(const Call &c) {
    const Geo &g = c.g;
    size_t e = g.esz();
    const char *const *nm = NAMES[c.kind];
    if (!fakegpu::check_device(c.x, g.x.extent(e), nm[0]) ||
        !fakegpu::check_device(c.w, g.w.extent(e), nm[1]) ||
        !fakegpu::check_device(c.y, g.y.extent(e), nm[2]))
        return;
    if (c.algo != 0 && !fakegpu::check_device(c.ws, c.ws_size, nm[3])) return;
    if (g.dt == DT_HALF) compute<float, uint16_t>(c);
    else if (g.dt == DT_FLOAT) compute<float, float>(c);
    else compute<double, double>(c);
}

// Common argument checks of a convolution or a search: data pointers, their alignment.
int check_ptrs(const Geo &g, const void *x, const void *w, const void *y) {
    size_t e = g.esz();
    for (const void *p : {x, w, y})
        if (!p || reinterpret_cast<uintptr_t>(p) % e != 0) return BAD_PARAM;
    return OK;
}

int convolve(int kind, Handle *h, const void *alpha, const Tensor *xd, const void *x, const Filter *wd,
             const void *w, const ConvDesc *cd, int algo, void *ws, size_t ws_size, const void *beta,
             const Tensor *yd, const void *y) {
    Geo g;
    if (int st = geometry(h, xd, wd, cd, yd, &g)) return st;
    if (!alpha || !beta) return BAD_PARAM;
    if (int st = check_ptrs(g, x, w, y)) return st;
    if (int st = algo_status(kind, algo)) return st;
    size_t need = workspace_need(g, algo);
    if (need > 0 && (!ws || ws_size < need || reinterpret_cast<uintptr_t>(ws) % 16 != 0))
        return BAD_PARAM;
    if (fakegpu::failed()) return EXEC_FAILED;
    Call c{kind, algo, g, reinterpret_cast<uint64_t>(x), reinterpret_cast<uint64_t>(w),
           reinterpret_cast<uint64_t>(y), reinterpret_cast<uint64_t>(ws), ws_size, 0.0, 0.0};
    bool f64 = g.compute == DT_DOUBLE; // alpha and beta have the compute type's scaling type
    c.alpha = f64 ? *static_cast<const double *>(alpha) : *static_cast<const float *>(alpha);
    c.beta = f64 ? *static_cast<const double *>(beta) : *static_cast<const float *>(beta);
    fakegpu::enqueue(h->stream, NAMES[kind][4], [c] { execute(c); });
    return OK;
}

// ------------------------------------------------------------------------------------------------
// Algorithm lists

// The results cuDNN's heuristic (limit = SIZE_MAX, every implemented algorithm succeeds) or search
// (algorithms needing more than `limit` bytes fail) returns, best first: implemented algorithms with
// the descriptor's math type (HALF data: then again with the other math type), then the rest.
std::vector<Perf> perf_list(int kind, const Geo &g, int math, size_t limit, bool search) {
    std::vector<Perf> out;
    std::vector<int> maths{math};
    if (g.dt == DT_HALF) maths.push_back(math == MATH_DEFAULT ? MATH_TENSOR_OP : MATH_DEFAULT);
    for (size_t mi = 0; mi < maths.size(); mi++)
        for (int algo : {1, 0}) {
            size_t need = workspace_need(g, algo);
            bool fits = need <= limit;
            float t = (algo == 1 ? 0.5f : 1.0f) + float(mi);
            out.push_back(Perf{algo, fits ? OK : ALLOC_FAILED, fits ? t : -1.0f, need, 1,
                               maths[mi], {0, 0, 0}});
        }
    for (int algo = SUPPORTED_ALGOS; algo < ALGO_COUNT[kind]; algo++)
        out.push_back(Perf{algo, NOT_SUPPORTED, -1.0f, 0, 1, math, {0, 0, 0}});
    if (search) // measured order: successes by time, failures after
        std::stable_sort(out.begin(), out.end(), [](const Perf &a, const Perf &b) {
            if ((a.status == OK) != (b.status == OK)) return a.status == OK;
            return a.status == OK && a.time < b.time;
        });
    return out;
}

int report(const std::vector<Perf> &list, int requested, int *returned, void *perf) {
    if (requested <= 0 || !returned || !perf) return BAD_PARAM;
    int n = std::min(requested, int(list.size()));
    std::memcpy(perf, list.data(), size_t(n) * sizeof(Perf));
    *returned = n;
    return OK;
}

int heuristic(int kind, const Handle *h, const Tensor *x, const Filter *w, const ConvDesc *cd,
              const Tensor *y, int requested, int *returned, void *perf) {
    Geo g;
    if (int st = geometry(h, x, w, cd, y, &g)) return st;
    return report(perf_list(kind, g, cd->math, SIZE_MAX, false), requested, returned, perf);
}

// Find*AlgorithmEx: validates like a call, reports the ranking and poisons the output role (which
// cuDNN overwrites while timing), after checking every buffer the search would touch.
int find(int kind, Handle *h, const Tensor *xd, const void *x, const Filter *wd, const void *w,
         const ConvDesc *cd, const Tensor *yd, const void *y, int requested, int *returned, void *perf,
         void *ws, size_t ws_size) {
    Geo g;
    if (int st = geometry(h, xd, wd, cd, yd, &g)) return st;
    if (int st = check_ptrs(g, x, w, y)) return st;
    if (ws_size > 0 && !ws) return BAD_PARAM;
    if (fakegpu::failed()) return EXEC_FAILED;
    if (int st = report(perf_list(kind, g, cd->math, ws_size, true), requested, returned, perf))
        return st;
    uint64_t px = reinterpret_cast<uint64_t>(x), pw = reinterpret_cast<uint64_t>(w);
    uint64_t py = reinterpret_cast<uint64_t>(y), pws = reinterpret_cast<uint64_t>(ws);
    fakegpu::enqueue(h->stream, NAMES[kind][4], [g, kind, px, pw, py, pws, ws_size] {
        size_t e = g.esz();
        const char *const *nm = NAMES[kind];
        if (!fakegpu::check_device(px, g.x.extent(e), nm[0]) ||
            !fakegpu::check_device(pw, g.w.extent(e), nm[1]) ||
            !fakegpu::check_device(py, g.y.extent(e), nm[2]) ||
            (ws_size > 0 && !fakegpu::check_device(pws, ws_size, nm[3])))
            return;
        uint64_t base = kind == FWD ? py : kind == BWD_DATA ? px : pw;
        const Operand &o = kind == FWD ? g.y : kind == BWD_DATA ? g.x : g.w;
        for (int a = 0; a < o.d[0]; a++)
            for (int b = 0; b < o.d[1]; b++)
                for (int c = 0; c < o.d[2]; c++)
                    for (int d = 0; d < o.d[3]; d++)
                        std::memset(reinterpret_cast<void *>(
                                        base + (a * o.s[0] + b * o.s[1] + c * o.s[2] + d * o.s[3]) * e),
                                    0xFF, e);
    });
    return OK;
}

int workspace_size(int kind, const Handle *h, const Tensor *x, const Filter *w, const ConvDesc *cd,
                   const Tensor *y, int algo, size_t *size) {
    Geo g;
    if (int st = geometry(h, x, w, cd, y, &g)) return st;
    if (!size) return BAD_PARAM;
    if (int st = algo_status(kind, algo)) return st;
    *size = workspace_need(g, algo);
    return OK;
}

int max_count(const Handle *h, int *count, int kind) {
    if (!live(h, OBJ_HANDLE) || !count) return BAD_PARAM;
    *count = 2 * ALGO_COUNT[kind]; // every algorithm, once per math type
    return OK;
}

// ------------------------------------------------------------------------------------------------
// Descriptor setters

bool known_type(int dt) { return dt >= 0 && dt <= 21; }
bool our_type(int dt) { return dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_HALF; }


int set_desc(Desc *t, int kind, int dt, const int *dims, const long long *strides) {
    if (!live(t, kind) || !known_type(dt)) return BAD_PARAM;
    long long numel = 1;
    for (int i = 0; i < 4; i++) {
        if (dims[i] <= 0 || strides[i] <= 0) return BAD_PARAM;
        if (strides[i] > INT_MAX) return NOT_SUPPORTED;
        numel *= dims[i];
        if (numel > INT_MAX) return NOT_SUPPORTED; // cuDNN refuses 2^31 elements or more
    }
    if (!our_type(dt)) return NOT_SUPPORTED;
    t->set = true;
    t->dt = dt;
    for (int i = 0; i < 4; i++) t->o.d[i] = dims[i], t->o.s[i] = strides[i];
    return OK;
}

// Strides of a packed 4-d operand in `fmt` (NCHW/KCRS or NHWC/KRSC); non-positive dims give 1s.
void packed(int fmt, const int *d, long long *st) {
    long long c = std::max(d[1], 1), h = std::max(d[2], 1), w = std::max(d[3], 1);
    if (fmt == FMT_NHWC) st[0] = h * w * c, st[1] = 1, st[2] = w * c, st[3] = c;
    else st[0] = c * h * w, st[1] = h * w, st[2] = w, st[3] = 1;
}

// A packed 4-d tensor or filter descriptor in `format` (NCHW/KCRS or NHWC/KRSC).
int set_packed(Desc *t, int kind, int dt, int format, int a, int b, int c, int d) {
    if (format == FMT_NCHW_VECT_C) return NOT_SUPPORTED;
    if (format != FMT_NCHW && format != FMT_NHWC) return BAD_PARAM;
    int dims[4] = {a, b, c, d};
    long long st[4];
    packed(format, dims, st);
    return set_desc(t, kind, dt, dims, st);
}

int set_conv(ConvDesc *cd, const int *pad, const int *stride, const int *dil, int mode, int compute) {
    if (!live(cd, OBJ_CONV)) return BAD_PARAM;
    for (int i = 0; i < 2; i++)
        if (pad[i] < 0 || stride[i] <= 0 || dil[i] <= 0) return BAD_PARAM;
    if ((mode != MODE_CONVOLUTION && mode != MODE_CROSS_CORRELATION) || !known_type(compute))
        return BAD_PARAM;
    if (!our_type(compute)) return NOT_SUPPORTED;
    for (int i = 0; i < 2; i++) cd->pad[i] = pad[i], cd->stride[i] = stride[i], cd->dil[i] = dil[i];
    cd->mode = mode;
    cd->compute = compute;
    cd->set = true;
    return OK;
}

} // namespace

// ------------------------------------------------------------------------------------------------
// Library, handle

FAKEGPU_API size_t cudnnGetVersion() { return 90201; }

FAKEGPU_API const char *cudnnGetErrorString(int status) {
    switch (status) {
    case OK: return "CUDNN_STATUS_SUCCESS";
    case BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case ALLOC_FAILED: return "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED";
    case EXEC_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "CUDNN_STATUS_UNKNOWN (fake GPU)";
    }
}

FAKEGPU_API int cudnnCreate(Handle **out) {
    auto g = fakegpu::guard();
    return create(out, OBJ_HANDLE);
}
FAKEGPU_API int cudnnDestroy(Handle *h) {
    auto g = fakegpu::guard();
    return destroy(h, OBJ_HANDLE, false);
}
FAKEGPU_API int cudnnSetStream(Handle *h, void *stream) {
    auto g = fakegpu::guard();
    if (!live(h, OBJ_HANDLE)) return BAD_PARAM;
    h->stream = stream;
    return OK;
}
FAKEGPU_API int cudnnGetStream(Handle *h, void **stream) {
    auto g = fakegpu::guard();
    if (!live(h, OBJ_HANDLE) || !stream) return BAD_PARAM;
    *stream = h->stream;
    return OK;
}

// ------------------------------------------------------------------------------------------------
// Descriptors

FAKEGPU_API int cudnnCreateTensorDescriptor(Tensor **out) {
    auto g = fakegpu::guard();
    return create(out, OBJ_TENSOR);
}
FAKEGPU_API int cudnnDestroyTensorDescriptor(Tensor *t) {
    auto g = fakegpu::guard();
    return destroy(t, OBJ_TENSOR, true);
}
FAKEGPU_API int cudnnSetTensor4dDescriptor(Tensor *t, int format, int dt, int n, int c, int h, int w) {
    auto g = fakegpu::guard();
    return set_packed(t, OBJ_TENSOR, dt, format, n, c, h, w);
}
FAKEGPU_API int cudnnSetTensor4dDescriptorEx(Tensor *t, int dt, int n, int c, int h, int w, int ns,
                                             int cs, int hs, int ws) {
    auto g = fakegpu::guard();
    int dims[4] = {n, c, h, w};
    long long st[4] = {ns, cs, hs, ws};
    return set_desc(t, OBJ_TENSOR, dt, dims, st);
}

FAKEGPU_API int cudnnCreateFilterDescriptor(Filter **out) {
    auto g = fakegpu::guard();
    return create(out, OBJ_FILTER);
}
FAKEGPU_API int cudnnDestroyFilterDescriptor(Filter *f) {
    auto g = fakegpu::guard();
    return destroy(f, OBJ_FILTER, true);
}
FAKEGPU_API int cudnnSetFilter4dDescriptor(Filter *f, int dt, int format, int k, int c, int h, int w) {
    auto g = fakegpu::guard();
    return set_packed(f, OBJ_FILTER, dt, format, k, c, h, w);
}

FAKEGPU_API int cudnnCreateConvolutionDescriptor(ConvDesc **out) {
    auto g = fakegpu::guard();
    return create(out, OBJ_CONV);
}
FAKEGPU_API int cudnnDestroyConvolutionDescriptor(ConvDesc *cd) {
    auto g = fakegpu::guard();
    return destroy(cd, OBJ_CONV, true);
}
FAKEGPU_API int cudnnSetConvolution2dDescriptor(ConvDesc *cd, int ph, int pw, int u, int v, int dh,
                                                int dw, int mode, int compute) {
    auto g = fakegpu::guard();
    int pad[2] = {ph, pw}, stride[2] = {u, v}, dil[2] = {dh, dw};
    return set_conv(cd, pad, stride, dil, mode, compute);
}
FAKEGPU_API int cudnnSetConvolutionGroupCount(ConvDesc *cd, int groups) {
    auto g = fakegpu::guard();
    if (!live(cd, OBJ_CONV) || groups < 1) return BAD_PARAM;
    cd->groups = groups;
    return OK;
}
FAKEGPU_API int cudnnSetConvolutionMathType(ConvDesc *cd, int math) {
    auto g = fakegpu::guard();
    if (!live(cd, OBJ_CONV) || math < MATH_DEFAULT || math > MATH_FMA) return BAD_PARAM;
    cd->math = math;
    return OK;
}

FAKEGPU_API int cudnnGetConvolution2dForwardOutputDim(ConvDesc *cd, Tensor *x, Filter *w, int *n,
                                                      int *c, int *h, int *wo) {
    auto g = fakegpu::guard();
    if (!n || !c || !h || !wo) return BAD_PARAM;
    int od[4];
    if (int st = output_dims(x, w, cd, od)) return st;
    *n = od[0], *c = od[1], *h = od[2], *wo = od[3];
    return OK;
}

// ------------------------------------------------------------------------------------------------
// Algorithm choice

FAKEGPU_API int cudnnGetConvolutionForwardAlgorithmMaxCount(Handle *h, int *count) {
    auto g = fakegpu::guard();
    return max_count(h, count, FWD);
}
FAKEGPU_API int cudnnGetConvolutionBackwardDataAlgorithmMaxCount(Handle *h, int *count) {
    auto g = fakegpu::guard();
    return max_count(h, count, BWD_DATA);
}
FAKEGPU_API int cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(Handle *h, int *count) {
    auto g = fakegpu::guard();
    return max_count(h, count, BWD_FILTER);
}

FAKEGPU_API int cudnnGetConvolutionForwardAlgorithm_v7(Handle *h, Tensor *x, Filter *w, ConvDesc *cd,
                                                       Tensor *y, int requested, int *returned,
                                                       Perf *perf) {
    auto g = fakegpu::guard();
    return heuristic(FWD, h, x, w, cd, y, requested, returned, perf);
}
FAKEGPU_API int cudnnGetConvolutionBackwardDataAlgorithm_v7(Handle *h, Filter *w, Tensor *dy,
                                                            ConvDesc *cd, Tensor *dx, int requested,
                                                            int *returned, Perf *perf) {
    auto g = fakegpu::guard();
    return heuristic(BWD_DATA, h, dx, w, cd, dy, requested, returned, perf);
}
FAKEGPU_API int cudnnGetConvolutionBackwardFilterAlgorithm_v7(Handle *h, Tensor *x, Tensor *dy,
                                                              ConvDesc *cd, Filter *dw, int requested,
                                                              int *returned, Perf *perf) {
    auto g = fakegpu::guard();
    return heuristic(BWD_FILTER, h, x, dw, cd, dy, requested, returned, perf);
}

FAKEGPU_API int cudnnFindConvolutionForwardAlgorithmEx(Handle *h, Tensor *xd, const void *x, Filter *wd,
                                                       const void *w, ConvDesc *cd, Tensor *yd, void *y,
                                                       int requested, int *returned, Perf *perf,
                                                       void *ws, size_t ws_size) {
    auto g = fakegpu::guard();
    return find(FWD, h, xd, x, wd, w, cd, yd, y, requested, returned, perf, ws, ws_size);
}
FAKEGPU_API int cudnnFindConvolutionBackwardDataAlgorithmEx(Handle *h, Filter *wd, const void *w,
                                                            Tensor *dyd, const void *dy, ConvDesc *cd,
                                                            Tensor *dxd, void *dx, int requested,
                                                            int *returned, Perf *perf, void *ws,
                                                            size_t ws_size) {
    auto g = fakegpu::guard();
    return find(BWD_DATA, h, dxd, dx, wd, w, cd, dyd, dy, requested, returned, perf, ws, ws_size);
}
FAKEGPU_API int cudnnFindConvolutionBackwardFilterAlgorithmEx(Handle *h, Tensor *xd, const void *x,
                                                              Tensor *dyd, const void *dy, ConvDesc *cd,
                                                              Filter *dwd, void *dw, int requested,
                                                              int *returned, Perf *perf, void *ws,
                                                              size_t ws_size) {
    auto g = fakegpu::guard();
    return find(BWD_FILTER, h, xd, x, dwd, dw, cd, dyd, dy, requested, returned, perf, ws, ws_size);
}

FAKEGPU_API int cudnnGetConvolutionForwardWorkspaceSize(Handle *h, Tensor *x, Filter *w, ConvDesc *cd,
                                                        Tensor *y, int algo, size_t *size) {
    auto g = fakegpu::guard();
    return workspace_size(FWD, h, x, w, cd, y, algo, size);
}
FAKEGPU_API int cudnnGetConvolutionBackwardDataWorkspaceSize(Handle *h, Filter *w, Tensor *dy,
                                                             ConvDesc *cd, Tensor *dx, int algo,
                                                             size_t *size) {
    auto g = fakegpu::guard();
    return workspace_size(BWD_DATA, h, dx, w, cd, dy, algo, size);
}
FAKEGPU_API int cudnnGetConvolutionBackwardFilterWorkspaceSize(Handle *h, Tensor *x, Tensor *dy,
                                                               ConvDesc *cd, Filter *dw, int algo,
                                                               size_t *size) {
    auto g = fakegpu::guard();
    return workspace_size(BWD_FILTER, h, x, dw, cd, dy, algo, size);
}

// ------------------------------------------------------------------------------------------------
// Convolutions

FAKEGPU_API int cudnnConvolutionForward(Handle *h, const void *alpha, Tensor *xd, const void *x,
                                        Filter *wd, const void *w, ConvDesc *cd, int algo, void *ws,
                                        size_t ws_size, const void *beta, Tensor *yd, void *y) {
    auto g = fakegpu::guard();
    return convolve(FWD, h, alpha, xd, x, wd, w, cd, algo, ws, ws_size, beta, yd, y);
}
FAKEGPU_API int cudnnConvolutionBackwardData(Handle *h, const void *alpha, Filter *wd, const void *w,
                                             Tensor *dyd, const void *dy, ConvDesc *cd, int algo,
                                             void *ws, size_t ws_size, const void *beta, Tensor *dxd,
                                             void *dx) {
    auto g = fakegpu::guard();
    return convolve(BWD_DATA, h, alpha, dxd, dx, wd, w, cd, algo, ws, ws_size, beta, dyd, dy);
}
FAKEGPU_API int cudnnConvolutionBackwardFilter(Handle *h, const void *alpha, Tensor *xd, const void *x,
                                               Tensor *dyd, const void *dy, ConvDesc *cd, int algo,
                                               void *ws, size_t ws_size, const void *beta, Filter *dwd,
                                               void *dw) {
    auto g = fakegpu::guard();
    return convolve(BWD_FILTER, h, alpha, xd, x, dwd, dw, cd, algo, ws, ws_size, beta, dyd, dy);
}
