#![cfg(feature = "cuda-emu")]
//! Mixup's kernel (cuda/mixup.cu) in the CUDA emulator (`--features cuda-emu`) against the CPU
//! backend's `Mixup` kernel (the op `Tensor::mixup` on the CPU).
//!
//! The launch is the launcher's (src/backend/cuda/mixup.rs): the call built by `kernel_abi::mixup`
//! over the test buffers' addresses, the permutation as an i64 table, the grid `g.grid(n·(per + k))`
//! on a pretend GPU of 4 SMs — and again on ONE block, so the grid-stride loop must cover the images
//! and the targets on its own.
//!
//! Invariants checked: outputs start as NaN and every buffer's guard zones are intact after the launch;
//! both outputs equal the CPU's bit for bit (the kernel rounds l·a, r·b and their sum separately, as
//! the CPU does), in f16, f32 and f64, on seeded random inputs, with batches whose image part alone
//! exceeds the grid (the loop wraps) and a batch of one.

use engine::backend::cuda_emu::test_support::{
    cpu_tensor, grid_1d, rounded, run_call, seeded_randn, KernelFloat, ONE_BLOCK,
};
use engine::backend::cuda_emu::Buf;
use engine::backend::kernel_abi::mixup;
use half::f16;
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn case<T: KernelFloat>(n: usize, image: [usize; 3], k: usize, lambda: f64, seed: u64) {
    let per: usize = image.iter().product();
    let what = format!("mixup_{} n {n} per {per} k {k} λ {lambda}", T::SUF);
    let xv = rounded::<T>(seeded_randn(n * per, seed));
    let tv = rounded::<T>(seeded_randn(n * k, seed + 1).iter().map(|v| v.abs()));
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed + 2));
    // The CPU reference through the op.
    let x = cpu_tensor::<T>(&xv, &[n, image[0], image[1], image[2]]);
    let t = cpu_tensor::<T>(&tv, &[n, k]);
    let (xw, tw) = x.mixup(&t, lambda, &perm).unwrap();
    let (xw, tw) = (xw.to_vec_f64().unwrap(), tw.to_vec_f64().unwrap());
    for (grid, gname) in [
        (grid_1d(n * (per + k)), "launcher grid"),
        (ONE_BLOCK, "1 block"),
    ] {
        let mut perm_buf =
            Buf::<i64>::from_slice(&perm.iter().map(|&p| p as i64).collect::<Vec<_>>());
        let (mut xb, mut tb) = (Buf::<T>::from_f64s(&xv), Buf::<T>::from_f64s(&tv));
        let (mut xo, mut to) = (Buf::<T>::nan(n * per), Buf::<T>::nan(n * k));
        let call = mixup::mixup(
            T::DTYPE,
            (n, per, k),
            lambda,
            perm_buf.ptr(),
            xb.ptr(),
            tb.ptr(),
            xo.ptr(),
            to.ptr(),
        );
        run_call(&call, grid);
        for (b, name) in [(&xb, "x"), (&tb, "t")] {
            b.check_guards(&format!("{what}: {name}")).unwrap();
        }
        perm_buf.check_guards(&format!("{what}: perm")).unwrap();
        for (got, want, name) in [
            (xo.checked_f64s(&what), &xw, "images"),
            (to.checked_f64s(&what), &tw, "targets"),
        ] {
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits(),
                    "{what} ({gname}) {name}[{i}]: kernel {a:e}, CPU {b:e}"
                );
            }
        }
    }
}

fn cases<T: KernelFloat>() {
    case::<T>(8, [3, 9, 7], 10, 0.37, 1);
    case::<T>(5, [1, 40, 41], 3, 0.9, 2); // images alone exceed the 4-SM grid
    case::<T>(1, [2, 3, 3], 4, 0.5, 3); // the permutation of one row
    case::<T>(6, [4, 2, 2], 1000, 0.02, 4); // targets larger than the images
}

#[test]
fn mixup_matches_the_cpu_bit_for_bit() {
    cases::<f64>();
    cases::<f32>();
    cases::<f16>();
}
