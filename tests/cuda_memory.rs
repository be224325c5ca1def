//! Device memory: what the CUDA device's pool reports, and what a ResNet-50 forward pass keeps for
//! backward against what PyTorch keeps (fixture `torch_memory.json`, counted by
//! tools/torch_memory_estimate.py over fake tensors: every storage from creation to release).
//!
//! Runs wherever `Device::cuda(0)` exists (a GPU, or the simulated device of `--features cuda-sim`,
//! which counts its buffers' bytes as the pool would); elsewhere prints "skipped CUDA". One test in
//! this binary, so no other test allocates while it reads the pool's figures.
//!
//! Invariants checked:
//! - allocating and dropping a buffer moves the pool's used bytes by its size (within the pool's
//!   rounding), the high-water mark follows, and resetting it brings it down to what is live;
//! - the autograd graph of a ResNet-50 training forward pass (f32, NCHW, the fixture's batches and
//!   size) grows by no more bytes per image than PyTorch's does for the same network and step: an op
//!   that keeps a tensor its backward rule never reads (a residual branch, an op's input where the
//!   rule needs its output) fails this;
//! - an allocation larger than the device is `Error::OutOfMemory`, whose message says what to do,
//!   and the device works on afterwards.

use engine::backend::{cuda_device_report, cuda_reset_peak_memory, cuda_synchronize};
use engine::models::{ResNet, ResNetConfig};
use engine::nn::init::Init;
use engine::nn::{Mode, Module};
use engine::shape::Shape;
use engine::testing::{cuda_device, fixtures_dir};
use engine::{DType, Device, Error, Tensor};

/// Slack on a single allocation's accounting: the CUDA pool rounds sizes up to its granularity.
const POOL_ROUNDING: u64 = 2 << 20;

fn used(ordinal: usize) -> u64 {
    cuda_synchronize(ordinal).unwrap();
    cuda_device_report(ordinal).unwrap().pool_used_bytes
}

fn high(ordinal: usize) -> u64 {
    cuda_synchronize(ordinal).unwrap();
    cuda_device_report(ordinal).unwrap().pool_used_high_bytes
}

/// The pool's used and high-water figures follow one 24 MiB buffer's life.
fn pool_accounting(dev: Device, ordinal: usize) {
    let bytes: u64 = 24 << 20;
    let before = used(ordinal);
    cuda_reset_peak_memory(ordinal).unwrap();
    let t = Tensor::randn([(bytes / 4) as usize], 0.0, 1.0, 3, DType::F32, dev).unwrap();
    let with = used(ordinal);
    assert!(
        with >= before + bytes && with <= before + bytes + POOL_ROUNDING,
        "used bytes went from {before} to {with} for a {bytes}-byte tensor"
    );
    drop(t);
    let after = used(ordinal);
    assert!(
        after <= before + POOL_ROUNDING,
        "used bytes {after} after the tensor was dropped (was {before} before it)"
    );
    assert!(
        high(ordinal) >= before + bytes,
        "high-water mark missed the tensor"
    );
    cuda_reset_peak_memory(ordinal).unwrap();
    assert!(
        high(ordinal) < before + bytes,
        "reset left the high-water mark at {} (live now: {after})",
        high(ordinal)
    );
}

struct TorchRow {
    batch: usize,
    image: usize,
    graph_bytes: u64,
}

fn torch_rows() -> Vec<TorchRow> {
    let path = format!("{}/torch_memory.json", fixtures_dir());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}; regenerate with `python3 tools/torch_memory_estimate.py --fixture`")
    });
    let doc: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let n = |k: &str| {
                r[k].as_u64()
                    .unwrap_or_else(|| panic!("{path}: row without {k}"))
            };
            assert!(!r["amp_fp16"].as_bool().unwrap() && !r["channels_last"].as_bool().unwrap());
            TorchRow {
                batch: n("batch") as usize,
                image: n("image") as usize,
                graph_bytes: n("live_after_forward_bytes") - n("live_before_forward_bytes"),
            }
        })
        .collect()
}

