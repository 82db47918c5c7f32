//! The strict timestamp parser and the formatter.

use spoor_spec::Timestamp;

fn nanos(text: &str) -> i64 {
    Timestamp::parse(text)
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
        .unix_nanos()
}

#[test]
fn accepts_strict_iso_8601() {
    let cases: &[(&str, i64)] = &[
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000Z", 0),
        ("1970-01-01t00:00:00z", 0),
        ("1970-01-01T00:00Z", 0),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T00:00:00.123456789Z", 123_456_789),
        ("1970-01-01T00:00:00,25Z", 250_000_000),
        ("1970-01-01T02:00:00+02:00", 0),
        ("1970-01-01T02:00:00+0200", 0),
        ("1969-12-31T19:30:00-04:30", 0),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000_000_000),
        ("2000-02-29T00:00:00Z", 951_782_400_000_000_000),
        ("1969-12-31T23:59:59.999Z", -1_000_000),
        ("2262-04-11T23:47:16.854775807Z", i64::MAX),
        ("1677-09-21T00:12:43.145224192Z", i64::MIN),
        (
            "2024-12-31T23:59:59.999999999+23:59",
            1_735_603_259_999_999_999,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(nanos(text), *want, "{text}");
    }
}

#[test]
fn refuses_anything_a_reader_could_misread() {
    let cases = [
        "",
        "2024",
        "2024-01",
        "2024-01-02",
        "2024-01-02T",
        "2024-01-02T10",
        "2024-01-02T10:00",
        "2024-01-02T10:00:00",
        "2024-01-02T10:00:00.123",
        "2024-01-02 10:00:00Z",
        "2024-01-02_10:00:00Z",
        "24-01-02T10:00:00Z",
        "+2024-01-02T10:00:00Z",
        "-2024-01-02T10:00:00Z",
        "02024-01-02T10:00:00Z",
        "2024-1-02T10:00:00Z",
        "2024-01-2T10:00:00Z",
        "2024-01-02T1:00:00Z",
        "2024-W01-2T10:00:00Z",
        "2024-W01T10:00:00Z",
        "2024-002T10:00:00Z",
        "20240102T100000Z",
        "2024-01-02T100000Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T23:60:00Z",
        "2024-01-02T23:59:60Z",
        "2024-01-02T10:00:00.Z",
        "2024-01-02T10:00:00.1234567890Z",
        "2024-01-02T10:00.5Z",
        "2024-01-02T10:00:00ZZ",
        "2024-01-02T10:00:00Z ",
        " 2024-01-02T10:00:00Z",
        "2024-01-02T10:00:00+2",
        "2024-01-02T10:00:00+02",
        "2024-01-02T10:00:00+02:0",
        "2024-01-02T10:00:00+24:00",
        "2024-01-02T10:00:00+02:60",
        "2024-01-02T10:00:00+02:00:00",
        "2024-01-02T10:00:00 +02:00",
        "2024-01-02T10:00:00UTC",
        "2024-01-02T10:00:00GMT+1",
        "1600-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "Tue, 02 Jan 2024 10:00:00 GMT",
        "1704189600",
        "２０２４-01-02T10:00:00Z",
    ];
    for text in cases {
        assert!(
            Timestamp::parse(text).is_err(),
            "{text:?} should be refused"
        );
    }
}

#[test]
fn error_messages_name_the_rule() {
    let reason = |text: &str| Timestamp::parse(text).expect_err(text).reason;
    assert!(reason("2024-01-02T10:00:00").contains("time zone is required"));
    assert!(reason("2024-01-02").contains("'T' and a time"));
    assert!(reason("2023-02-29T00:00:00Z").contains("does not exist"));
    assert!(reason("1600-01-01T00:00:00Z").contains("out of range"));
}

#[test]
fn dates_are_accepted_where_asked() {
    let birthday = Timestamp::parse_date_or_timestamp("1990-05-17").expect("a date");
    assert_eq!(birthday.to_string(), "1990-05-17T00:00:00.000Z");
    assert!(Timestamp::parse_date_or_timestamp("1990-02-30").is_err());
    assert!(Timestamp::parse_date_or_timestamp("1990-5-17").is_err());
    assert!(Timestamp::parse_date_or_timestamp("17/05/1990").is_err());
    assert!(Timestamp::parse_date_or_timestamp("1990-05-17T10:00:00Z").is_ok());
    assert!(Timestamp::parse_date_or_timestamp("1990-05-17T10:00:00").is_err());
}

#[test]
fn formats_utc_with_milliseconds() {
    let cases = [
        ("2024-01-02T03:04:05.678Z", "2024-01-02T03:04:05.678Z"),
        ("2024-01-02T03:04:05.6789Z", "2024-01-02T03:04:05.678Z"),
        ("2024-01-02T05:04:05+02:00", "2024-01-02T03:04:05.000Z"),
        ("1969-12-31T23:59:59.9995Z", "1969-12-31T23:59:59.999Z"),
        ("2000-03-01T00:00:00Z", "2000-03-01T00:00:00.000Z"),
    ];
    for (input, output) in cases {
        let ts = Timestamp::parse(input).expect("valid");
        assert_eq!(ts.to_string(), output, "{input}");
        assert_eq!(
            Timestamp::parse(output)
                .expect("own output parses")
                .unix_millis(),
            ts.unix_millis()
        );
    }
    assert_eq!(
        Timestamp::from_unix_millis(1_700_000_000_123).to_string(),
        "2023-11-14T22:13:20.123Z"
    );
}

#[test]
fn every_day_of_four_centuries_round_trips() {
    // 1800-01-01 to 2199-12-31: the formatter and the parser agree on every date.
    let start = Timestamp::parse("1800-01-01T00:00:00Z")
        .expect("valid")
        .unix_millis();
    let day = 86_400_000;
    for i in 0..146_097 {
        let ts = Timestamp::from_unix_millis(start + i * day + 12 * 3_600_000 + 1);
        let text = ts.to_string();
        assert_eq!(Timestamp::parse(&text).expect("parses"), ts, "{text}");
    }
}

#[test]
fn arithmetic_saturates() {
    let max = Timestamp::from_unix_nanos(i64::MAX);
    assert_eq!(max.add_nanos(1), max);
    let min = Timestamp::from_unix_nanos(i64::MIN);
    assert_eq!(max.nanos_since(min), i64::MAX);
    assert_eq!(Timestamp::from_unix_millis(i64::MAX).unix_nanos(), i64::MAX);
    // The extremes format to text that parses again.
    for extreme in [max, min] {
        let text = extreme.to_string();
        assert!(Timestamp::parse(&text).is_ok(), "{text}");
    }
    assert_eq!(min.to_string(), "1677-09-21T00:12:43.146Z");
}
