//! Elementwise, reduction, matmul and layout ops against PyTorch fixtures, on every device, in f64
//! and f32.

use engine::testing::{test_devices, Fixtures};
use engine::{DType, Tensor, UnaryOp};

#[test]
fn elementwise_ops_match_pytorch() {
    let fx = Fixtures::load("elementwise");
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            for case in fx.cases() {
                fx.check_case(&case, dtype, device, |i| {
                    let x = || &i["x"];
                    let (a, b) = (|| &i["a"], || &i["b"]);
                    match case.as_str() {
                        "relu" => x().relu(),
                        "tanh" => x().tanh(),
                        "sigmoid" => x().sigmoid(),
                        "exp" => x().exp(),
                        "leaky_relu" => x().unary(UnaryOp::LeakyRelu(0.2)),
                        "log" => x().log(),
                        "sqrt" => x().sqrt(),
                        "add_bcast" => a().add(b()),
                        "mul_bcast" => a().mul(b()),
                        "div_bcast" => a().div(b()),
                        "sub_bcast" => a().sub(b()),
                        "sum_dims" => x().sum_dims(&[0, 2, 3], true),
                        "mean_last" => x().mean_dims(&[-1], false),
                        "matmul" | "matmul_batched" => a().matmul(b()),
                        "linear" => x().linear(&i["weight"], Some(&i["bias"])),
                        "permute" => x().permute(&[0, 2, 3, 1]),
                        "concat" => Tensor::concat(&[a(), b()], 1),
                        "narrow" => x().narrow(1, 1, 2),
                        other => panic!("no engine op mapped for fixture case {other}"),
                    }
                });
            }
        }
    }
}
