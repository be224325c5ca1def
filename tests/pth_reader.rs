//! Runs tools/test_pth_state_dict.py, the tests of the torch-free `.pth` reader and AdaIN weight
//! converter (both torch.save formats built byte by byte, views, dtypes, refusal of foreign pickle
//! globals and of sizes the file cannot hold), so that CI runs them; they need only `python3`.

#[test]
fn torch_free_pth_reader_and_converter_pass_their_tests() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/test_pth_state_dict.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {script}: {e} (install Python 3)"));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert!(text.contains("\nOK"), "{text}");
}
