//! ISO 4217 currency codes: the full list of current codes ("List One", with the fund codes
//! and the X codes for metals, special drawing rights, testing and "no currency"), and the
//! codes withdrawn since 2014 with their replacements.
//!
//! The standard writes codes in upper case; [`is_currency_code`] is case-sensitive.
//! [`lookup_ignore_case`] finds the code a lower-case spelling (`usd`, as Stripe writes
//! them) stands for, so validation can warn instead of refusing it (see `docs/SPEC.md`).

/// Every current ISO 4217 alphabetic code, sorted (binary-searchable).
pub const CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD",
    "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF",
    "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
    "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR",
    "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
    "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP",
    "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR",
    "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
    "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN",
    "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH",
    "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF",
    "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF", "XPT",
    "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWG",
];

/// Codes withdrawn from ISO 4217 since 2014, sorted, each with the code that replaced it.
/// Old events (imports, replays) still carry them, so validation only warns.
pub const WITHDRAWN: &[(&str, &str)] = &[
    ("ANG", "XCG"),
    ("BGN", "EUR"),
    ("BYR", "BYN"),
    ("CUC", "CUP"),
    ("HRK", "EUR"),
    ("LTL", "EUR"),
    ("LVL", "EUR"),
    ("MRO", "MRU"),
    ("SLL", "SLE"),
    ("STD", "STN"),
    ("VEF", "VES"),
    ("ZMK", "ZMW"),
    ("ZWL", "ZWG"),
];

/// True when `code` is a current ISO 4217 code (upper case, as the standard writes them).
pub fn is_currency_code(code: &str) -> bool {
    CODES.binary_search(&code).is_ok()
}

/// The code that replaced a withdrawn code (`"HRK"` gives `Some("EUR")`), case-sensitive.
pub fn withdrawn_replacement(code: &str) -> Option<&'static str> {
    WITHDRAWN
        .binary_search_by(|(old, _)| old.cmp(&code))
        .ok()
        .map(|i| WITHDRAWN[i].1)
}

/// The current code `code` spells in another case (`"usd"` gives `Some("USD")`), or `None`
/// when no current code matches.
pub fn lookup_ignore_case(code: &str) -> Option<&'static str> {
    let bytes = code.as_bytes();
    if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let upper = [
        bytes[0].to_ascii_uppercase(),
        bytes[1].to_ascii_uppercase(),
        bytes[2].to_ascii_uppercase(),
    ];
    let upper = std::str::from_utf8(&upper).ok()?;
    CODES.binary_search(&upper).ok().map(|i| CODES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_unique_and_disjoint() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]));
        assert!(WITHDRAWN.windows(2).all(|w| w[0].0 < w[1].0));
        for (old, new) in WITHDRAWN {
            assert!(
                !is_currency_code(old),
                "{old} is both current and withdrawn"
            );
            assert!(
                is_currency_code(new),
                "{new} replaces {old} but is not current"
            );
        }
        assert!(
            CODES
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
        assert!(CODES.len() >= 175, "only {} codes", CODES.len());
    }
}
