//! `engine bench-step` / `bench-ops` / the generative benches (src/bench/) on the CPU with tiny
//! shapes: they must report `ok` with a positive rate, and a missing CUDA device must come back as a
//! status, not a panic. `bench-loader` on real photographs: every image counted, a corrupt file
//! counted as skipped, one row per thread count.

use engine::bench::{bench_ops, bench_step, OpsOptions, StepOptions};
use engine::Device;

#[test]
fn bench_step_runs_on_the_cpu() {
    let v = bench_step(&StepOptions::smoke(Device::Cpu));
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["peak_memory_bytes"].as_u64().unwrap_or(0) > 0, "{v}");
}

/// `--host-batches`: every step's input comes from host memory through the trainer's input path;
/// the run takes as many batches as it has steps and says where its input came from.
#[test]
fn bench_step_feeds_host_batches() {
    let v = bench_step(&StepOptions {
        steps: 2,
        host_batches: true,
        ..StepOptions::smoke(Device::Cpu)
    });
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["losses"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["input"].as_str().unwrap().contains("host batch"), "{v}");
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
    // The fused kernel and its unfused sequence of ops.
    let ops = v["ops"].as_array().unwrap();
    let names: Vec<&str> = ops.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "cross_entropy_ls.fwd_bwd",
            "cross_entropy_ls.fwd_bwd.unfused"
        ],
        "{v}"
    );
    for r in ops {
        assert_eq!(r["status"], "ok", "{v}");
        assert!(r["ms"].as_f64().unwrap() >= 0.0);
    }
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
    let small = Pix2pixBenchOptions::smoke(Device::Cpu);
    let v = bench_pix2pix(&small);
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["parameters_g"].as_u64().unwrap() > 0, "{v}");
    // A size the U-Net cannot take is reported, not panicked on.
    let bad = bench_pix2pix(&Pix2pixBenchOptions { image: 48, ..small });
    assert_eq!(bad["status"], "error", "{bad}");
}

#[test]
fn bench_loader_times_real_photos_and_counts_a_corrupt_file() {
    use engine::train::{DataSpec, Recipe, TrainConfig};
    use std::path::PathBuf;
    // Two classes of real photographs (tests/data, from scikit-image) plus one broken file.
    let root = std::env::temp_dir().join(format!("engine-bench-loader-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for class in ["photos", "textures"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for e in std::fs::read_dir(src.join(class)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, root.join(class).join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(root.join("photos/broken.jpg"), b"not a jpeg").unwrap();
    let mut cfg = TrainConfig::imagenet(
        Recipe::Reproduction2019,
        vec![root.clone()],
        vec![root.clone()],
        18,
        root.join("run"),
    );
    cfg.data = DataSpec::ImageFolder {
        train: vec![root.clone()],
        val: vec![root.clone()],
        min_side: 0,
    };
    cfg.batch_size = 7;
    let v = engine::bench::loader::bench_loader(&cfg, 3, 0.0, &[1, 2]).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(
        v["dataset_images"], 14,
        "13 photos and textures + the broken file: {v}"
    );
    for (row, threads) in rows.iter().zip([1, 2]) {
        assert_eq!(row["threads"], threads, "{v}");
        let (images, skipped) = (
            row["images"].as_u64().unwrap(),
            row["skipped"].as_u64().unwrap(),
        );
        // 3 batches of 7 drawn from a cycled shuffle of 14 files: 21 draws, each file at least once.
        assert_eq!(images + skipped, 21, "{v}");
        assert!(skipped >= 1, "the broken file is drawn at least once: {v}");
        assert!(row["images_per_s"].as_f64().unwrap() > 0.0, "{v}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}
