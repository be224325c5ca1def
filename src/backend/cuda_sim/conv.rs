//! The convolution launchers on the simulated device: `launch.rs` of the CUDA backend itself (input
//! checks, output windowing for sizes other than cuDNN's formula, the bias fill and bias-gradient
//! kernels in the emulator), over a CPU stand-in for the one cuDNN call, [`convolve`].
//!
//! The stand-in keeps cuDNN's contract as `run.rs` uses it: the output is at the formula size of
//! `cg` (not the geometry's `ho`/`wo`); with a bias, the output is first filled with it by the
//! `conv_fill_bias_*` kernel and the convolution is added onto it (beta = 1), summed in the compute
//! type (f32 for f16 and f32, f64 for f64) and rounded once; the filter gradient takes no bias.

// The descriptor fields of `CuGeom` (n, cin_g, kh, …) are read only by the CUDA backend's cuDNN
// descriptors.
#[allow(dead_code)]
#[path = "../cuda/conv/geom.rs"]
mod geom;
#[path = "../cuda/conv/launch.rs"]
mod launch;

use super::{CudaStorage, Gpu};
use crate::backend::cpu::{self, CpuStorage};
use crate::backend::kernel_abi::acc_dtype;
use crate::ops::conv::{Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dForward, Conv2dGeometry};
use crate::{Error, Result};
use geom::{CuGeom, Format, Kind};
use launch::fill_bias;

/// One "cuDNN" convolution of `kind` at cuDNN's output size `cg` (operand roles as in `run.rs`:
/// Forward a = x, b = w, out = y; BackwardData a = w, b = dy, out = dx; BackwardFilter a = x,
/// b = dy, out = dw), computed by the CPU kernel on host copies.
#[allow(clippy::too_many_arguments)]
fn convolve(
    g: &Gpu,
    op: &'static str,
    kind: Kind,
    format: Format,
    geom: &Conv2dGeometry,
    cg: &CuGeom,
    a: &CudaStorage,
    b: &CudaStorage,
    out: &mut CudaStorage,
    bias: Option<&CudaStorage>,
) -> Result<()> {
    // cuDNN's view: the geometry at the formula's output size.
    let full = Conv2dGeometry {
        ho: cg.ho as usize,
        wo: cg.wo as usize,
        ..*geom
    };
    let dtype = out.dtype();
    let acc = acc_dtype(dtype);
    // The CPU kernels take the same layout flag (NHWC operands, KRSC filter).
    let channels_last = format == Format::Nhwc;
    let (ha, hb) = (a.to_cpu_uncounted(), b.to_cpu_uncounted());
    let result = match kind {
        Kind::Forward => cpu::run(
            &Conv2dForward {
                geom: full,
                has_bias: false,
                channels_last,
            },
            &[&ha, &hb],
            &[acc],
        ),
        Kind::BackwardData => cpu::run(
            &Conv2dBackwardInput {
                geom: full,
                has_bias: false,
                channels_last,
            },
            &[&hb, &ha],
            &[acc],
        ),
        Kind::BackwardFilter => cpu::run(
            &Conv2dBackwardWeight {
                geom: full,
                channels_last,
            },
            &[&ha, &hb],
            &[acc],
        ),
    }?
    .remove(0);
    if result.len() != out.len() {
        return Err(Error::bad(
            op,
            format!(
                "cuda-sim: the {kind:?} convolution gives {} elements, the output buffer holds {}",
                result.len(),
                out.len()
            ),
        ));
    }
    let sum = match bias {
        None => result,
        Some(bias) => {
            let Some((c, plane)) = cg.bias_layout(kind, format) else {
                return Err(Error::bad(op, "the filter gradient takes no bias"));
            };
            fill_bias(g, op, bias, out, c, plane)?;
            let filled = out.to_cpu_uncounted().to_dtype(acc);
            let added: Vec<f64> = filled
                .to_vec::<f64>()
                .iter()
                .zip(result.to_vec::<f64>())
                .map(|(f, r)| f + r)
                .collect();
            CpuStorage::from_vec(added).to_dtype(acc)
        }
    };
    out.overwrite(&sum.to_dtype(dtype))
}
