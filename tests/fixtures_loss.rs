//! Softmax, log-softmax, the losses and AdaIN against PyTorch fixtures (tests/fixtures/loss.safetensors,
//! written by tools/fixtures/gen_loss.py), on every device, in f64 and f32: outputs and the gradients
//! PyTorch computed (labels, soft targets and teacher logits are constants).

use engine::testing::{test_devices, Fixtures};
use engine::DType;

#[test]
fn loss_ops_match_pytorch() {
    let fx = Fixtures::load("loss");
    let cases = fx.cases();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            for case in &cases {
                let params = fx.params(case);
                let num = |k: &str| params[k].as_f64().unwrap_or_else(|| panic!("{case}: {k}"));
                fx.check_case(case, dtype, device, |i| {
                    let family = case.split('_').next().unwrap_or("");
                    match family {
                        "softmax" => i["x"].softmax(num("dim") as isize),
                        "log" => i["x"].log_softmax(num("dim") as isize),
                        "cross" if case.starts_with("cross_entropy_soft") => {
                            i["logits"].cross_entropy_soft(&i["targets"])
                        }
                        "cross" => {
                            let labels: Vec<usize> = i["labels"]
                                .to_vec_f64()?
                                .iter()
                                .map(|&v| v as usize)
                                .collect();
                            i["logits"].cross_entropy(&labels, num("smoothing"))
                        }
                        "distillation" => {
                            i["student"].distillation_loss(&i["teacher"], num("temperature"))
                        }
                        "mse" => i["input"].mse_loss(&i["target"]),
                        "l1" => i["input"].l1_loss(&i["target"]),
                        "bce" => i["input"].bce_with_logits(&i["target"]),
                        "adain" => i["content"].adain(&i["style"], num("eps")),
                        _ => panic!("no engine op mapped for fixture case {case}"),
                    }
                });
            }
        }
    }
}
