//! The engine side of `scripts/bench_cpu_vs_torch.sh`: times conv2d forward + backward at a few
//! ResNet shapes (the anchor first, plus the anchor through autograd) and one ResNet training step
//! (ResNet-18 1×28×28 batch 128; ResNet-50 224² batch 16), each as the median of `--reps` runs
//! after `--warmup` runs (training: `--train-reps` after one), and prints one JSON document on
//! stdout. Every workload carries its geometry / model config so `tools/torch_cpu_bench.py` times
//! exactly the same work in PyTorch; `--list` prints the workloads without running them and
//! `--only I` runs workload I alone (the script alternates engine and PyTorch workload by workload).
//!
//! `cargo run --release --example bench_cpu -- [--list | --only I] [--reps N] [--train-reps N]
//! [--warmup N] [--skip-train] [--no-winograd]`; `--no-winograd` sends 3×3 convs to the im2col
//! path (for A/B runs); with `ENGINE_PROFILE=1` each workload also prints, on stderr, its
//! time per CPU kernel over the timed runs.

#[path = "../benches/common/mod.rs"]
mod common;

use common::{
    resnet18_fmnist, resnet18_fmnist_width16, resnet50_imagenet, ConvAutograd, ConvCase,
    ConvRunner, TrainCase, TrainStep, COMPARE_CONVS,
};
use serde_json::{json, Value};
use std::time::Instant;

/// Median of `reps` timed calls after `warmup` untimed ones; also returns every timing.
fn median_time(warmup: usize, reps: usize, mut f: impl FnMut()) -> (f64, Vec<f64>) {
    for _ in 0..warmup {
        f();
    }
    engine::backend::cpu_profile::reset();
    let times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    if engine::backend::cpu_profile::enabled() {
        eprintln!(
            "CPU kernels over {} timed runs (ENGINE_PROFILE):\n{}",
            times.len(),
            engine::backend::cpu_profile::report()
        );
    }
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

/// One workload of the comparison.
enum Work {
    Conv(ConvCase, &'static str),
    Train(TrainCase),
}

fn workloads() -> Vec<Work> {
    let mut w: Vec<Work> = COMPARE_CONVS
        .iter()
        .map(|&c| Work::Conv(c, "kernels"))
        .collect();
    w.push(Work::Conv(COMPARE_CONVS[0], "autograd"));
    w.push(Work::Train(resnet18_fmnist()));
    w.push(Work::Train(resnet18_fmnist_width16()));
    w.push(Work::Train(resnet50_imagenet()));
    w
}

fn conv_json(c: &ConvCase, path: &str) -> serde_json::Value {
    json!({
        "kind": "conv",
        "name": c.name,
        "path": path,
        "n": c.n, "cin": c.cin, "cout": c.cout, "hw": c.hw, "k": c.k,
        "stride": c.stride, "pad": c.pad(),
        "flops": c.flops(),
    })
}

fn train_json(t: &TrainCase) -> serde_json::Value {
    let c = &t.config;
    json!({
        "kind": "train",
        "name": t.name,
        "depth": c.depth,
        "small_input": c.small_input,
        "in_channels": c.in_channels,
        "num_classes": c.num_classes,
        "width": c.width,
        "hw": t.hw,
        "batch": t.batch,
    })
}

/// Times one workload; returns its description with the timings added.
fn measure(w: &Work, warmup: usize, reps: usize, train_reps: usize) -> engine::Result<Value> {
    Ok(match w {
        Work::Conv(c, path) => {
            let (med, times) = if *path == "autograd" {
                let a = ConvAutograd::new(*c)?;
                median_time(warmup, reps, || a.fwd_bwd().expect("conv autograd"))
            } else {
                let r = ConvRunner::new(*c)?;
                median_time(warmup, reps, || r.fwd_bwd().expect("conv fwd+bwd"))
            };
            eprintln!(
                "engine conv {} ({path}): {:.1} GFLOP/s",
                c.name,
                c.flops() / med / 1e9
            );
            let mut v = conv_json(c, path);
            v["median_s"] = json!(med);
            v["times_s"] = json!(times);
            v["gflops"] = json!(c.flops() / med / 1e9);
            v
        }
        Work::Train(t) => {
            let mut st = TrainStep::new(t.clone())?;
            let mut loss = 0.0;
            let (med, times) = median_time(1, train_reps, || {
                loss = st.step().expect("train step");
            });
            let ips = t.batch as f64 / med;
            eprintln!(
                "engine train {}: {ips:.1} images/s ({med:.2} s/step, loss {loss:.3})",
                t.name
            );
            let mut v = train_json(t);
            v["median_s"] = json!(med);
            v["times_s"] = json!(times);
            v["images_per_s"] = json!(ips);
            v["last_loss"] = json!(loss);
            v
        }
    })
}

fn main() -> engine::Result<()> {
    engine::host_memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--no-winograd") {
        // A/B switch: every 3×3 conv back on the im2col + gemm path.
        engine::ops::conv::WINOGRAD.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    let arg = |flag: &str| -> Option<usize> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let warmup = arg("--warmup").unwrap_or(2);
    let reps = arg("--reps").unwrap_or(7);
    let train_reps = arg("--train-reps").unwrap_or(3);
    let only = arg("--only");
    let skip_train = args.iter().any(|a| a == "--skip-train");

    let work = workloads();
    let results: Vec<Value> = if args.iter().any(|a| a == "--list") {
        work.iter()
            .map(|w| match w {
                Work::Conv(c, path) => conv_json(c, path),
                Work::Train(t) => train_json(t),
            })
            .collect()
    } else {
        let mut out = Vec::new();
        for (i, w) in work.iter().enumerate() {
            let selected = match only {
                Some(o) => o == i,
                None => !(skip_train && matches!(w, Work::Train(_))),
            };
            if selected {
                out.push(measure(w, warmup, reps, train_reps)?);
            }
        }
        out
    };
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
