//! `Tensor::mixup` (one kernel over a batch's images and soft targets) on every test device against
//! the CPU, and its argument checks. The CUDA half runs on a GPU or on the simulated device
//! (`--features cuda-sim`); without either it prints "skipped CUDA" (a failure under
//! `ENGINE_REQUIRE_CUDA=1`).
//!
//! Invariants checked: equal to the CPU bit for bit in f16, f32 and f64 (the kernel rounds each
//! product and the sum as the CPU does), for contiguous and channels-last images (the format is
//! kept); a bad permutation, λ outside [0, 1] or mismatched shapes are errors that say so.

use engine::testing::test_devices;
use engine::{DType, Device, MemoryFormat, Tensor};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 0.0, 1.0, seed, DType::F64, Device::Cpu).unwrap()
}

#[test]
fn mixup_matches_the_cpu_on_every_device() {
    let (x0, t0) = (randn(&[6, 3, 11, 9], 1), randn(&[6, 10], 2).abs().unwrap());
    let perm = [3usize, 0, 5, 1, 2, 4];
    for dev in test_devices() {
        for dtype in [DType::F16, DType::F32, DType::F64] {
            for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
                let what = format!("{dev} {dtype} {format:?}");
                let on = |t: &Tensor, d: Device| t.to_dtype(dtype).unwrap().to_device(d).unwrap();
                let (want_x, want_t) = on(&x0, Device::Cpu)
                    .mixup(&on(&t0, Device::Cpu), 0.3, &perm)
                    .unwrap();
                let x = on(&x0, dev).to_format(format).unwrap();
                let (got_x, got_t) = x.mixup(&on(&t0, dev), 0.3, &perm).unwrap();
                assert_eq!(got_x.format(), format, "{what}: format");
                assert_eq!(got_x.device(), dev, "{what}: device");
                assert_eq!(
                    got_x.to_vec_f64().unwrap(),
                    want_x.to_vec_f64().unwrap(),
                    "{what}: images"
                );
                assert_eq!(
                    got_t.to_vec_f64().unwrap(),
                    want_t.to_vec_f64().unwrap(),
                    "{what}: targets"
                );
            }
        }
    }
}

#[test]
fn mixup_rejects_bad_arguments() {
    let (x, t) = (randn(&[3, 1, 2, 2], 3), randn(&[3, 4], 4));
    let err = |r: engine::Result<(Tensor, Tensor)>| r.err().expect("an error").to_string();
    assert!(err(x.mixup(&t, 0.5, &[0, 0, 1])).contains("permutation"));
    assert!(err(x.mixup(&t, 0.5, &[0, 1])).contains("permutation"));
    assert!(err(x.mixup(&t, 1.5, &[0, 1, 2])).contains("lambda"));
    assert!(err(x.mixup(&randn(&[2, 4], 5), 0.5, &[0, 1, 2])).contains("[N, K]"));
}
