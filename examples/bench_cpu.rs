//! The engine side of `scripts/bench_cpu_vs_torch.sh`: times conv2d forward + backward at a few
//! ResNet shapes (the anchor first, plus the anchor through autograd) and one ResNet training step
//! (ResNet-18 1×28×28 batch 128; ResNet-50 224² batch 16), each as the median of `--reps` runs after
//! `--warmup` runs, and prints one JSON document on stdout. Every workload carries its geometry /
//! model config so `tools/torch_cpu_bench.py` times exactly the same work in PyTorch.
//!
//! `cargo run --release --example bench_cpu -- [--reps N] [--train-reps N] [--warmup N] [--skip-train]`

#[path = "../benches/common/mod.rs"]
mod common;

use common::{
    resnet18_fmnist, resnet50_imagenet, ConvAutograd, ConvCase, ConvRunner, TrainStep,
    COMPARE_CONVS,
};
use serde_json::json;
use std::time::Instant;

/// Median of `reps` timed calls after `warmup` untimed ones; also returns every timing.
fn median_time(warmup: usize, reps: usize, mut f: impl FnMut()) -> (f64, Vec<f64>) {
    for _ in 0..warmup {
        f();
    }
    let times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let mut s = times.clone();
    s.sort_by(f64::total_cmp);
    let m = s.len();
    let med = if m % 2 == 1 {
        s[m / 2]
    } else {
        (s[m / 2 - 1] + s[m / 2]) / 2.0
    };
    (med, times)
}

fn conv_json(c: &ConvCase, path: &str, med: f64, times: &[f64]) -> serde_json::Value {
    json!({
        "kind": "conv",
        "name": c.name,
        "path": path,
        "n": c.n, "cin": c.cin, "cout": c.cout, "hw": c.hw, "k": c.k,
        "stride": c.stride, "pad": c.pad(),
        "flops": c.flops(),
        "median_s": med,
        "times_s": times,
        "gflops": c.flops() / med / 1e9,
    })
}

fn main() -> engine::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (warmup, reps, train_reps) = (arg("--warmup", 2), arg("--reps", 7), arg("--train-reps", 3));
    let skip_train = args.iter().any(|a| a == "--skip-train");

    let mut results = Vec::new();
    for &c in COMPARE_CONVS {
        let r = ConvRunner::new(c)?;
        let (med, times) = median_time(warmup, reps, || r.fwd_bwd().expect("conv fwd+bwd"));
        eprintln!(
            "engine conv {}: {:.1} GFLOP/s",
            c.name,
            c.flops() / med / 1e9
        );
        results.push(conv_json(&c, "kernels", med, &times));
    }
    let a = ConvAutograd::new(COMPARE_CONVS[0])?;
    let (med, times) = median_time(warmup, reps, || a.fwd_bwd().expect("conv autograd"));
    eprintln!(
        "engine conv {} (autograd): {:.1} GFLOP/s",
        a.case.name,
        a.case.flops() / med / 1e9
    );
    results.push(conv_json(&a.case, "autograd", med, &times));

    if !skip_train {
        for case in [resnet18_fmnist(), resnet50_imagenet()] {
            let cfg = case.config.clone();
            let (name, hw, batch) = (case.name, case.hw, case.batch);
            let mut st = TrainStep::new(case)?;
            let mut loss = 0.0;
            let (med, times) = median_time(1, train_reps, || {
                loss = st.step().expect("train step");
            });
            eprintln!(
                "engine train {name}: {:.1} images/s ({med:.2} s/step, loss {loss:.3})",
                batch as f64 / med
            );
            results.push(json!({
                "kind": "train",
                "name": name,
                "depth": cfg.depth,
                "small_input": cfg.small_input,
                "in_channels": cfg.in_channels,
                "num_classes": cfg.num_classes,
                "width": cfg.width,
                "hw": hw,
                "batch": batch,
                "median_s": med,
                "times_s": times,
                "images_per_s": batch as f64 / med,
                "last_loss": loss,
            }));
        }
    }
    let doc = json!({
        "threads": rayon::current_num_threads(),
        "warmup": warmup,
        "reps": reps,
        "train_reps": train_reps,
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    Ok(())
}
