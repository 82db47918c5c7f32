//! [`Decimal`]: exact decimal numbers for money. 19.99 stays 19.99; sums never go through
//! binary floating point.

use std::fmt;
use std::str::FromStr;

/// An exact decimal: `mantissa × 10^-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

    /// From parts: `mantissa × 10^-scale`.
    pub fn new(mantissa: i128, scale: u32) -> Decimal {
        Decimal { mantissa, scale }
    }

    /// The mantissa.
    pub fn mantissa(self) -> i128 {
        self.mantissa
    }

    /// The number of digits after the point.
    pub fn scale(self) -> u32 {
        self.scale
    }

    /// Exact sum, or `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let a = self
            .mantissa
            .checked_mul(10i128.checked_pow(scale - self.scale)?)?;
        let b = other
            .mantissa
            .checked_mul(10i128.checked_pow(scale - other.scale)?)?;
        Some(Decimal {
            mantissa: a.checked_add(b)?,
            scale,
        })
    }

    /// From a JSON number, exactly as written (needs serde_json's `arbitrary_precision`).
    pub fn from_json_number(number: &serde_json::Number) -> Result<Decimal, DecimalError> {
        number.to_string().parse()
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
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
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
        while scale < 0 {
            mantissa = mantissa.checked_mul(10).ok_or_else(fail)?;
            scale += 1;
        }
        let scale = u32::try_from(scale).map_err(|_| fail())?;
        if scale > 38 {
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
