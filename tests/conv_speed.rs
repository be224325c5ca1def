//! Hand-run CPU throughput check for conv2d / conv_transpose2d (ignored by default; release mode):
//! `cargo test --release --test conv_speed -- --ignored --nocapture`.
//! Times 3×3 256→256 at 14×14, batch 32: forward + backward-input + backward-weight, both through
//! the kernels directly and through autograd, reporting GFLOP/s with FLOPs = 3 · 2·N·Cout·Ho·Wo·Cin·kh·kw
//! (best-of wall time, and per CPU-second × threads since the machine may be shared), plus other
//! shapes. `CONV_TILE_ELEMS=n` overrides the tile budget for tuning.

use engine::backend::cpu::{run, CpuStorage};
use engine::ops::conv::{Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dForward, Conv2dGeometry};
use engine::{Conv2dParams, DType, Device, Tensor};
use std::time::Instant;

/// Process CPU time (user + system) in seconds, from /proc/self/stat (clock ticks of 1/100 s).
/// The machine is shared, so besides best-of wall time we report FLOPs per CPU-second × threads:
/// the throughput this code would have with the cores to itself.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn bench(name: &str, n: usize, cin: usize, cout: usize, hw: usize, k: usize, iters: usize) {
    let pad = k / 2;
    let geom = Conv2dGeometry {
        n,
        cin,
        h: hw,
        w: hw,
        cout,
        kh: k,
        kw: k,
        ho: hw,
        wo: hw,
        stride: (1, 1),
        padding: (pad, pad),
        dilation: (1, 1),
        groups: 1,
    };
    let flops = 3.0 * 2.0 * (n * cout * hw * hw * cin * k * k) as f64;
    let x = Tensor::randn(vec![n, cin, hw, hw], 0.0, 1.0, 1, DType::F32, Device::Cpu).unwrap();
    let w = Tensor::randn(vec![cout, cin, k, k], 0.0, 0.05, 2, DType::F32, Device::Cpu).unwrap();
    let dy = Tensor::randn(vec![n, cout, hw, hw], 0.0, 1.0, 3, DType::F32, Device::Cpu).unwrap();
    let xs = CpuStorage::F32(x.to_vec::<f32>().unwrap());
    let ws = CpuStorage::F32(w.to_vec::<f32>().unwrap());
    let dys = CpuStorage::F32(dy.to_vec::<f32>().unwrap());
    let f32s = [DType::F32];
    let kernels = || {
        let t = Instant::now();
        run(
            &Conv2dForward {
                geom,
                has_bias: false,
                channels_last: false,
            },
            &[&xs, &ws],
            &f32s,
        )
        .unwrap();
        let t1 = t.elapsed().as_secs_f64();
        run(
            &Conv2dBackwardInput {
                geom,
                has_bias: false,
                channels_last: false,
            },
            &[&dys, &ws],
            &f32s,
        )
        .unwrap();
        let t2 = t.elapsed().as_secs_f64();
        run(
            &Conv2dBackwardWeight {
                geom,
                channels_last: false,
            },
            &[&xs, &dys],
            &f32s,
        )
        .unwrap();
        let t3 = t.elapsed().as_secs_f64();
        (t1, t2 - t1, t3 - t2)
    };
    kernels();
    let (mut f, mut bi, mut bw, mut tot) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let c0 = cpu_seconds();
    for _ in 0..iters {
        let (a, b, c) = kernels();
        f = f.min(a);
        bi = bi.min(b);
        bw = bw.min(c);
        tot = tot.min(a + b + c);
    }
    let cpu = (cpu_seconds() - c0) / iters as f64;
    let per = flops / 3.0 / 1e9;
    let threads = rayon::current_num_threads() as f64;
    println!(
        "{name}: kernels (best of {iters}) fwd {:.1} / bwd-input {:.1} / bwd-weight {:.1} GFLOP/s; total {:.1} GFLOP/s ({:.1} ms); per CPU-second × {threads}: {:.1} GFLOP/s",
        per / f,
        per / bi,
        per / bw,
        3.0 * per / tot,
        tot * 1e3,
        3.0 * per / (cpu / threads)
    );
    let (xv, wv) = (x.var(), w.var());
    let step = || {
        let y = xv.conv2d(&wv, None, Conv2dParams::new(1, pad)).unwrap();
        let g = y.mul(&dy).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&xv).is_some() && g.get(&wv).is_some());
    };
    step();
    let mut best = f64::MAX;
    for _ in 0..iters {
        let t = Instant::now();
        step();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{name}: autograd fwd+bwd {:.1} GFLOP/s (best {:.1} ms, includes the loss ops)",
        flops / best / 1e9,
        best * 1e3
    );
}

