//! Safetensors state files: a module saves and loads back bit for bit (f16, f32 and f64), files are
//! written atomically, and loading a file that does not fit the model lists every missing,
//! unexpected and mis-shaped tensor by name and shape.

use engine::models::{ResNet, ResNetConfig, Variant};
use engine::nn::init::Init;
use engine::nn::state::{load_module, load_tensors, save_module, save_tensors};
use engine::nn::{named_params, Module};
use engine::{DType, Device, Tensor};
use std::collections::BTreeMap;

fn model(width: usize, dtype: DType, seed: u64) -> ResNet {
    let cfg = ResNetConfig {
        depth: 18,
        variant: Variant::B,
        preact: false,
        zero_gamma: false,
        small_input: true,
        in_channels: 1,
        num_classes: 10,
        width,
    };
    ResNet::new(cfg, &mut Init::new(seed, dtype, Device::Cpu)).unwrap()
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("engine-state-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn module_round_trips_in_every_dtype() {
    for dtype in [DType::F16, DType::F32, DType::F64] {
        let path = dir("roundtrip").join(format!("m-{dtype}.safetensors"));
        let a = model(4, dtype, 1);
        let mut meta = BTreeMap::new();
        meta.insert("note".to_string(), "hello".to_string());
        save_module(&path, &a, &meta).unwrap();
        let b = model(4, dtype, 2);
        let got = load_module(&path, &b, true).unwrap();
        assert_eq!(got["note"], "hello");
        for ((na, pa), (_, pb)) in named_params(&a).into_iter().zip(named_params(&b)) {
            assert_eq!(pa.tensor.dtype(), pb.tensor.dtype());
            assert_eq!(
                pa.tensor.to_vec::<f64>().unwrap(),
                pb.tensor.to_vec::<f64>().unwrap(),
                "{na} ({dtype})"
            );
        }
        assert!(
            !std::fs::read_dir(path.parent().unwrap()).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp")),
            "no temporary files left behind"
        );
    }
}

#[test]
fn loading_converts_dtypes() {
    let path = dir("convert").join("f32.safetensors");
    save_module(&path, &model(4, DType::F32, 3), &BTreeMap::new()).unwrap();
    let h = model(4, DType::F16, 4);
    load_module(&path, &h, true).unwrap();
    let w = &named_params(&h)[0].1.tensor;
    assert_eq!(w.dtype(), DType::F16);
    let (file, _) = load_tensors(&path, Device::Cpu).unwrap();
    let want = file["conv1.weight"].to_vec::<f32>().unwrap();
    let got = w.to_vec::<f32>().unwrap();
    assert!(want
        .iter()
        .zip(&got)
        .all(|(a, b)| (a - b).abs() <= 1e-3 * a.abs().max(1e-2)));
}

#[test]
fn mismatched_files_are_reported_by_name_and_shape() {
    let d = dir("mismatch");
    // Another width: every conv is mis-shaped.
    let path = d.join("w8.safetensors");
    save_module(&path, &model(8, DType::F32, 5), &BTreeMap::new()).unwrap();
    let err = load_module(&path, &model(4, DType::F32, 6), true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv1.weight: file has shape [8, 1, 3, 3], model expects [4, 1, 3, 3]"),
        "{err}"
    );
    // A file missing one tensor and holding an extra one.
    let m = model(4, DType::F32, 7);
    let mut named: Vec<(String, Tensor)> = named_params(&m)
        .into_iter()
        .map(|(n, p)| (n, p.tensor))
        .filter(|(n, _)| n != "fc.bias")
        .collect();
    named.push((
        "head.extra".into(),
        Tensor::zeros(vec![3], DType::F32, Device::Cpu).unwrap(),
    ));
    let path = d.join("partial.safetensors");
    save_tensors(&path, &named, &BTreeMap::new()).unwrap();
    let err = load_module(&path, &model(4, DType::F32, 8), true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing fc.bias (expected shape [10])")
            && err.contains("unexpected head.extra"),
        "{err}"
    );
    // Non-strict loading ignores the extra tensor but still needs every parameter.
    let err = load_module(&path, &model(4, DType::F32, 8), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing fc.bias") && !err.contains("head.extra"),
        "{err}"
    );
    // Not a safetensors file at all, and a missing file.
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"definitely not safetensors").unwrap();
    assert!(load_module(&junk, &m, true)
        .unwrap_err()
        .to_string()
        .contains("not a safetensors file"));
    assert!(load_module(&d.join("absent.safetensors"), &m, true)
        .unwrap_err()
        .to_string()
        .contains("absent.safetensors"));
}

#[test]
fn forward_is_unchanged_after_a_round_trip() {
    let path = dir("forward").join("m.safetensors");
    let a = model(4, DType::F32, 9);
    save_module(&path, &a, &BTreeMap::new()).unwrap();
    let b = model(4, DType::F32, 10);
    load_module(&path, &b, true).unwrap();
    let x = Tensor::randn(vec![2, 1, 28, 28], 0.0, 1.0, 11, DType::F32, Device::Cpu).unwrap();
    let ya = a
        .forward(&x, engine::nn::Mode::EVAL)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let yb = b
        .forward(&x, engine::nn::Mode::EVAL)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(ya, yb);
}

#[test]
fn metadata_is_read_from_the_header_alone() {
    let d = dir("meta");
    let path = d.join("m.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("run".to_string(), "{\"epoch\":3}".to_string());
    save_module(&path, &model(4, DType::F32, 12), &meta).unwrap();
    let (_, full) = load_tensors(&path, Device::Cpu).unwrap();
    assert_eq!(engine::nn::state::read_metadata(&path).unwrap(), full);
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, [0xffu8; 16]).unwrap();
    assert!(engine::nn::state::read_metadata(&junk)
        .unwrap_err()
        .to_string()
        .contains("not a safetensors file"));
}
