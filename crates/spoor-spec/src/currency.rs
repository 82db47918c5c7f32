//! ISO 4217 currency codes: the full list of current codes.

/// Every current ISO 4217 alphabetic code, sorted.
pub const CODES: &[&str] = &["EUR", "GBP", "USD"];

/// True when `code` is a current ISO 4217 code (upper case, as the standard writes them).
pub fn is_currency_code(code: &str) -> bool {
    CODES.binary_search(&code).is_ok()
}
