//! Criterion benchmark of one CPU ResNet training step (forward in training mode, cross-entropy,
//! backward, SGD with momentum), reported as images/s (`Throughput::Elements` = batch; criterion
//! prints "elem/s"): (a) ResNet-18, 1×28×28, 3×3 stem, no max pool, width 64, batch 128, 10
//! classes (the anchor's torchvision model: PyTorch ≈ 39.8 images/s on this machine); (b)
//! ResNet-50, 224², batch 16 (PyTorch ≈ 4.4 images/s). Criterion's minimum of 10 samples of one
//! step each makes this the slow bench (about 1.5 minutes quiet);
//! `cargo bench --bench train_step_cpu -- ResNet-18` runs one model.

#[path = "common/mod.rs"]
mod common;

use common::{resnet18_fmnist, resnet50_imagenet, TrainStep};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::{Duration, Instant};

fn train_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        // Shorter than 10 steps: criterion then takes exactly one step per sample (after one
        // warm-up step) and prints its expected "Unable to complete 10 samples" warning.
        .measurement_time(Duration::from_secs(1));
    for case in [resnet18_fmnist(), resnet50_imagenet()] {
        let name = case.name;
        let batch = case.batch;
        let mut step = TrainStep::new(case).expect("model");
        g.throughput(Throughput::Elements(batch as u64));
        // Mean over the measured samples; the first call is criterion's warm-up.
        let (mut calls, mut total_s, mut total_steps) = (0, 0.0, 0u64);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    step.step().expect("train step");
                }
                let e = t.elapsed();
                if calls > 0 {
                    total_s += e.as_secs_f64();
                    total_steps += iters;
                }
                calls += 1;
                e
            })
        });
        if total_steps > 0 {
            let per = total_s / total_steps as f64;
            println!(
                "  {name}: {:.1} images/s (mean of {total_steps} steps, {per:.2} s/step)",
                batch as f64 / per
            );
        }
    }
    g.finish();
}

criterion_group!(benches, train_benches);
criterion_main!(benches);
