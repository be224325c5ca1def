//! The CPU half of the backend seam: host storage and the runner that widens f16 to f32, calls a
//! kernel's generic `run::<T>` and rounds outputs to the requested dtypes. Kernels themselves live
//! beside their op in `src/ops/`; they are multithreaded with rayon where the work is large.

use crate::dtype::{DType, Element, Float};
use crate::{Error, Result};
use half::f16;
use std::borrow::Cow;

#[derive(Clone, Debug)]
pub enum CpuStorage {
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F16(v) => v.len(),
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn from_vec<T: Element>(v: Vec<T>) -> CpuStorage {
        match T::DTYPE {
            DType::F16 => CpuStorage::F16(bytemuck::cast_vec(v)),
            DType::F32 => CpuStorage::F32(bytemuck::cast_vec(v)),
            DType::F64 => CpuStorage::F64(bytemuck::cast_vec(v)),
        }
    }
    /// Values converted to `T` (a copy).
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        fn conv<S: Element, T: Element>(v: &[S]) -> Vec<T> {
            if S::DTYPE == T::DTYPE {
                bytemuck::cast_slice::<S, T>(v).to_vec()
            } else {
                v.iter().map(|x| T::from_f64(x.to_f64())).collect()
            }
        }
        match self {
            CpuStorage::F16(v) => conv(v),
            CpuStorage::F32(v) => conv(v),
            CpuStorage::F64(v) => conv(v),
        }
    }
    pub fn to_dtype(&self, dtype: DType) -> CpuStorage {
        if dtype == self.dtype() {
            return self.clone();
        }
        match dtype {
            DType::F16 => CpuStorage::F16(self.to_vec()),
            DType::F32 => CpuStorage::F32(self.to_vec()),
            DType::F64 => CpuStorage::F64(self.to_vec()),
        }
    }
    /// Raw little-endian bytes (for safetensors).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F64(v) => bytemuck::cast_slice(v),
        }
    }
    fn widen_f32(&self) -> Cow<'_, [f32]> {
        match self {
            CpuStorage::F32(v) => Cow::Borrowed(v),
            CpuStorage::F16(v) => Cow::Owned(widen(v)),
            CpuStorage::F64(_) => unreachable!("f64 inputs are computed in f64"),
        }
    }
}

/// f16 → f32, in parallel for big buffers.
pub fn widen(v: &[f16]) -> Vec<f32> {
    use rayon::prelude::*;
    if v.len() > 1 << 16 {
        v.par_iter().map(|x| x.to_f32()).collect()
    } else {
        v.iter().map(|x| x.to_f32()).collect()
    }
}

/// f32 → f16 (round to nearest even), in parallel for big buffers.
pub fn narrow(v: &[f32]) -> Vec<f16> {
    use rayon::prelude::*;
    if v.len() > 1 << 16 {
        v.par_iter().map(|&x| f16::from_f32(x)).collect()
    } else {
        v.iter().map(|&x| f16::from_f32(x)).collect()
    }
}

/// The CPU implementation of an op. `run` receives the inputs, widened to the compute type `T` (f64
/// when any input is f64, else f32), in the order the op passed them, and returns one buffer per
/// output; the runner then converts each output to the dtype the op asked for.
pub trait CpuKernel: Sync {
    /// The op's name, used in every error message.
    const NAME: &'static str;
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>>;
}

pub fn run<K: CpuKernel>(
    kernel: &K,
    inputs: &[&CpuStorage],
    out_dtypes: &[DType],
) -> Result<Vec<CpuStorage>> {
    if super::cpu_profile::enabled() {
        let start = std::time::Instant::now();
        let outs = run_untimed(kernel, inputs, out_dtypes);
        super::cpu_profile::record(K::NAME, start.elapsed());
        return outs;
    }
    run_untimed(kernel, inputs, out_dtypes)
}

fn run_untimed<K: CpuKernel>(
    kernel: &K,
    inputs: &[&CpuStorage],
    out_dtypes: &[DType],
) -> Result<Vec<CpuStorage>> {
    let any_f64 = inputs.iter().any(|s| s.dtype() == DType::F64);
    let outs: Vec<CpuStorage> = if any_f64 {
        let mut xs = Vec::with_capacity(inputs.len());
        for s in inputs {
            match s {
                CpuStorage::F64(v) => xs.push(v.as_slice()),
                other => {
                    return Err(Error::DType {
                        op: K::NAME,
                        msg: format!(
                            "an f64 computation got an {} input; cast all inputs to f64",
                            other.dtype()
                        ),
                    })
                }
            }
        }
        kernel
            .run::<f64>(&xs)?
            .into_iter()
            .map(CpuStorage::F64)
            .collect()
    } else {
        let widened: Vec<Cow<'_, [f32]>> = inputs.iter().map(|s| s.widen_f32()).collect();
        let xs: Vec<&[f32]> = widened.iter().map(|c| c.as_ref()).collect();
        kernel
            .run::<f32>(&xs)?
            .into_iter()
            .map(CpuStorage::F32)
            .collect()
    };
    if outs.len() != out_dtypes.len() {
        return Err(Error::bad(
            K::NAME,
            format!(
                "kernel returned {} outputs, op expected {}",
                outs.len(),
                out_dtypes.len()
            ),
        ));
    }
    let outs = outs
        .into_iter()
        .zip(out_dtypes)
        .map(|(s, &dt)| match (s, dt) {
            (CpuStorage::F32(v), DType::F16) => CpuStorage::F16(narrow(&v)),
            (s, dt) if s.dtype() == dt => s,
            (s, dt) => s.to_dtype(dt),
        })
        .collect();
    Ok(outs)
}
