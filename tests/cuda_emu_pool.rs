#![cfg(feature = "cuda-emu")]
//! The pooling kernels (cuda/pool.cu) run in the CUDA emulator (`--features cuda-emu`) against the
//! CPU backend.
//!
//! Every launch is its launcher's (src/backend/cuda/pool.rs), from `engine::backend::kernel_abi` as
//! the launcher takes it: the calls built by `kernel_abi::pool` over the test buffers' addresses, the
//! `#[repr(C)]` PoolArgs descriptor and the grid shapes (`g.grid(n)` on a pretend GPU of 4 SMs, the
//! warp/block pick of the global average pool); the dtype of each buffer (the f32/f64 argmax; an f16
//! max-pool backward runs the f32 kernel on widened inputs, as `cuda::run` does for mixed dtypes).
//! Every launch is also repeated on a grid of ONE block so the grid-stride loops must cover everything
//! on their own, and the variant the launcher does not pick (the global average pool's other group)
//! is run too.
//!
//! Pooling runs in both layouts of `PoolArgs::channels_last`: a channels-last launch gets the NCHW
//! case's inputs and CPU references transposed to N-H-W-C storage and must match them bit for bit
//! (the argmax values unchanged: in-plane indices); the CPU backend's kernel structs with the same
//! channels-last geometry (their NCHW code between transposes) must give the same transposed
//! results, forward and backward. The global average pool's channels-last kernels (a thread per
//! column, in the NCHW CPU op's summation order) must match that op bit for bit as well.
//!
//! References: the CPU ops through the public API (max/avg pool with ceil mode and
//! count_include_pad, global average pool) and their autograd gradients of Σ y·dy; the argmax, which
//! the API does not expose, from the CPU backend's own `MaxPool2d` kernel.
//!
//! Invariants checked: outputs start as NaN and every buffer's guard zones are intact after each
//! launch; max/avg pooling (the CPU's summation order, gathers in the CPU scatter's order) bit for bit
//! (NaN matching NaN); the global average pool (another order) within a tolerance justified at its
//! use. Inputs are seeded random values; f16, f32 and f64 throughout.

use engine::backend::cpu::CpuStorage;
use engine::backend::cuda_emu::test_support::{
    assert_close, cpu_run, cpu_tensor, grid_1d, rounded, run_call, to_elems, KernelFloat, RowGroup,
    SM_COUNT,
};
use engine::backend::cuda_emu::Buf;
use engine::backend::kernel_abi::pool::{self, global_avg_pool_launch, PoolArgs};
use engine::backend::CpuKernel;
use engine::ops::pool::{
    AvgPool2d, AvgPool2dBackward, GlobalAvgPool, GlobalAvgPoolBackward, MaxPool2d,
    MaxPool2dBackward, PoolGeom,
};
use engine::{DType, Element, Pool2dParams};
use half::f16;

#[allow(dead_code)]
mod cuda_emu_exact;
use cuda_emu_exact::*;

// ------------------------------------------------------------------------------------------------
// Pooling (cuda/pool.cu, src/backend/cuda/pool.rs)

/// The launcher's `PoolArgs` descriptor (kernel_abi's).
fn pool_args(g: &PoolGeom, count_include_pad: bool) -> PoolArgs {
    PoolArgs::new("pool", g, count_include_pad).expect("a valid pooling geometry")
}

fn params(
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil: bool,
) -> Pool2dParams {
    Pool2dParams {
        kernel,
        stride,
        padding,
        ceil_mode: ceil,
    }
}

/// The storage order of the pooling tensors of a launch.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Nchw,
    ChannelsLast,
}

/// `v`, NCHW values of logical dims `[n, c, h, w]`, in `layout`'s storage order.
fn stored(v: &[f64], [n, c, h, w]: [usize; 4], layout: Layout) -> Vec<f64> {
    if layout == Layout::Nchw {
        return v.to_vec();
    }
    let mut out = vec![f64::NAN; v.len()];
    for img in 0..n {
        for ch in 0..c {
            for p in 0..h * w {
                out[(img * h * w + p) * c + ch] = v[(img * c + ch) * h * w + p];
            }
        }
    }
    out
}

/// The geometry of pooling `[n, c, h, w]` to `oh × ow` planes with `p`, stored per `layout`.
fn pool_geom(
    [n, c, h, w]: [usize; 4],
    (oh, ow): (usize, usize),
    p: Pool2dParams,
    layout: Layout,
) -> PoolGeom {
    PoolGeom {
        planes: n * c,
        channels: c,
        channels_last: layout == Layout::ChannelsLast,
        h,
        w,
        oh,
        ow,
        p,
    }
}

