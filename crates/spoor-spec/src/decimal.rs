//! [`Decimal`]: exact decimal numbers for money. 19.99 stays 19.99; sums never go through
//! binary floating point.
//!
//! A decimal keeps the scale it was written with: `19.90` displays as `19.90`. Equality,
//! ordering and hashing are numeric (`19.90 == 19.9`); [`Decimal::normalized`] drops trailing
//! zeros when a canonical form is wanted. Mantissas are `i128` (38 significant digits) and the
//! scale is at most 38; anything beyond is refused rather than rounded.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// The largest scale (digits after the point) a [`Decimal`] holds.
pub const MAX_SCALE: u32 = 38;

/// An exact decimal: `mantissa × 10^-scale`.
#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// Why text is not a decimal number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a decimal number: {text:?}")]
pub struct DecimalError {
    /// The text refused.
    pub text: String,
}

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    /// From parts: `mantissa × 10^-scale`. A scale over [`MAX_SCALE`] is clamped to it.
    pub fn new(mantissa: i128, scale: u32) -> Decimal {
        Decimal {
            mantissa,
            scale: scale.min(MAX_SCALE),
        }
    }

    /// The mantissa.
    pub fn mantissa(self) -> i128 {
        self.mantissa
    }

    /// The number of digits after the point.
    pub fn scale(self) -> u32 {
        self.scale
    }

    /// Exact sum, or `None` on overflow. The scale is the larger of the two.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let a = self.rescaled_mantissa(scale)?;
        let b = other.rescaled_mantissa(scale)?;
        Some(Decimal {
            mantissa: a.checked_add(b)?,
            scale,
        })
    }

    /// Exact difference, or `None` on overflow.
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.checked_add(other.checked_neg()?)
    }

    /// Exact product, or `None` on overflow or when the scale would pass [`MAX_SCALE`].
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.checked_add(other.scale)?;
        if scale > MAX_SCALE {
            return None;
        }
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            scale,
        })
    }

    /// The negation, or `None` on overflow.
    pub fn checked_neg(self) -> Option<Decimal> {
        Some(Decimal {
            mantissa: self.mantissa.checked_neg()?,
            scale: self.scale,
        })
    }

    /// True for zero (at any scale).
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// True below zero.
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// The same number without trailing zeros after the point: `19.90` becomes `19.9`,
    /// `100` stays `100`.
    pub fn normalized(self) -> Decimal {
        let mut d = self;
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// The nearest `f64`, for display or statistics only (never for sums of money).
    pub fn to_f64(self) -> f64 {
        // The text form is exact, and Rust's float parsing rounds correctly.
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// From a JSON number, exactly as written (needs serde_json's `arbitrary_precision`).
    pub fn from_json_number(number: &serde_json::Number) -> Result<Decimal, DecimalError> {
        number.as_str().parse()
    }

    /// The mantissa at a larger or equal scale, or `None` on overflow.
    fn rescaled_mantissa(self, scale: u32) -> Option<i128> {
        let factor = 10i128.checked_pow(scale.checked_sub(self.scale)?)?;
        self.mantissa.checked_mul(factor)
    }
}

impl From<i64> for Decimal {
    fn from(value: i64) -> Decimal {
        Decimal {
            mantissa: i128::from(value),
            scale: 0,
        }
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let d = self.normalized();
        d.mantissa.hash(state);
        d.scale.hash(state);
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    /// Numeric order: `19.9 < 19.95 < 20`.
    fn cmp(&self, other: &Decimal) -> Ordering {
        let sign = |m: i128| m.signum();
        match sign(self.mantissa).cmp(&sign(other.mantissa)) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
        let scale = self.scale.max(other.scale);
        match (
            self.rescaled_mantissa(scale),
            other.rescaled_mantissa(scale),
        ) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Rescaling overflows only for the side with the larger magnitude, and both
            // sides have the same sign here.
            (None, _) => {
                if self.mantissa < 0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (_, None) => {
                if other.mantissa < 0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
        }
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    /// Parses `-12.340`, `19.99`, `1e3`, `2.5E-2`.
    fn from_str(text: &str) -> Result<Decimal, DecimalError> {
        let fail = || DecimalError {
            text: text.to_owned(),
        };
        let (number, exponent) = match text.find(['e', 'E']) {
            Some(i) => (
                &text[..i],
                text[i + 1..].parse::<i32>().map_err(|_| fail())?,
            ),
            None => (text, 0),
        };
        let (negative, digits) = match number.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, number.strip_prefix('+').unwrap_or(number)),
        };
        let (int_part, mut frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        let significant = int_part
            .bytes()
            .chain(frac_part.bytes())
            .skip_while(|b| *b == b'0')
            .count();
        if significant > 38 {
            // Trailing zeros after the point carry no value; drop them before giving up.
            frac_part = frac_part.trim_end_matches('0');
        }
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part
                .bytes()
                .chain(frac_part.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(fail());
        }
        let mut mantissa: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or_else(fail)?;
        }
        let mut scale = frac_part.len() as i64 - i64::from(exponent);
        if mantissa == 0 {
            // Zero at any exponent is zero; never loop over a huge exponent.
            scale = scale.clamp(0, i64::from(MAX_SCALE));
        }
        while scale < 0 {
            mantissa = mantissa.checked_mul(10).ok_or_else(fail)?;
            scale += 1;
        }
        let scale = u32::try_from(scale).map_err(|_| fail())?;
        if scale > MAX_SCALE {
            return Err(fail());
        }
        Ok(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }
}

impl fmt::Display for Decimal {
    /// Plain notation with the decimal's own scale: `19.99`, `-0.50`, `100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int_part, frac_part) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int_part}.{frac_part}")
    }
}
