//! ISO 4217: the full current list, withdrawn codes, case.

use spoor_spec::currency::{CODES, is_currency_code, lookup_ignore_case, withdrawn_replacement};

#[test]
fn the_full_current_list() {
    assert!(CODES.len() >= 175, "{} codes", CODES.len());
    for code in [
        "USD", "EUR", "GBP", "JPY", "CHF", "CNY", "INR", "BRL", "ZAR", "XAU", "XDR", "XXX", "CLF",
        "BOV", "USN", "UYW", "VED", "VES", "SLE", "STN", "MRU", "ZWG", "XCG", "BYN", "SSP",
    ] {
        assert!(is_currency_code(code), "{code} is current");
    }
    for code in [
        "usd", "US", "USDT", "BTC", "ABC", "", "HRK", "VEF", "ZWL", "SLL", "XBT",
    ] {
        assert!(!is_currency_code(code), "{code} is not current");
    }
}

#[test]
fn withdrawn_and_case() {
    assert_eq!(withdrawn_replacement("HRK"), Some("EUR"));
    assert_eq!(withdrawn_replacement("SLL"), Some("SLE"));
    assert_eq!(withdrawn_replacement("USD"), None);
    assert_eq!(lookup_ignore_case("usd"), Some("USD"));
    assert_eq!(lookup_ignore_case("Eur"), Some("EUR"));
    assert_eq!(lookup_ignore_case("abc"), None);
    assert_eq!(lookup_ignore_case("€€€"), None);
    assert_eq!(lookup_ignore_case("us"), None);
}
