//! Exact decimals: parsing, display with the scale kept, numeric comparison, exact sums.

use std::collections::HashSet;

use spoor_spec::Decimal;

fn d(text: &str) -> Decimal {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

#[test]
fn parses_and_displays_exactly() {
    let cases = [
        ("19.99", "19.99", 1999, 2),
        ("-12.340", "-12.340", -12340, 3),
        ("0.5", "0.5", 5, 1),
        ("-0.05", "-0.05", -5, 2),
        ("100", "100", 100, 0),
        ("1e3", "1000", 1000, 0),
        ("2.5E-2", "0.025", 25, 3),
        ("1.5e+1", "15", 15, 0),
        ("0e999999999", "0", 0, 0),
        ("-0", "0", 0, 0),
        (
            "12345678901234567890.123456789",
            "12345678901234567890.123456789",
            12345678901234567890123456789,
            9,
        ),
        ("1.00000000000000000000000000000000000000000", "1", 1, 0),
    ];
    for (text, shown, mantissa, scale) in cases {
        let value = d(text);
        assert_eq!(value.to_string(), shown, "{text}");
        assert_eq!(
            (value.mantissa(), value.scale()),
            (mantissa, scale),
            "{text}"
        );
    }
}

#[test]
fn refuses_what_it_cannot_hold_exactly() {
    for text in [
        "",
        "-",
        ".",
        "abc",
        "1.2.3",
        "1e",
        "1e1.5",
        "$19.99",
        " 1",
        "1 ",
        "0x10",
        "NaN",
        "inf",
        "1e400",
        "1e-39",
        "123456789012345678901234567890123456789012",
    ] {
        assert!(
            text.parse::<Decimal>().is_err(),
            "{text:?} should be refused"
        );
    }
}

#[test]
fn json_numbers_keep_their_text() {
    let value: serde_json::Value =
        serde_json::from_str(r#"[19.99, 0.1, 1E2, 19.90]"#).expect("json");
    let numbers: Vec<String> = value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| {
            Decimal::from_json_number(v.as_number().expect("number"))
                .expect("decimal")
                .to_string()
        })
        .collect();
    assert_eq!(numbers, ["19.99", "0.1", "100", "19.90"]);
}

#[test]
fn sums_are_exact() {
    let mut total = Decimal::ZERO;
    for _ in 0..10 {
        total = total.checked_add(d("0.1")).expect("no overflow");
    }
    assert_eq!(total, d("1"));
    assert_eq!(total.to_string(), "1.0");
    assert_eq!(
        d("19.99").checked_add(d("0.01")).expect("sum").to_string(),
        "20.00"
    );
    assert_eq!(
        d("19.99")
            .checked_sub(d("20"))
            .expect("difference")
            .to_string(),
        "-0.01"
    );
    assert_eq!(
        d("1.5")
            .checked_mul(d("-0.25"))
            .expect("product")
            .to_string(),
        "-0.375"
    );
    let big = Decimal::new(i128::MAX, 0);
    assert_eq!(big.checked_add(d("1")), None);
    assert_eq!(Decimal::new(i128::MIN, 0).checked_neg(), None);
    assert_eq!(
        d("1.5").checked_add(Decimal::new(1, 38)).map(|s| s.scale()),
        Some(38)
    );
}

#[test]
fn comparison_is_numeric() {
    assert_eq!(d("19.90"), d("19.9"));
    assert_eq!(d("0"), d("-0.000"));
    assert!(d("19.9") < d("19.95"));
    assert!(d("-1") < d("0.001"));
    assert!(d("-2.5") < d("-2.25"));
    assert!(Decimal::new(i128::MAX, 0) > Decimal::new(1, 38));
    assert!(Decimal::new(i128::MIN, 0) < Decimal::new(-1, 38));
    assert!(Decimal::new(2, 0) > Decimal::new(i128::MAX, 38));
    assert!(Decimal::new(1, 0) < Decimal::new(i128::MAX, 38));
    let mut sorted = [d("3"), d("-1.5"), d("2.50"), d("2.5001"), d("0")];
    sorted.sort();
    let shown: Vec<String> = sorted.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["-1.5", "0", "2.50", "2.5001", "3"]);
    let set: HashSet<Decimal> = [d("1.10"), d("1.1"), d("1.100")].into_iter().collect();
    assert_eq!(set.len(), 1);
    assert_eq!(d("19.900").normalized().to_string(), "19.9");
    assert_eq!(d("100").normalized().to_string(), "100");
}

#[test]
fn helpers() {
    assert!(d("0.00").is_zero());
    assert!(d("-0.01").is_negative());
    assert_eq!(Decimal::from(-42i64).to_string(), "-42");
    assert_eq!(d("19.99").to_f64(), 19.99);
    assert_eq!(Decimal::new(5, 99).scale(), 38);
}
