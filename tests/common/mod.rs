//! What the integration tests share (`mod common;` in each): scratch folders, running the `engine`
//! binary, and stylizer weight files. Not a test target itself (cargo builds only `tests/*.rs`).
//!
//! Invariants: a scratch path is private to one test binary run (the binary's name and the process
//! id are in it) and starts out absent or empty, never holding an earlier run's files.
#![allow(dead_code)] // each test binary uses some of these

use engine::nn::state::save_module;
use engine::stylize::random_stylizer;
use engine::{DType, Device};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `$TMPDIR/engine-test-<binary>-<pid>-<name>`, removed if an earlier run left it; not created.
pub fn fresh_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let binary = exe
        .file_stem()
        .map_or("tests".into(), |s| s.to_string_lossy());
    // Cargo names test binaries `<file>-<hash>`: the file is what identifies the test.
    let binary = binary.rsplit_once('-').map_or(&*binary, |(file, _)| file);
    let path = std::env::temp_dir().join(format!(
        "engine-test-{binary}-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&path);
    path
}

/// [`fresh_path`], created as an empty folder.
pub fn scratch_dir(name: &str) -> PathBuf {
    let path = fresh_path(name);
    std::fs::create_dir_all(&path).expect("create a scratch folder");
    path
}

/// The `engine` binary: `$ENGINE_BIN` when set (the GPU bundle runs test binaries away from the
/// build that made them), else cargo's build of it.
pub fn engine() -> Command {
    Command::new(
        std::env::var_os("ENGINE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_engine").into()),
    )
}

/// Runs `engine ARGS` to the end: (whether it succeeded, stdout, stderr).
pub fn run_engine(args: &[&str]) -> (bool, String, String) {
    let out = engine().args(args).output().expect("run the engine binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a seeded random stylizer of `width` as `DIR/vgg.safetensors` and
/// `DIR/decoder.safetensors` (the files `--vgg` and `--decoder` take), creating DIR.
pub fn save_random_stylizer(dir: &Path, seed: u64, width: usize) {
    std::fs::create_dir_all(dir).expect("create the weights folder");
    let s = random_stylizer(seed, width, DType::F32, Device::Cpu).expect("random stylizer");
    save_module(&dir.join("vgg.safetensors"), &s.encoder, &BTreeMap::new()).expect("save encoder");
    save_module(
        &dir.join("decoder.safetensors"),
        &s.decoder,
        &BTreeMap::new(),
    )
    .expect("save decoder");
}
