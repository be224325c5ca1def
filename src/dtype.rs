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

/// f64 → f16 rounded once, to nearest even, like CUDA's `__double2half` (cuda/layout.cu's cast).
/// half's `f16::from_f64` rounds twice on CPUs with F16C (through f32), and its software path drops
/// the low 32 mantissa bits before rounding; both turn 1 + 2⁻¹¹ + 2⁻⁴⁰ into 1.0 instead of
/// 1 + 2⁻¹⁰. Here the f32 step rounds to *odd* (truncate, then set the last bit if anything was
/// dropped), which keeps the information the second rounding needs: with f32's 24 bits ≥ f16's 11 + 2,
/// rounding to odd first and to nearest second equals one rounding to nearest (Boldo & Melquiond).
pub fn f64_to_f16(v: f64) -> f16 {
    f16::from_f32(f64_to_f32_round_to_odd(v))
}

fn f64_to_f32_round_to_odd(v: f64) -> f32 {
    let nearest = v as f32;
    if !v.is_finite() || nearest as f64 == v {
        return nearest;
    }
    // Toward zero: one step down in magnitude when rounding went up (bit patterns are sign-magnitude;
    // an overflow to ±inf steps back to ±MAX).
    let truncated = if (nearest as f64).abs() > v.abs() {
        f32::from_bits(nearest.to_bits() - 1)
    } else {
        nearest
    };
    f32::from_bits(truncated.to_bits() | 1)
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
        f64_to_f16(v)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The f16 nearest to `x` (ties to even) by exhaustive search over neighbours, in f64.
    fn nearest_f16(x: f64) -> f16 {
        let m = x.abs();
        let bits = if m >= 65520.0 {
            0x7C00
        } else {
            let mut best = 0u16;
            let mut best_d = f64::INFINITY;
            let guess = f16::from_f32(m as f32).to_bits().min(0x7BFF);
            for c in guess.saturating_sub(2)..=(guess + 2).min(0x7BFF) {
                let d = (f16::from_bits(c).to_f64() - m).abs();
                if d < best_d || (d == best_d && c % 2 == 0) {
                    best = c;
                    best_d = d;
                }
            }
            best
        };
        f16::from_bits(bits | if x.is_sign_negative() { 0x8000 } else { 0 })
    }

    #[test]
    fn f64_to_f16_rounds_once() {
        // Just above a tie: one rounding goes up, rounding through f32 lands on the tie and goes down.
        let probe = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        assert_eq!(f64_to_f16(probe).to_f64(), 1.0 + 2f64.powi(-10));
        assert_eq!(f64_to_f16(-probe).to_f64(), -(1.0 + 2f64.powi(-10)));
        // Exact ties still go to even; specials pass through.
        assert_eq!(f64_to_f16(1.0 + 2f64.powi(-11)).to_f64(), 1.0);
        assert_eq!(f64_to_f16(65520.0), f16::INFINITY);
        assert_eq!(f64_to_f16(65519.99), f16::MAX);
        assert_eq!(f64_to_f16(1e300), f16::INFINITY);
        assert!(f64_to_f16(f64::NAN).is_nan());
        assert_eq!(f64_to_f16(-0.0).to_bits(), 0x8000);
        assert_eq!(f64_to_f16(1e-300).to_bits(), 0);
        // Seeded values from f16 subnormals to overflow, with the f64 tails that expose a double
        // rounding (values within 2⁻³⁰ of an f16 tie).
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let h = f16::from_bits((state % 0x7BFF) as u16).to_f64();
            let next = f16::from_bits((state % 0x7BFF) as u16 + 1).to_f64();
            let tie = (h + next) / 2.0;
            let x = match i % 3 {
                0 => tie + tie * 2f64.powi(-40),
                1 => tie - tie * 2f64.powi(-40),
                _ => h + (next - h) * ((state >> 20) as f64 / (1u64 << 44) as f64),
            };
            let x = if state & 1 == 1 { -x } else { x };
            assert_eq!(
                f64_to_f16(x).to_bits(),
                nearest_f16(x).to_bits(),
                "x = {x:e} (bits {:#018x})",
                x.to_bits()
            );
        }
    }
}