/// `values` as a CPU-backend buffer of T.
fn storage<T: KernelFloat>(values: &[f64]) -> CpuStorage {
    CpuStorage::from_vec(to_elems::<T>(values))
}

/// Checks the CPU backend's kernel structs against the references, each output bit for bit: the
/// kernel `k` on `inputs` (buffers of their dtypes) must give `want` (in `dtypes`).
#[track_caller]
fn cpu_kernel_exact<K: CpuKernel>(
    what: &str,
    k: &K,
    inputs: Vec<CpuStorage>,
    want: &[(&[f64], DType)],
) {
    let dtypes: Vec<DType> = want.iter().map(|&(_, d)| d).collect();
    let got = cpu_run(k, inputs, &dtypes);
    for (i, (g, &(w, _))) in got.iter().zip(want).enumerate() {
        assert_exact(&format!("{what} CPU kernel output {i}"), g, w);
    }
}

/// The CPU backend's argmax (the saved index the op hands to its backward): its `MaxPool2d` kernel
/// in the compute type the CPU runner uses (f64 for f64, else f32 from the rounded input).
fn cpu_argmax(geom: PoolGeom, x: &[f64], dt: DType) -> Vec<f64> {
    if dt == DType::F64 {
        MaxPool2d(geom).run::<f64>(&[x]).unwrap().swap_remove(1)
    } else {
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let idx = MaxPool2d(geom).run::<f32>(&[&x32]).unwrap().swap_remove(1);
        idx.into_iter().map(|v| v as f64).collect()
    }
}

/// What the inputs of a pooling case look like.
#[derive(Clone, Copy, PartialEq)]
enum Fill {
    Random,
    /// Values on a coarse grid (many ties inside windows).
    Ties,
    /// Random with NaNs and −∞ sprinkled in (max pooling only).
    NanInf,
}

fn pool_input<T: KernelFloat>(numel: usize, seed: u64, fill: Fill) -> Vec<f64> {
    let mut x = randn::<T>(numel, seed);
    match fill {
        Fill::Random => {}
        Fill::Ties => x.iter_mut().for_each(|v| *v = (*v * 2.0).round() / 2.0),
        Fill::NanInf => {
            for (i, v) in x.iter_mut().enumerate() {
                if i % 17 == 5 {
                    *v = f64::NAN;
                } else if i % 13 == 3 {
                    *v = f64::NEG_INFINITY;
                }
            }
        }
    }
    x
}

