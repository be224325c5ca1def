//! `engine bench-step` / `bench-ops` (src/bench.rs) on the CPU with tiny shapes: they must report
//! `ok` with a positive rate, and a missing CUDA device must come back as a status, not a panic.

use engine::bench::{bench_ops, bench_step, OpsOptions, StepOptions};
use engine::Device;

#[test]
fn bench_step_runs_on_the_cpu() {
    let v = bench_step(&StepOptions {
        depth: 18,
        batch: 2,
        image: 32,
        classes: 10,
        fp16: false,
        channels_last: false,
        steps: 1,
        warmup: 1,
        label_smoothing: 0.1,
        device: Device::Cpu,
    });
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["peak_memory_bytes"].as_u64().unwrap_or(0) > 0, "{v}");
}

#[test]
fn bench_ops_runs_on_the_cpu() {
    let v = bench_ops(&OpsOptions {
        device: Device::Cpu,
        shrink: 64,
        repeats: 1,
        iters: 1,
        filter: Some("cross_entropy".into()),
    });
    let ops = v["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{v}");
    assert_eq!(ops[0]["status"], "ok", "{v}");
    assert!(ops[0]["ms"].as_f64().unwrap() >= 0.0);
}

#[test]
fn a_missing_gpu_is_a_status() {
    if Device::cuda(0).is_ok() {
        return;
    }
    let v = bench_ops(&OpsOptions {
        device: Device::Cuda(0),
        shrink: 64,
        repeats: 1,
        iters: 1,
        filter: Some("copy_d2d".into()),
    });
    assert_eq!(v["ops"][0]["status"], "unavailable", "{v}");
}

#[test]
fn generative_benches_run_on_the_cpu() {
    use engine::bench::{bench_pix2pix, bench_stylize, Pix2pixBenchOptions, StylizeBenchOptions};
    let v = bench_stylize(&StylizeBenchOptions {
        batch: 2,
        image: 32,
        width: 4,
        fp16: false,
        iters: 1,
        warmup: 1,
        device: Device::Cpu,
    });
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0, "{v}");
    let small = Pix2pixBenchOptions {
        batch: 1,
        image: 32,
        ngf: 4,
        ndf: 4,
        steps: 1,
        warmup: 1,
        device: Device::Cpu,
    };
    let v = bench_pix2pix(&small);
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["parameters_g"].as_u64().unwrap() > 0, "{v}");
    // A size the U-Net cannot take is reported, not panicked on.
    let bad = bench_pix2pix(&Pix2pixBenchOptions { image: 48, ..small });
    assert_eq!(bad["status"], "error", "{bad}");
}
