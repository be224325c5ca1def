//! The engine commands of the one-shot GPU check (scripts/gpu_check.sh: `bench-step`, `bench-ops`,
//! `bench-stylize`, `bench-pix2pix`, `train --fp16`) at smoke sizes on `--device cuda`, so a command
//! that breaks on the CUDA path shows up before GPU minutes are spent on it. Runs wherever
//! `Device::cuda(0)` exists: a GPU, or the simulated device of `--features cuda-sim`; elsewhere it
//! prints "skipped CUDA" (and fails under `ENGINE_REQUIRE_CUDA=1`).
//!
//! Invariants checked: every command exits 0 and prints its JSON on the CUDA device; `bench-step`'s
//! timed losses (f32, FP16, FP16 channels-last) are within [`LOSS_RTOL`] of the same command's on the
//! CPU (same seeded batch and initialisation); every `bench-ops` row is "ok"; the generative
//! benchmarks report a positive rate; `train --fp16` writes its checkpoint and metrics.

use engine::testing::cuda_device;
use serde_json::Value;
use std::process::Command;

/// Relative tolerance of a bench-step loss against the CPU's (two SGD steps: rounding only).
const LOSS_RTOL: f64 = 0.02;

/// The `engine` binary: `ENGINE_BIN` when set (the GPU check runs this test from its bundle, far from
/// the build's target folder), else the one cargo built beside this test.
fn engine() -> Command {
    Command::new(
        std::env::var_os("ENGINE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_engine").into()),
    )
}

/// `tests/data` of the repository: relative to the working directory (cargo runs tests from the
/// package root, the GPU check from the repo root), else where the build found it.
fn test_data() -> std::path::PathBuf {
    let rel = std::path::PathBuf::from("tests/data");
    if rel.is_dir() {
        rel
    } else {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
    }
}

/// Runs `engine args…` and parses its standard output as JSON; panics with stderr on failure.
fn engine_json(args: &[&str]) -> Value {
    let out = engine().args(args).output().expect("run engine");
    assert!(
        out.status.success(),
        "engine {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "engine {args:?}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn losses(v: &Value) -> Vec<f64> {
    v["losses"]
        .as_array()
        .expect("losses")
        .iter()
        .map(|l| l.as_f64().expect("a number"))
        .collect()
}

/// `engine train` on CUDA for one epoch of tests/data's photos (two class folders) with a width-8
/// ResNet-18, batch 4, writing to `out`; callers add flags.
fn small_train(out: &std::path::Path) -> Command {
    let data = test_data();
    let mut c = engine();
    c.args([
        "train",
        "--device",
        "cuda",
        "--data-format",
        "folder",
        "--train-dir",
    ])
    .arg(&data)
    .arg("--val-dir")
    .arg(&data)
    .args([
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--depth",
        "18",
        "--width",
        "8",
    ])
    .arg("--quiet")
    .arg("--out")
    .arg(out);
    c
}

/// A bench's timed calls made no f32 copy of an f16 tensor (`widened_f16_elements` is `{}`).
fn no_widening(what: &str, v: &Value) {
    let w = &v["widened_f16_elements"];
    assert!(
        w.as_object().is_some_and(|m| m.is_empty()),
        "{what}: f16 elements widened to f32 per kernel: {w}"
    );
}

#[test]
fn gpu_check_commands_run_on_cuda() {
    if cuda_device().is_none() {
        return;
    }
    let step = [
        "bench-step",
        "--model",
        "resnet18",
        "--batch",
        "2",
        "--image",
        "16",
        "--classes",
        "10",
        "--steps",
        "2",
        "--warmup",
        "1",
    ];
    for flags in [&[][..], &["--fp16"][..], &["--fp16", "--channels-last"][..]] {
        let on = |device: &str| {
            let mut args = step.to_vec();
            args.extend_from_slice(flags);
            args.extend_from_slice(&["--device", device]);
            engine_json(&args)
        };
        let (cuda, cpu) = (on("cuda"), on("cpu"));
        assert_eq!(cuda["device"], "cuda:0", "{flags:?}");
        no_widening(&format!("bench-step {flags:?}"), &cuda);
        let (lc, lp) = (losses(&cuda), losses(&cpu));
        assert_eq!(lc.len(), lp.len());
        for (c, p) in lc.iter().zip(&lp) {
            assert!(
                c.is_finite() && (c - p).abs() <= LOSS_RTOL * p.abs(),
                "bench-step {flags:?}: cuda losses {lc:?}, cpu {lp:?}"
            );
        }
    }

    let ops = engine_json(&[
        "bench-ops",
        "--device",
        "cuda",
        "--shrink",
        "64",
        "--repeats",
        "1",
        "--iters",
        "1",
    ]);
    let rows = ops["ops"].as_array().expect("ops");
    assert!(!rows.is_empty());
    for r in rows {
        assert_eq!(r["status"], "ok", "bench-ops row {r}");
    }
    for op in ["conv3x3.fwd_bwd.cl", "bn_add_relu.fwd_bwd.cl"] {
        assert!(
            rows.iter().any(|r| r["op"] == op),
            "bench-ops has no {op} row"
        );
    }

    for fp16 in [false, true] {
        let mut args = vec![
            "bench-stylize",
            "--batch",
            "2",
            "--image",
            "64",
            "--width",
            "8",
            "--iters",
            "1",
            "--warmup",
            "1",
            "--device",
            "cuda",
        ];
        if fp16 {
            args.push("--fp16");
        }
        let v = engine_json(&args);
        assert!(v["images_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
        no_widening(&format!("bench-stylize fp16 {fp16}"), &v);
    }
    let v = engine_json(&[
        "bench-pix2pix",
        "--batch",
        "1",
        "--image",
        "32",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--device",
        "cuda",
    ]);
    assert!(v["images_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
    no_widening("bench-pix2pix", &v);

    let out = std::env::temp_dir().join(format!("engine-cuda-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = small_train(&out)
        .args(["--recipe", "reproduction-2019", "--fp16"])
        .status()
        .expect("run engine train");
    assert!(status.success(), "engine train --fp16 --device cuda failed");
    for f in ["checkpoint.safetensors", "metrics.jsonl"] {
        assert!(out.join(f).is_file(), "train wrote no {f}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `engine train` on a device too small for it (the simulated device capped by
/// `ENGINE_SIM_MEMORY_BYTES`) fails with the out-of-memory advice, not a driver code. Only on the
/// simulated device: a GPU's memory cannot be capped for one process.
#[test]
fn train_out_of_memory_says_what_to_do() {
    let Some(engine::Device::Cuda(i)) = cuda_device() else {
        return;
    };
    if !engine::backend::cuda_device_report(i)
        .expect("device report")
        .name
        .contains("simulated")
    {
        eprintln!("skipped: the memory cap exists on the simulated device only");
        return;
    }
    let out = std::env::temp_dir().join(format!("engine-cuda-oom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = small_train(&out)
        .env("ENGINE_SIM_MEMORY_BYTES", "4000000")
        .output()
        .expect("run engine train");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "train fit in 4 MB: {stderr}");
    for part in [
        "out of memory allocating",
        "--batch-size",
        "--fp16 --channels-last",
    ] {
        assert!(stderr.contains(part), "stderr lacks {part:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
