#![cfg(feature = "cuda-emu")]
//! The resizing, dropout and convolution-helper kernels (cuda/resize.cu, cuda/dropout.cu and the
//! non-cuDNN kernels of cuda/conv.cu) run in the CUDA emulator (`--features cuda-emu`) against the CPU
//! backend. (Pooling: tests/cuda_emu_pool.rs.)
//!
//! Every launch is its launcher's (src/backend/cuda/{resize,dropout}.rs and conv/launch.rs), from
//! `engine::backend::kernel_abi` as the launchers take them: the calls built by the same
//! `kernel_abi::{resize,dropout,conv}` functions over the test buffers' addresses, and the grid shapes
//! (`g.grid(n)` on a pretend GPU of 4 SMs, one block per channel for the bias gradient). Every launch
//! is also repeated on a grid of ONE block so the grid-stride loops must cover everything on their own.
//!
//! References: the CPU ops through the public API (nearest upsampling, reflection/zero padding,
//! dropout, conv2d with bias, narrow + zero pad) and their autograd gradients of Σ y·dy.
//!
//! Invariants checked: outputs start as NaN and every buffer's guard zones are intact after each
//! launch; kernels documented as bit-identical to the CPU (element moves, gathers in the CPU scatter's
//! order, dropout) are compared bit for bit (NaN matching NaN); the bias gradient (another summation
//! order) within a tolerance justified at its use. Inputs are seeded random values; f16, f32 and f64
//! throughout.

use engine::backend::cuda_emu::test_support::{
    assert_close, cpu_tensor, grid_1d, run_call, KernelFloat, SM_COUNT,
};
use engine::backend::cuda_emu::Buf;
use engine::backend::kernel_abi::conv::{self, bias_grad_launch};
use engine::backend::kernel_abi::{dropout, resize};
use engine::ops::dropout::dropout_mask;
use engine::ops::resize::{Pad2d, PadMode, UpsampleNearest2d};
use engine::{Conv2dParams, DType, Device, Tensor};
use half::f16;

#[allow(dead_code)]
mod cuda_emu_exact;
use cuda_emu_exact::*;

// ------------------------------------------------------------------------------------------------
// Resizing (cuda/resize.cu, src/backend/cuda/resize.rs)

fn upsample_cases<T: KernelFloat>() {
    for (i, (dims, s)) in [
        ([2, 3, 5, 7], 2),
        ([1, 2, 4, 3], 3),
        ([3, 1, 6, 5], 1),
        ([1, 1, 1, 1], 4),
    ]
    .into_iter()
    .enumerate()
    {
        let [n, c, h, w] = dims;
        let what = format!("upsample_nearest2d_{} {dims:?} scale {s}", T::SUF);
        let xv = randn::<T>(n * c * h * w, 500 + i as u64);
        let x = cpu_tensor::<T>(&xv, &dims).var();
        let y = x.upsample_nearest2d(s).unwrap();
        let n_out = n * c * h * s * w * s;
        let dyv = randn::<T>(n_out, 600 + i as u64);
        let (y_cpu, dx_cpu) = (y.to_vec_f64().unwrap(), grad(&y, &x, &dyv));
        let k = UpsampleNearest2d {
            planes: n * c,
            h,
            w,
            scale: s,
        };
        // Forward moves elements; backward sums each s×s block in the CPU scatter's order (f16 in
        // f32): both bit-identical.
        fwd_bwd_exact::<T>(
            &what,
            (&xv, &y_cpu),
            (&dyv, &dx_cpu),
            &|x, y| resize::upsample_nearest2d(T::DTYPE, &k, x, y),
            &|dy, dx| resize::upsample_nearest2d_backward(T::DTYPE, &k, dy, dx),
        );
    }
}

#[test]
fn upsample_nearest_all_dtypes() {
    upsample_cases::<f64>();
    upsample_cases::<f32>();
    upsample_cases::<f16>();
}

/// (dims, (left, right, top, bottom), reflect).
type PadCase = ([usize; 4], (usize, usize, usize, usize), bool);