/// Max pooling forward and backward of one geometry, for storage type T, with the kernels' tensors
/// stored per `layout` (references: the NCHW CPU op's, transposed).
fn max_pool_case<T: KernelFloat>(
    dims: [usize; 4],
    p: Pool2dParams,
    seed: u64,
    fill: Fill,
    layout: Layout,
) {
    let what = format!("max_pool2d_{} {dims:?} {p:?} {layout:?}", T::SUF);
    let dt = T::DTYPE;
    let [n, c, h, w] = dims;
    let x_nchw = pool_input::<T>(n * c * h * w, seed, fill);
    let x = cpu_tensor::<T>(&x_nchw, &dims).var();
    let y = x.max_pool2d(p).unwrap();
    let (oh, ow) = (y.dims()[2], y.dims()[3]);
    let out_dims = [n, c, oh, ow];
    let (n_in, n_out) = (n * c * h * w, n * c * oh * ow);
    let dy_nchw = randn::<T>(n_out, seed + 1);
    let dx_nchw = grad(&y, &x, &dy_nchw);
    let idx_nchw = cpu_argmax(pool_geom(dims, (oh, ow), p, Layout::Nchw), &x_nchw, dt);
    let [xv, dyv, dx_cpu] = [(&x_nchw, dims), (&dy_nchw, out_dims), (&dx_nchw, dims)]
        .map(|(v, d)| stored(v, d, layout));
    let y_cpu = stored(&y.to_vec_f64().unwrap(), out_dims, layout);
    let idx_cpu = stored(&idx_nchw, out_dims, layout);
    let geom = pool_geom(dims, (oh, ow), p, layout);
    let acc = T::Acc::DTYPE;
    cpu_kernel_exact(
        &format!("{what} forward"),
        &MaxPool2d(geom),
        vec![storage::<T>(&xv)],
        &[(&y_cpu, dt), (&idx_cpu, acc)],
    );
    cpu_kernel_exact(
        &format!("{what} backward"),
        &MaxPool2dBackward(geom),
        vec![storage::<T::Acc>(&idx_cpu), storage::<T>(&dyv)],
        &[(&dx_cpu, dt)],
    );
    let args = pool_args(&geom, false);

    for (gr, gname) in grids(grid_1d(n_out)) {
        let mut xb = Buf::<T>::from_f64s(&xv);
        let mut yb = Buf::<T>::nan(n_out);
        let mut ib = Buf::<T::Acc>::nan(n_out);
        let call = pool::max_pool2d(dt, &args, xb.ptr(), yb.ptr(), ib.ptr());
        run_call(&call, gr);
        xb.check_guards("x").unwrap();
        assert_exact(
            &format!("{what} y ({gname})"),
            &yb.checked_f64s("y"),
            &y_cpu,
        );
        assert_exact(
            &format!("{what} argmax ({gname})"),
            &ib.checked_f64s("idx"),
            &idx_cpu,
        );
    }

    for (gr, gname) in grids(grid_1d(n_in)) {
        // The launcher's path: the op hands over the f32/f64 argmax and dy in T; for f16 the dtypes
        // differ, so `cuda::run` widens both to f32, runs the f32 kernel and casts dx back to f16.
        let dx = if dt == DType::F16 {
            let mut ib = Buf::<f32>::from_f64s(&idx_cpu);
            let mut dyb = Buf::<f32>::from_f64s(&dyv);
            let mut dxb = Buf::<f32>::nan(n_in);
            let call = pool::max_pool2d_backward(DType::F32, &args, ib.ptr(), dyb.ptr(), dxb.ptr());
            run_call(&call, gr);
            ib.check_guards("idx").unwrap();
            dyb.check_guards("dy").unwrap();
            let dx = dxb.checked_f64s("dx");
            rounded::<f16>(dx)
        } else {
            let mut ib = Buf::<T>::from_f64s(&idx_cpu);
            let mut dyb = Buf::<T>::from_f64s(&dyv);
            let mut dxb = Buf::<T>::nan(n_in);
            let call = pool::max_pool2d_backward(dt, &args, ib.ptr(), dyb.ptr(), dxb.ptr());
            run_call(&call, gr);
            ib.check_guards("idx").unwrap();
            dyb.check_guards("dy").unwrap();
            dxb.checked_f64s("dx")
        };
        assert_exact(&format!("{what} dx ({gname})"), &dx, &dx_cpu);

        if dt == DType::F16 {
            // max_pool2d_bwd_f16 itself (argmax in f16: exact for planes of at most 2048 cells).
            assert!(h * w <= 2048, "{what}: f16 argmax would be inexact");
            let mut ib = Buf::<f16>::from_f64s(&idx_cpu);
            let mut dyb = Buf::<f16>::from_f64s(&dyv);
            let mut dxb = Buf::<f16>::nan(n_in);
            let call = pool::max_pool2d_backward(DType::F16, &args, ib.ptr(), dyb.ptr(), dxb.ptr());
            run_call(&call, gr);
            ib.check_guards("idx").unwrap();
            dyb.check_guards("dy").unwrap();
            assert_exact(
                &format!("{what} dx f16 kernel ({gname})"),
                &dxb.checked_f64s("dx"),
                &dx_cpu,
            );
        }
    }
}

/// Average pooling forward and backward of one geometry, both divisor modes, for storage type T,
/// with the kernels' tensors stored per `layout` (references: the NCHW CPU op's, transposed).
fn avg_pool_case<T: KernelFloat>(dims: [usize; 4], p: Pool2dParams, seed: u64, layout: Layout) {
    let [n, c, h, w] = dims;
    let x_nchw = randn::<T>(n * c * h * w, seed);
    for cip in [false, true] {
        let what = format!(
            "avg_pool2d_{} {dims:?} {p:?} count_include_pad {cip} {layout:?}",
            T::SUF
        );
        let x = cpu_tensor::<T>(&x_nchw, &dims).var();
        let y = x.avg_pool2d(p, cip).unwrap();
        let (oh, ow) = (y.dims()[2], y.dims()[3]);
        let out_dims = [n, c, oh, ow];
        let dy_nchw = randn::<T>(n * c * oh * ow, seed + 7);
        let dx_nchw = grad(&y, &x, &dy_nchw);
        let [xv, y_cpu, dyv, dx_cpu] = [
            (&x_nchw, dims),
            (&y.to_vec_f64().unwrap(), out_dims),
            (&dy_nchw, out_dims),
            (&dx_nchw, dims),
        ]
        .map(|(v, d)| stored(v, d, layout));
        let avg = AvgPool2d {
            geom: pool_geom(dims, (oh, ow), p, layout),
            count_include_pad: cip,
        };
        let args = pool_args(&avg.geom, cip);
        cpu_kernel_exact(
            &format!("{what} forward"),
            &avg,
            vec![storage::<T>(&xv)],
            &[(&y_cpu, T::DTYPE)],
        );
        let bwd = AvgPool2dBackward(avg);
        cpu_kernel_exact(
            &format!("{what} backward"),
            &bwd,
            vec![storage::<T>(&dyv)],
            &[(&dx_cpu, T::DTYPE)],
        );
        // Same summation order and divisor as the CPU (f16 computed in f32 like the CPU runner), one
        // rounding at the end: bit-identical.
        fwd_bwd_exact::<T>(
            &what,
            (&xv, &y_cpu),
            (&dyv, &dx_cpu),
            &|x, y| pool::avg_pool2d(T::DTYPE, &args, x, y),
            &|dy, dx| pool::avg_pool2d_backward(T::DTYPE, &args, dy, dx),
        );
    }
}

