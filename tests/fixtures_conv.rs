//! conv2d and conv_transpose2d against PyTorch fixtures (tools/fixtures/gen_conv.py), forward and
//! gradients w.r.t. input, weight and bias, on every device, in f64, f32 and f16 (f16 is stored f16
//! and computed in f32, compared with the f16 tolerance).

use engine::testing::{test_devices, Fixtures};
use engine::{Conv2dParams, ConvTranspose2dParams, DType};

fn pair(p: &serde_json::Value, key: &str) -> (usize, usize) {
    let v = &p[key];
    let get = |i: usize| v[i].as_u64().unwrap_or_else(|| panic!("param {key}: {v}")) as usize;
    (get(0), get(1))
}

fn check_all(dtypes: &[DType]) {
    let fx = Fixtures::load("conv");
    let cases = fx.cases();
    assert!(cases.len() >= 8, "conv fixtures hold {} cases", cases.len());
    for device in test_devices() {
        for &dtype in dtypes {
            for case in &cases {
                let p = fx.params(case);
                fx.check_case(case, dtype, device, |i| {
                    let (x, w, b) = (&i["x"], &i["weight"], i.get("bias"));
                    let groups = p["groups"].as_u64().expect("groups") as usize;
                    match p["op"].as_str() {
                        Some("conv2d") => x.conv2d(
                            w,
                            b,
                            Conv2dParams {
                                stride: pair(&p, "stride"),
                                padding: pair(&p, "padding"),
                                dilation: pair(&p, "dilation"),
                                groups,
                            },
                        ),
                        Some("conv_transpose2d") => x.conv_transpose2d(
                            w,
                            b,
                            ConvTranspose2dParams {
                                stride: pair(&p, "stride"),
                                padding: pair(&p, "padding"),
                                output_padding: pair(&p, "output_padding"),
                                dilation: pair(&p, "dilation"),
                                groups,
                            },
                        ),
                        other => panic!("{case}: unknown op {other:?}"),
                    }
                });
            }
        }
    }
}

#[test]
fn conv_matches_pytorch_f64_f32() {
    check_all(&[DType::F64, DType::F32]);
}

#[test]
fn conv_matches_pytorch_f16() {
    check_all(&[DType::F16]);
}
