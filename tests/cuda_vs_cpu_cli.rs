//! The engine commands of the one-shot GPU check (scripts/gpu_check.sh: `bench-step`, `bench-ops`,
//! `bench-stylize`, `bench-pix2pix`, `train --fp16`) at smoke sizes on `--device cuda`, so a command
//! that breaks on the CUDA path shows up before GPU minutes are spent on it. Runs wherever
//! `Device::cuda(0)` exists: a GPU, or the simulated device of `--features cuda-sim`; elsewhere it
//! prints "skipped CUDA" (and fails under `ENGINE_REQUIRE_CUDA=1`).
//!
//! Invariants checked: every command exits 0 and prints its JSON on the CUDA device; `bench-step`'s
//! timed losses (f32, FP16, FP16 channels-last) are within [`LOSS_RTOL`] of the same command's on the
//! CPU (same seeded batch and initialisation); every `bench-ops` row is "ok"; the generative
//! benchmarks report a positive rate; `train --fp16` writes its checkpoint and metrics; the stylize
//! job (pipelined over the device's queue) writes the CPU's images and manifest, and stops whole.

mod common;
use common::engine;

use engine::testing::cuda_device;
use serde_json::Value;
use std::process::Command;

/// Relative tolerance of a bench-step loss against the CPU's (two SGD steps: rounding only).
const LOSS_RTOL: f64 = 0.02;

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

/// `engine stylize`'s job (`run_stylize`) on the CUDA device, where batches are pipelined over the
/// device's queue (batch k written while batch k+1 is computed): it writes the images the CPU run
/// writes (within 2 levels of 255: rounding), lists the same manifest, and a stop after two batches
/// leaves exactly those two batches written and listed.
#[test]
fn stylize_job_on_cuda_matches_the_cpu() {
    use engine::models::Stylizer;
    use engine::nn::state::save_module;
    use engine::stylize::{random_stylizer, run_stylize, StylizeConfig, StylizeOptions};
    use engine::{DType, Device};
    use std::collections::BTreeMap;
    let Some(dev) = cuda_device() else { return };
    let root = std::env::temp_dir().join(format!("engine-cuda-stylize-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    let copy_dir = |from: &str, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(test_data().join(from)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
    };
    copy_dir("photos", &root.join("content/photos"));
    copy_dir("textures", &root.join("styles"));
    let s = random_stylizer(7, 4, DType::F32, Device::Cpu).unwrap();
    let (vgg, dec) = (
        root.join("vgg.safetensors"),
        root.join("decoder.safetensors"),
    );
    save_module(&vgg, &s.encoder, &BTreeMap::new()).unwrap();
    save_module(&dec, &s.decoder, &BTreeMap::new()).unwrap();
    let config = |out: &str| {
        let mut c = StylizeConfig::new(root.join("content"), root.join("styles"), root.join(out));
        (c.content_size, c.crop, c.style_size, c.batch_size) = (64, 56, 56, 2);
        c
    };
    let outputs = |dir: &std::path::Path| -> BTreeMap<String, image::RgbImage> {
        std::fs::read_dir(dir.join("photos"))
            .map(|rd| {
                rd.map(|e| {
                    let p = e.unwrap().path();
                    let name = p.file_name().unwrap().to_string_lossy().to_string();
                    (name, image::open(&p).unwrap().to_rgb8())
                })
                .collect()
            })
            .unwrap_or_default()
    };
    let manifest_lines = |dir: &std::path::Path| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("manifest.jsonl")).unwrap();
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.contains("\"kind\":\"image\""))
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let on = |device: Device, out: &str, stop_after_batches: Option<usize>| {
        let s = Stylizer::load(&vgg, &dec, DType::F32, device).unwrap();
        let cfg = config(out);
        let opts = StylizeOptions {
            stop_after_batches,
            ..StylizeOptions::default()
        };
        (run_stylize(&cfg, &s, device, &opts).unwrap(), cfg.out_dir)
    };
    let (cpu, cpu_dir) = on(Device::Cpu, "cpu", None);
    let (gpu, gpu_dir) = on(dev, "cuda", None);
    assert_eq!((cpu.done, gpu.done), (8, 8));
    assert_eq!(manifest_lines(&gpu_dir), manifest_lines(&cpu_dir));
    let (want, got) = (outputs(&cpu_dir), outputs(&gpu_dir));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, w) in &want {
        let g = &got[name];
        assert_eq!(g.dimensions(), w.dimensions(), "{name}");
        let max = g
            .as_raw()
            .iter()
            .zip(w.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(
            max <= Some(2),
            "{name}: {max:?} levels from the CPU's output"
        );
    }
    let (stopped, stopped_dir) = on(dev, "cuda-stopped", Some(2));
    assert!(stopped.interrupted);
    assert_eq!(stopped.done, 4);
    assert_eq!(outputs(&stopped_dir).len(), 4);
    assert_eq!(manifest_lines(&stopped_dir).len(), 4);
    std::fs::remove_dir_all(&root).ok();
}
