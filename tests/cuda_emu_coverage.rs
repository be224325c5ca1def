#![cfg(feature = "cuda-emu")]
//! Every kernel of `cuda/*.cu` has an emulator test: each name in the emulator's kernel table
//! (`kernel_names()`, built from the `extern "C"` kernels of every `.cu` file) starts with one of the
//! prefixes below, and each prefix names the `tests/cuda_emu_*.rs` file that launches its kernels
//! against the CPU backend. A kernel added to a `.cu` file without a test fails here, named, until
//! its prefix and test are added.
//!
//! Invariants checked: every kernel matches exactly one prefix; every prefix still matches a kernel
//! (a renamed family shows up here); every listed file exists and mentions its prefix (trimmed of
//! the trailing `_`: kernel names are built with `format!`).

use std::path::Path;

use engine::backend::cuda_emu::kernel_names;

/// (kernel-name prefix, the test file covering the kernels with that prefix), as those files'
/// cases (and their own family-coverage tests) launch them.
const COVERAGE: &[(&str, &str)] = &[
    // cuda/batch_norm.cu
    ("bn_", "tests/cuda_emu_batch_norm.rs"),
    // cuda/sgd.cu, cuda/adam.cu
    ("sgd_step_", "tests/cuda_emu_optim_kernels.rs"),
    ("all_finite", "tests/cuda_emu_optim_kernels.rs"),
    ("multi_tensor_", "tests/cuda_emu_optimizers_fused.rs"),
    ("adam_step_", "tests/cuda_emu_optim_kernels.rs"),
    // cuda/adain.cu, cuda/reduce.cu
    ("plane_stat_", "tests/cuda_emu_adain_reduce.rs"),
    ("style_stats_", "tests/cuda_emu_adain_reduce.rs"),
    ("adain_", "tests/cuda_emu_adain_reduce.rs"),
    ("sum_thread_", "tests/cuda_emu_adain_reduce.rs"),
    ("sum_block_", "tests/cuda_emu_adain_reduce.rs"),
    // cuda/pool.cu
    ("max_pool2d_", "tests/cuda_emu_pool.rs"),
    ("avg_pool2d_", "tests/cuda_emu_pool.rs"),
    ("global_avg_pool_", "tests/cuda_emu_pool.rs"),
    // cuda/resize.cu, cuda/dropout.cu, cuda/conv.cu
    (
        "upsample_nearest2d_",
        "tests/cuda_emu_resize_dropout_conv.rs",
    ),
    ("pad2d_", "tests/cuda_emu_resize_dropout_conv.rs"),
    ("mask_scale_", "tests/cuda_emu_resize_dropout_conv.rs"),
    // cuda/mixup.cu
    ("mixup_", "tests/cuda_emu_mixup.rs"),
    ("conv_fill_bias_", "tests/cuda_emu_resize_dropout_conv.rs"),
    ("conv_bias_grad_", "tests/cuda_emu_resize_dropout_conv.rs"),
    ("conv_window_", "tests/cuda_emu_resize_dropout_conv.rs"),
    // cuda/softmax.cu, cuda/loss.cu
    ("softmax_", "tests/cuda_emu_softmax_loss.rs"),
    ("ce_soft_", "tests/cuda_emu_softmax_loss.rs"),
    ("distill_", "tests/cuda_emu_softmax_loss.rs"),
    ("pair_", "tests/cuda_emu_softmax_loss.rs"),
    ("mean_finish_", "tests/cuda_emu_softmax_loss.rs"),
    // cuda/elementwise.cu, cuda/layout.cu
    ("unary_", "tests/cuda_emu_elementwise.rs"),
    ("binary_contig_", "tests/cuda_emu_elementwise.rs"),
    ("binary_strided_", "tests/cuda_emu_elementwise.rs"),
    ("cast_", "tests/cuda_emu_layout.rs"),
    ("copy2d_", "tests/cuda_emu_layout.rs"),
    ("strided_copy_", "tests/cuda_emu_layout.rs"),
];

#[test]
fn every_kernel_has_an_emulator_test() {
    let names = kernel_names();
    assert!(!names.is_empty(), "the emulator's kernel table is empty");
    let mut uncovered = Vec::new();
    for name in &names {
        let matches: Vec<&(&str, &str)> = COVERAGE
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix))
            .collect();
        match matches.len() {
            0 => uncovered.push(name.as_str()),
            1 => {}
            _ => panic!("kernel {name} matches several prefixes: {matches:?}"),
        }
    }
    assert!(
        uncovered.is_empty(),
        "kernels with no emulator test (add cases to a tests/cuda_emu_*.rs file and the prefix to \
         COVERAGE in tests/cuda_emu_coverage.rs): {uncovered:?}"
    );
}

#[test]
fn every_prefix_names_kernels_and_an_existing_test_file() {
    let names = kernel_names();
    for &(prefix, file) in COVERAGE {
        assert!(
            names.iter().any(|k| k.starts_with(prefix)),
            "prefix {prefix:?} ({file}) matches no kernel: renamed?"
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{file}, named for prefix {prefix:?}: {e}"));
        let stem = prefix.trim_end_matches('_');
        assert!(
            text.contains(stem),
            "{file}, named for prefix {prefix:?}, never mentions {stem:?}"
        );
    }
}
