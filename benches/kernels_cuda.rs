//! `cargo bench --bench kernels_cuda [FILTER]`: the hand-written CUDA kernels at ResNet-50 / ImageNet
//! shapes (`engine::bench::ops`, the rows of `engine bench-ops`), each beside its unfused sequence of
//! engine ops where it fuses several (`<op>.unfused`), reported in GB/s and as a share of the card's
//! measured device-to-device copy bandwidth (`copy_d2d`), convolutions in TFLOP/s against the measured
//! f16 GEMM rate (`gemm_f16`). The cuDNN/PyTorch equivalents of the same graphs are timed by
//! `tools/torch_gpu_bench.py`; the GPU check (scripts/gpu_check.sh) runs both and joins them.
//!
//! Without a GPU it prints "skipped: no CUDA device" and exits 0; on the simulated device
//! (`--features cuda-sim`) too, where times would measure the emulator.

use engine::bench::{bench_ops, OpsOptions};
use engine::Device;
use serde_json::Value;

fn main() {
    // cargo passes `--bench`; anything else not starting with `-` filters op names.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if cfg!(feature = "cuda-sim") {
        println!("kernels_cuda: skipped: the simulated CUDA device times the emulator, not a GPU");
        return;
    }
    let dev = match Device::cuda(0) {
        Ok(d) => d,
        Err(e) => {
            println!("kernels_cuda: skipped: no CUDA device ({e})");
            return;
        }
    };
    let out = bench_ops(&OpsOptions {
        device: dev,
        shrink: 1,
        repeats: 5,
        iters: 10,
        filter,
    });
    let rows = out["ops"].as_array().cloned().unwrap_or_default();
    let ok_ms = |r: &Value| (r["status"] == "ok").then(|| r["ms"].as_f64()).flatten();
    let rate = |name: &str, field: &str| {
        rows.iter()
            .find(|r| r["op"] == name)
            .and_then(|r| Some(r[field].as_f64()? / (ok_ms(r)? / 1e3)))
    };
    let (copy, gemm) = (rate("copy_d2d", "bytes"), rate("gemm_f16", "flops"));
    println!("device: {}", out["device_report"]);
    println!(
        "{:<34} {:<28} {:>9} {:>9} {:>7} {:>9} {:>7} {:>9}",
        "op", "shape", "ms", "GB/s", "%copy", "TFLOP/s", "%gemm", "unf/fused"
    );
    for r in &rows {
        let name = r["op"].as_str().unwrap_or("?");
        let Some(ms) = ok_ms(r) else {
            println!("{name:<34} {}", r["error"].as_str().unwrap_or("failed"));
            continue;
        };
        let s = ms / 1e3;
        let gbs = r["bytes"].as_f64().filter(|b| *b > 0.0).map(|b| b / s);
        let tfs = r["flops"].as_f64().filter(|f| *f > 0.0).map(|f| f / s);
        let fused = name
            .strip_suffix(".unfused")
            .and_then(|f| rows.iter().find(|x| x["op"] == f))
            .and_then(ok_ms);
        let cell = |v: Option<f64>, scale: f64, digits: usize| {
            v.map_or("—".to_string(), |v| format!("{:.*}", digits, v * scale))
        };
        println!(
            "{name:<34} {:<28} {:>9.3} {:>9} {:>7} {:>9} {:>7} {:>9}",
            r["shape"].as_str().unwrap_or(""),
            ms,
            cell(gbs, 1e-9, 0),
            cell(gbs.zip(copy).map(|(g, c)| g / c), 100.0, 0),
            cell(tfs, 1e-12, 1),
            cell(tfs.zip(gemm).map(|(t, g)| t / g), 100.0, 0),
            cell(fused.map(|f| ms / f), 1.0, 2),
        );
    }
}
