//! The `engine` binary end to end on small inputs: `predict --weights` with converted torchvision
//! weights on a PNG the test draws, and the errors for conflicting or missing model sources.

mod common;
use common::{engine, scratch_dir};

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn predict_with_converted_torchvision_weights_prints_named_classes() {
    let dir = scratch_dir("predict");
    let img = dir.join("gradient.png");
    image::RgbImage::from_fn(80, 60, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 4) as u8, 128])
    })
    .save(&img)
    .unwrap();
    let out = engine()
        .args(["predict", "--top", "3", "--weights"])
        .arg(fixture("tiny_resnet50_torchvision.safetensors"))
        .arg(&img)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let names = ["sandal", "shirt", "sneaker", "bag", "ankle boot"];
    for l in &lines[1..] {
        assert!(
            names.iter().any(|n| l.contains(n)) && l.ends_with('%'),
            "{l}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn predict_needs_exactly_one_model_source() {
    let both = engine()
        .args(["predict", "--checkpoint", "a", "--weights", "b", "x.png"])
        .output()
        .unwrap();
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let missing = engine()
        .args([
            "predict",
            "--weights",
            "/nonexistent/w.safetensors",
            "x.png",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("convert_torchvision.py"));
}

#[test]
fn eval_scores_converted_weights_on_a_folder_and_checks_the_class_count() {
    let dir = scratch_dir("eval");
    for (i, class) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        image::RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 7) as u8, (i * 50) as u8])
        })
        .save(dir.join(class).join("img.png"))
        .unwrap();
    }
    let eval = || {
        engine()
            .args(["eval", "--weights"])
            .arg(fixture("tiny_resnet50_torchvision.safetensors"))
            .arg("--val-dir")
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = eval();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("top-1") && stdout.contains("top-5"),
        "{stdout}"
    );
    // Four class folders for a five-class model: refused with both counts named.
    std::fs::remove_dir_all(dir.join("e")).unwrap();
    let out = eval();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("4 class folders") && stderr.contains("5 outputs"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}
