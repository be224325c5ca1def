//! Element types. Tensors store f16, f32 or f64. CPU kernels compute in `Float` types only (f32, f64):
//! f16 storage is widened to f32 before a kernel runs and rounded back after, so that an f16 run on the
//! CPU sees the same storage rounding a GPU run does. f64 exists for finite-difference gradient checks.

use half::f16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    F16,
    F32,
    F64,
}

impl DType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "f16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A type a tensor can store.
pub trait Element: bytemuck::Pod + Copy + Send + Sync + std::fmt::Debug + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}
impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// A type CPU kernels compute in (f32 or f64).
pub trait Float:
    Element
    + num_traits::Float
    + num_traits::FromPrimitive
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + Default
{
    /// Converts a literal; exact for the small constants kernels use.
    fn c(v: f64) -> Self {
        <Self as Element>::from_f64(v)
    }
}
impl Float for f32 {}
impl Float for f64 {}