/// (dims, kernel, stride, padding, ceil_mode, fill of the max-pool input).
type PoolCase = (
    [usize; 4],
    (usize, usize),
    (usize, usize),
    (usize, usize),
    bool,
    Fill,
);

const POOL_CASES: &[PoolCase] = &[
    // 3×3 s2 p1 ceil on 10×11: the last row window starts in the input and runs past the padding.
    ([2, 3, 10, 11], (3, 3), (2, 2), (1, 1), true, Fill::Random),
    // Non-square kernel and stride, floor mode; NaNs and −∞ in the max-pool input.
    ([1, 4, 7, 10], (2, 3), (1, 2), (1, 1), false, Fill::NanInf),
    // Stride > kernel (cells in no window), ceil mode dropping a window that would start in the
    // padding (h: 5 + 1), ties.
    ([2, 2, 5, 8], (2, 2), (3, 3), (1, 0), true, Fill::Ties),
    // Non-square everything, ceil windows past the padding, odd sizes.
    ([1, 3, 12, 9], (3, 2), (2, 3), (1, 1), true, Fill::Random),
    // Kernel 4 s4 p2 ceil: padding equal to half the kernel, a dropped window in h.
    ([1, 2, 6, 7], (4, 4), (4, 4), (2, 2), true, Fill::Ties),
    // Overlapping windows over a bigger batch: 3840 outputs, 15 blocks.
    ([4, 4, 16, 15], (3, 3), (1, 1), (1, 1), false, Fill::Random),
];

fn pool_cases<T: KernelFloat>() {
    for (i, &(dims, k, s, p, ceil, fill)) in POOL_CASES.iter().enumerate() {
        let prm = params(k, s, p, ceil);
        let seed = 100 + 10 * i as u64;
        for layout in [Layout::Nchw, Layout::ChannelsLast] {
            max_pool_case::<T>(dims, prm, seed, fill, layout);
            avg_pool_case::<T>(dims, prm, seed + 3, layout);
        }
    }
}

#[test]
fn max_avg_pool_f64() {
    pool_cases::<f64>();
}

#[test]
fn max_avg_pool_f32() {
    pool_cases::<f32>();
}

#[test]
fn max_avg_pool_f16() {
    pool_cases::<f16>();
}

/// A channels-last descriptor needs whole images: `planes` a multiple of a positive `channels`
/// (the kernels divide by it).
#[test]
fn channels_last_pool_args_need_whole_images() {
    let p = params((2, 2), (2, 2), (0, 0), false);
    let geom = pool_geom([2, 3, 4, 4], (2, 2), p, Layout::ChannelsLast);
    assert_eq!(pool_args(&geom, false).channels, 3);
    assert_eq!(pool_args(&geom, false).channels_last, 1);
    for channels in [0, 4] {
        let bad = PoolGeom { channels, ..geom };
        assert!(
            PoolArgs::new("pool", &bad, false).is_err(),
            "{channels} channels"
        );
        // NCHW launches never read `channels`.
        let nchw = PoolGeom {
            channels_last: false,
            ..bad
        };
        assert_eq!(pool_args(&nchw, false).channels_last, 0);
    }
}