/// conv_transpose2d k4 s2 p1 (pix2pix decoder) forward + backward through autograd.
fn bench_transpose(n: usize, cin: usize, cout: usize, hw: usize, iters: usize) {
    use engine::ConvTranspose2dParams;
    let x = Tensor::randn(vec![n, cin, hw, hw], 0.0, 1.0, 1, DType::F32, Device::Cpu)
        .unwrap()
        .var();
    let w = Tensor::randn(vec![cin, cout, 4, 4], 0.0, 0.05, 2, DType::F32, Device::Cpu)
        .unwrap()
        .var();
    let b = Tensor::randn(vec![cout], 0.0, 0.05, 3, DType::F32, Device::Cpu)
        .unwrap()
        .var();
    let dy = Tensor::randn(
        vec![n, cout, 2 * hw, 2 * hw],
        0.0,
        1.0,
        4,
        DType::F32,
        Device::Cpu,
    )
    .unwrap();
    let step = || {
        let y = x
            .conv_transpose2d(&w, Some(&b), ConvTranspose2dParams::new(2, 1))
            .unwrap();
        y.mul(&dy).unwrap().sum_all().unwrap().backward().unwrap();
    };
    step();
    let mut best = f64::MAX;
    for _ in 0..iters {
        let t = Instant::now();
        step();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let flops = 3.0 * 2.0 * (n * cin * cout * hw * hw * 16) as f64;
    println!(
        "conv_transpose2d k4 s2 p1 {cin}->{cout} {hw}x{hw} N={n}: autograd fwd+bwd {:.1} GFLOP/s (best {:.1} ms)",
        flops / best / 1e9,
        best * 1e3
    );
}

/// The bare gemm the forward does per image (32 × [256×2304]·[2304×196], batch-parallel), as a ceiling.
fn bare_gemm(iters: usize) {
    use engine::ops::matmul::Matmul;
    let (b, m, k, n) = (32, 256, 2304, 196);
    let a = CpuStorage::F32(vec![0.5; m * k]);
    let bm = CpuStorage::F32(vec![0.25; b * k * n]);
    // Matmul has no shared-lhs mode: pass the weight as a (batch-1) rhs of the transposed problem.
    let kern_t = Matmul {
        batch: b,
        m: n,
        k,
        n: m,
        trans_a: true,
        trans_b: true,
        b_shared: true,
    };
    run(&kern_t, &[&bm, &a], &[DType::F32]).unwrap();
    let mut s = f64::MAX;
    for _ in 0..iters {
        let t = Instant::now();
        run(&kern_t, &[&bm, &a], &[DType::F32]).unwrap();
        s = s.min(t.elapsed().as_secs_f64());
    }
    println!(
        "bare gemm 32×(256×2304·2304×196): {:.1} GFLOP/s",
        2.0 * (b * m * k * n) as f64 / s / 1e9
    );
}

#[test]
#[ignore]
fn conv_speed() {
    println!("rayon threads: {}", rayon::current_num_threads());
    if let Some(t) = std::env::var("CONV_TILE_ELEMS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        engine::ops::conv::TILE_ELEMS.store(t, std::sync::atomic::Ordering::Relaxed);
    }
    bare_gemm(10);
    bench("3x3 256->256 14x14 N=32", 32, 256, 256, 14, 3, 10);
    bench("3x3 256->256 14x14 N=1", 1, 256, 256, 14, 3, 20);
    bench("3x3 64->64 56x56 N=8", 8, 64, 64, 56, 3, 10);
    bench("1x1 256->256 14x14 N=32", 32, 256, 256, 14, 1, 10);
    bench("3x3 512->512 7x7 N=32", 32, 512, 512, 7, 3, 5);
    bench("3x3 64->64 4x4 N=64", 64, 64, 64, 4, 3, 10);
    bench_transpose(1, 256, 128, 32, 10);
    bench_transpose(4, 128, 64, 64, 5);
}
