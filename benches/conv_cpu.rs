//! Criterion benchmark of CPU conv2d forward + backward (input and weight gradients) at ResNet-50
//! layer shapes, through the conv kernels directly, plus the anchor shape through `Tensor::conv2d`
//! and autograd. Throughput is in FLOPs (`Throughput::Elements` = 3 · 2·N·Cout·Ho·Wo·Cin·kh·kw;
//! criterion labels the rate "elem/s"), and a GFLOP/s line per shape is printed at the end.
//! `cargo bench --bench conv_cpu` takes about a minute on a quiet 2-core machine;
//! `cargo bench --bench conv_cpu -- anchor` runs only the names containing "anchor".

#[path = "common/mod.rs"]
mod common;

use common::{ConvAutograd, ConvRunner, ANCHOR, RESNET50_CONVS};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::{Duration, Instant};

/// Best-of-`reps` seconds for one call of `f` (for the GFLOP/s summary; criterion has the stats).
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn conv_benches(c: &mut Criterion) {
    let mut summary = Vec::new();
    let mut g = c.benchmark_group("conv2d_fwd_bwd");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for &case in RESNET50_CONVS {
        let r = ConvRunner::new(case).expect("conv inputs");
        let label = if case.name == ANCHOR.name {
            format!("anchor {}", case.name)
        } else {
            case.name.to_string()
        };
        g.throughput(Throughput::Elements(case.flops() as u64));
        g.bench_function(&label, |b| b.iter(|| r.fwd_bwd().expect("conv fwd+bwd")));
        let s = best_of(3, || r.fwd_bwd().unwrap());
        summary.push((label, case.flops() / s / 1e9, s));
    }
    let a = ConvAutograd::new(ANCHOR).expect("conv inputs");
    let label = format!("anchor autograd {}", ANCHOR.name);
    g.throughput(Throughput::Elements(ANCHOR.flops() as u64));
    g.bench_function(&label, |b| b.iter(|| a.fwd_bwd().expect("conv autograd")));
    let s = best_of(3, || a.fwd_bwd().unwrap());
    summary.push((label, ANCHOR.flops() / s / 1e9, s));
    g.finish();

    println!(
        "\nconv2d fwd+bwd, {} rayon threads (best of 3; PyTorch: docs/benchmarks-cpu.md)",
        rayon::current_num_threads()
    );
    for (name, gflops, s) in summary {
        println!("  {name:<48} {gflops:7.1} GFLOP/s  ({:.1} ms)", s * 1e3);
    }
}

criterion_group!(benches, conv_benches);
criterion_main!(benches);