/// Bytes the pool gains over one training forward pass (model output, loss and the graph). A first
/// pass fills whatever the backend caches per shape (cuDNN plans and workspaces on a GPU), so the
/// measured pass counts only what the graph keeps.
fn our_graph_bytes(dev: Device, ordinal: usize, model: &ResNet, batch: usize, image: usize) -> u64 {
    let x = Tensor::randn([batch, 3, image, image], 0.0, 1.0, 5, DType::F32, dev).unwrap();
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let forward = || model.forward(&x, Mode::TRAIN)?.cross_entropy(&labels, 0.1);
    drop(forward().unwrap());
    let before = used(ordinal);
    let loss = forward().unwrap();
    let after = used(ordinal);
    drop(loss);
    after - before
}

/// The graph's growth per image between the fixture's two batches, ours against PyTorch's: the
/// difference cancels what does not scale with the batch (per-channel statistics, the pool's
/// per-allocation rounding on a GPU), leaving the activations each side keeps.
fn graph_holds_no_more_than_pytorch(dev: Device, ordinal: usize) {
    let model = ResNet::new(
        ResNetConfig::resnet50(10),
        &mut Init::new(0, DType::F32, dev),
    )
    .unwrap();
    let rows = torch_rows();
    let [small, large] = &rows[..] else {
        panic!("the fixture should hold two batch sizes")
    };
    assert!(small.image == large.image && small.batch < large.batch);
    let ours: Vec<u64> = [small, large]
        .iter()
        .map(|r| our_graph_bytes(dev, ordinal, &model, r.batch, r.image))
        .collect();
    let images = (large.batch - small.batch) as f64;
    let ours_per_image = (ours[1] as f64 - ours[0] as f64) / images;
    let torch_per_image = (large.graph_bytes as f64 - small.graph_bytes as f64) / images;
    eprintln!(
        "ResNet-50 f32 NCHW at {}²: graph {} and {} bytes at batches {} and {} (PyTorch {} and {}); \
         per image {ours_per_image:.0} against PyTorch's {torch_per_image:.0} ({:.3}×)",
        small.image,
        ours[0],
        ours[1],
        small.batch,
        large.batch,
        small.graph_bytes,
        large.graph_bytes,
        ours_per_image / torch_per_image
    );
    assert!(
        ours_per_image <= torch_per_image,
        "the forward pass keeps {ours_per_image:.0} bytes per image for backward, PyTorch \
         {torch_per_image:.0}: some op saves a tensor its backward rule does not read"
    );
}

/// A 1 TiB tensor (more than any GPU has, and than the simulated device's 80 GiB) is
/// `Error::OutOfMemory` with advice, and the device works on afterwards.
fn out_of_memory_is_a_clear_error(dev: Device) {
    let huge = Shape::new(vec![1 << 38]);
    let one = Tensor::scalar(1.0, DType::F32, dev).unwrap();
    match one.broadcast_to(&huge) {
        Err(e @ Error::OutOfMemory { .. }) => {
            let m = e.to_string();
            assert!(m.contains("out of memory allocating 1.00 TiB"), "{m}");
            assert!(m.contains("--batch-size"), "{m}");
        }
        Err(e) => panic!("a 1 TiB allocation failed with another error: {e}"),
        Ok(_) => panic!("a 1 TiB allocation succeeded"),
    }
    let x = Tensor::randn([64], 0.0, 1.0, 9, DType::F32, dev).unwrap();
    let want: f64 = x.to_vec_f64().unwrap().iter().sum();
    let got = x.sum_all().unwrap().to_scalar().unwrap();
    assert!(
        (got - want).abs() < 1e-4,
        "after the failed allocation: sum {got}, want {want}"
    );
}

#[test]
fn pool_figures_and_graph_memory_against_pytorch() {
    let Some(dev) = cuda_device() else { return };
    let Device::Cuda(ordinal) = dev else {
        unreachable!()
    };
    pool_accounting(dev, ordinal);
    graph_holds_no_more_than_pytorch(dev, ordinal);
    out_of_memory_is_a_clear_error(dev);
}