/// Global average pool forward (both group variants) and backward for storage type T.
fn global_avg_pool_cases<T: KernelFloat>() {
    let dt = T::DTYPE;
    // hw = 63 (warp), 1024 (the warp/block boundary), 1155 (block), 1; planes 10, 9, 3, 2.
    for (i, dims) in [[2, 5, 7, 9], [3, 3, 32, 32], [1, 3, 33, 35], [1, 2, 1, 1]]
        .into_iter()
        .enumerate()
    {
        let [n, c, h, w] = dims;
        let (planes, hw) = (n * c, h * w);
        let what = format!("global_avg_pool_{} {dims:?}", T::SUF);
        let xv = randn::<T>(planes * hw, 300 + i as u64);
        let x = cpu_tensor::<T>(&xv, &dims).var();
        let y = x.global_avg_pool2d().unwrap();
        let dyv = randn::<T>(planes, 400 + i as u64);
        let (y_cpu, dx_cpu) = (y.to_vec_f64().unwrap(), grad(&y, &x, &dyv));
        // Both sum in f64 (different orders: ~1e-16 relative), then round to T (f16 through f32 on
        // both sides): f64 results agree to ~1e-15; f32/f16 ones are equal or one ulp apart
        // (6e-8 / 1e-3 relative) when the f64 sums straddle a rounding boundary.
        let tol = match dt {
            DType::F64 => (1e-14, 1e-12),
            DType::F32 => (1e-7, 2e-7),
            DType::F16 => (1e-4, 1e-3),
        };
        let (picked, launch) = global_avg_pool_launch(planes, hw, SM_COUNT);
        assert_eq!(launch.grid(), picked.grid(planes));
        // The launcher's pick and grid first, then the other variant (valid for any hw) on the
        // grid the launcher would give it, then both on one block (grid-stride over planes).
        let other = if picked == RowGroup::Warp {
            RowGroup::Block
        } else {
            RowGroup::Warp
        };
        for variant in [picked, other] {
            for (gr, gname) in grids(variant.grid(planes)) {
                let mut xb = Buf::<T>::from_f64s(&xv);
                let mut yb = Buf::<T>::nan(planes);
                let call = pool::global_avg_pool(variant, dt, planes, hw, xb.ptr(), yb.ptr());
                run_call(&call, gr);
                xb.check_guards("x").unwrap();
                assert_close(
                    &format!("{what} {} y ({gname})", variant.name()),
                    &yb.checked_f64s("y"),
                    &y_cpu,
                    tol,
                );
            }
        }
        // Backward: dy · (T)(1/hw), exactly the CPU's product.
        let total = planes * hw;
        exact_on_both_grids::<T>(
            &format!("{what} dx"),
            grid_1d(total),
            &[&dyv],
            &dx_cpu,
            &|ins, dx| pool::global_avg_pool_backward(dt, total, hw, ins[0], dx),
        );
        // Channels-last: the kernels take N-H-W-C storage; the forward sums each column in the
        // spatial order of the NCHW CPU op, so y equals it bit for bit; dx is its transposed gradient.
        let (xs, dxs) = (
            stored(&xv, dims, Layout::ChannelsLast),
            stored(&dx_cpu, dims, Layout::ChannelsLast),
        );
        exact_on_both_grids::<T>(
            &format!("{what} channels-last y"),
            grid_1d(planes),
            &[&xs],
            &y_cpu,
            &|ins, y| pool::global_avg_pool_cl(dt, planes, hw, c, ins[0], y),
        );
        exact_on_both_grids::<T>(
            &format!("{what} channels-last dx"),
            grid_1d(total),
            &[&dyv],
            &dxs,
            &|ins, dx| pool::global_avg_pool_backward_cl(dt, total, hw, c, ins[0], dx),
        );
        // The CPU backend's kernel structs on channels-last storage give the same.
        let cl = Some(c);
        cpu_kernel_exact(
            &format!("{what} channels-last y"),
            &GlobalAvgPool {
                planes,
                hw,
                channels_last: cl,
            },
            vec![storage::<T>(&xs)],
            &[(&y_cpu, dt)],
        );
        cpu_kernel_exact(
            &format!("{what} channels-last dx"),
            &GlobalAvgPoolBackward {
                planes,
                hw,
                channels_last: cl,
            },
            vec![storage::<T>(&dyv)],
            &[(&dxs, dt)],
        );
    }
}

#[test]
fn global_avg_pool_all_dtypes() {
    global_avg_pool_cases::<f64>();
    global_avg_pool_cases::<f32>();
    global_avg_pool_cases::<f16>();
}

/// Every kernel of the family exists in the emulator library.
#[test]
fn family_kernels_present() {
    assert_kernels_present(
        &[
            "max_pool2d",
            "max_pool2d_bwd",
            "avg_pool2d",
            "avg_pool2d_bwd",
            "global_avg_pool_warp",
            "global_avg_pool_block",
            "global_avg_pool_bwd",
            "global_avg_pool_cl",
            "global_avg_pool_bwd_cl",
        ],
        &["f16", "f32", "f64"],
    );
}