fn pad_cases<T: KernelFloat>() {
    let cases: [PadCase; 6] = [
        ([2, 3, 5, 4], (2, 1, 0, 3), true),
        // The largest reflection pads (dim − 1): every border cell reflected, interior cells are the
        // source of up to three outputs per dim.
        ([1, 2, 5, 4], (3, 3, 4, 4), true),
        ([2, 2, 9, 13], (1, 1, 1, 1), true),
        ([2, 2, 6, 7], (1, 3, 2, 0), false),
        ([1, 3, 3, 5], (4, 0, 0, 6), false),
        // A 2-wide dim padded by 1 on both sides (reflection's smallest non-trivial case).
        ([3, 1, 2, 2], (1, 1, 1, 1), true),
    ];
    for (i, (dims, pad, reflect)) in cases.into_iter().enumerate() {
        let [n, c, h, w] = dims;
        let (l, r, t, b) = pad;
        let what = format!("pad2d_{} {dims:?} {pad:?} reflect {reflect}", T::SUF);
        let xv = randn::<T>(n * c * h * w, 700 + i as u64);
        let x = cpu_tensor::<T>(&xv, &dims).var();
        let y = if reflect {
            x.reflection_pad2d(pad).unwrap()
        } else {
            x.zero_pad2d(pad).unwrap()
        };
        let n_out = n * c * (h + t + b) * (w + l + r);
        assert_eq!(y.numel(), n_out);
        let dyv = randn::<T>(n_out, 800 + i as u64);
        let (y_cpu, dx_cpu) = (y.to_vec_f64().unwrap(), grad(&y, &x, &dyv));
        let k = Pad2d {
            planes: n * c,
            h,
            w,
            pad,
            mode: if reflect {
                PadMode::Reflect
            } else {
                PadMode::Zero
            },
        };
        // Moves / gathers in the CPU scatter's order: bit-identical.
        fwd_bwd_exact::<T>(
            &what,
            (&xv, &y_cpu),
            (&dyv, &dx_cpu),
            &|x, y| resize::pad2d(T::DTYPE, &k, x, y),
            &|dy, dx| resize::pad2d_backward(T::DTYPE, &k, dy, dx),
        );
    }
}

#[test]
fn pad2d_all_dtypes() {
    pad_cases::<f64>();
    pad_cases::<f32>();
    pad_cases::<f16>();
}

// ------------------------------------------------------------------------------------------------
// Dropout (cuda/dropout.cu, src/backend/cuda/dropout.rs)

fn dropout_cases<T: KernelFloat>() {
    for (i, (dims, p)) in [
        ([3, 7, 7, 7], 0.3),
        ([1, 1, 5, 3], 0.5),
        ([2, 4, 9, 11], 0.9),
    ]
    .into_iter()
    .enumerate()
    {
        let numel: usize = dims.iter().product();
        let seed = 900 + i as u64;
        let what = format!("mask_scale_{} {dims:?} p {p}", T::SUF);
        let xv = randn::<T>(numel, seed);
        let x = cpu_tensor::<T>(&xv, &dims).var();
        let y = x.dropout(p, seed, true).unwrap();
        let dyv = randn::<T>(numel, seed + 50);
        let (y_cpu, dx_cpu) = (y.to_vec_f64().unwrap(), grad(&y, &x, &dyv));
        // The mask the op draws for (seed, numel, p), uploaded in the tensor's dtype (0/1: exact).
        let mask = dropout_mask(numel, p, seed);
        assert!(
            mask.contains(&0.0) && mask.contains(&1.0),
            "{what}: trivial mask"
        );
        let scale = 1.0 / (1.0 - p);
        // Forward y = x·m·s and backward dx = dy·m·s are the same kernel; (x·m)·(T)s with each product
        // rounded, as the CPU: bit-identical.
        for (input, want, io) in [(&xv, &y_cpu, "y"), (&dyv, &dx_cpu, "dx")] {
            exact_on_both_grids::<T>(
                &format!("{what} {io}"),
                grid_1d(numel),
                &[input, &mask],
                want,
                &|ins, out| dropout::mask_scale(T::DTYPE, numel, scale, ins[0], ins[1], out),
            );
        }
    }
}

#[test]
fn dropout_mask_scale_all_dtypes() {
    dropout_cases::<f64>();
    dropout_cases::<f32>();
    dropout_cases::<f16>();
}

// ------------------------------------------------------------------------------------------------
// Convolution helpers (cuda/conv.cu, src/backend/cuda/conv/mod.rs)

/// `conv_fill_bias_*` (the bias part of a convolution's output) against the CPU's conv2d with zero
/// weights and that bias: y = 0 + bias exactly.
fn conv_fill_bias_cases<T: KernelFloat>() {
    let dt = T::DTYPE;
    // (x dims, cout, kernel, params)
    for (i, (xd, cout, k, prm)) in [
        (
            [2, 3, 7, 5],
            4,
            (3, 2),
            Conv2dParams {
                stride: (2, 1),
                padding: (1, 0),
                ..Default::default()
            },
        ),
        ([3, 2, 9, 11], 5, (1, 1), Conv2dParams::default()),
        ([1, 1, 4, 4], 1, (2, 2), Conv2dParams::new(1, 1)),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("conv_fill_bias_{} x {xd:?} cout {cout}", T::SUF);
        let x = cpu_tensor::<T>(&randn::<T>(xd.iter().product(), 1000 + i as u64), &xd);
        let wt = Tensor::zeros(vec![cout, xd[1], k.0, k.1], dt, Device::Cpu).unwrap();
        let bv = randn::<T>(cout, 1100 + i as u64);
        let b = cpu_tensor::<T>(&bv, &[cout]);
        let y = x.conv2d(&wt, Some(&b), prm).unwrap();
        let y_cpu = y.to_vec_f64().unwrap();
        let plane = y.dims()[2] * y.dims()[3];
        let total = y.numel();
        exact_on_both_grids::<T>(&what, grid_1d(total), &[&bv], &y_cpu, &|ins, y| {
            conv::fill_bias(dt, total, plane, cout, ins[0], y)
        });
    }
}

/// `conv_bias_grad_*` against the autograd bias gradient of the CPU's conv2d.
fn conv_bias_grad_cases<T: KernelFloat>() {
    let dt = T::DTYPE;
    // (x dims, cout, stride): n·plane from 20 (fewer than the 256 threads) to 3·143 = 429 (threads sum
    // two elements), channels 1 to 7.
    for (i, (xd, cout, s)) in [
        ([3, 2, 13, 11], 5, 1),
        ([1, 3, 4, 5], 7, 1),
        ([2, 1, 9, 10], 1, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("conv_bias_grad_{} x {xd:?} cout {cout}", T::SUF);
        let x = cpu_tensor::<T>(&randn::<T>(xd.iter().product(), 1200 + i as u64), &xd);
        let wt = cpu_tensor::<T>(
            &randn::<T>(cout * xd[1], 1300 + i as u64),
            &[cout, xd[1], 1, 1],
        );
        let b = cpu_tensor::<T>(&randn::<T>(cout, 1400 + i as u64), &[cout]).var();
        let y = x.conv2d(&wt, Some(&b), Conv2dParams::new(s, 0)).unwrap();
        let (n, plane) = (y.dims()[0], y.dims()[2] * y.dims()[3]);
        let dyv = randn::<T>(y.numel(), 1500 + i as u64);
        let db_cpu = grad(&y, &b, &dyv);
        // The kernel sums in Acc<T> in a strided + tree order, the CPU sequentially: f64 agrees to
        // ~1e-14 (sums of ≤ 429 unit normals, |db| ≲ 60); f32 differs by rounding noise,
        // ≲ 429 · 2^-24 · 60 ≈ 2e-3 in the worst case, ~1e-5 in practice; f16 (both sides in f32, one
        // final rounding) by at most one f16 ulp (2^-10 relative).
        let tol = match dt {
            DType::F64 => (1e-12, 1e-12),
            DType::F32 => (1e-4, 1e-5),
            DType::F16 => (1e-3, 2e-3),
        };
        for (gr, gname) in grids(bias_grad_launch(cout, SM_COUNT).grid()) {
            let mut dyb = Buf::<T>::from_f64s(&dyv);
            let mut db = Buf::<T>::nan(cout);
            run_call(
                &conv::bias_grad(dt, n, cout, plane, dyb.ptr(), db.ptr()),
                gr,
            );
            dyb.check_guards("dy").unwrap();
            assert_close(
                &format!("{what} ({gname})"),
                &db.checked_f64s("db"),
                &db_cpu,
                tol,
            );
        }
    }
}

/// `conv_window_<bits>` (crop and/or zero-pad planes, top-left aligned) against the CPU's narrow +
/// zero_pad2d, bit for bit (−0.0 and NaN in the source must move unchanged).
fn conv_window_cases<T: KernelFloat>() {
    let (n, c, hs, ws) = (2, 3, 5, 7);
    let mut src = randn::<T>(n * c * hs * ws, 1600);
    src[4] = -0.0;
    src[11] = f64::NAN;
    src[n * c * hs * ws - 1] = -0.0;
    let x = cpu_tensor::<T>(&src, &[n, c, hs, ws]);
    // Crop both, pad both, crop h / pad w, pad h / crop w, identity, one row/column.
    for (hd, wd) in [(3, 4), (8, 9), (3, 10), (6, 7), (5, 7), (1, 1)] {
        let what = format!("conv_window_{} ({hs}, {ws}) -> ({hd}, {wd})", T::BITS);
        let (hk, wk) = (hs.min(hd), ws.min(wd));
        let want = x
            .narrow(2, 0, hk)
            .unwrap()
            .narrow(3, 0, wk)
            .unwrap()
            .zero_pad2d((0, wd - wk, 0, hd - hk))
            .unwrap()
            .to_vec_f64()
            .unwrap();
        let total = n * c * hd * wd;
        // The kernel takes the dtype's bit width: the same pointers, read as u16/u32/u64.
        exact_on_both_grids::<T>(&what, grid_1d(total), &[&src], &want, &|ins, dst| {
            conv::window(T::DTYPE, n * c, (hs, ws), (hd, wd), ins[0], dst)
        });
    }
}

#[test]
fn conv_helpers_all_dtypes() {
    conv_fill_bias_cases::<f64>();
    conv_fill_bias_cases::<f32>();
    conv_fill_bias_cases::<f16>();
    conv_bias_grad_cases::<f64>();
    conv_bias_grad_cases::<f32>();
    conv_bias_grad_cases::<f16>();
    conv_window_cases::<f64>();
    conv_window_cases::<f32>();
    conv_window_cases::<f16>();
}

/// Every kernel of the family exists in the emulator library.
#[test]
fn family_kernels_present() {
    assert_kernels_present(
        &[
            "upsample_nearest2d",
            "upsample_nearest2d_bwd",
            "pad2d",
            "pad2d_bwd",
            "mask_scale",
            "conv_fill_bias",
            "conv_bias_grad",
        ],
        &["f16", "f32", "f64"],
    );
    assert_kernels_present(&["conv_window"], &["u16", "u32", "u64"]);
}
