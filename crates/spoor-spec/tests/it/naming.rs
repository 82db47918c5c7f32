//! Warehouse naming: the full go-snakecase test table, the reference's examples, and
//! flattening.

use spoor_spec::naming::{flatten, snake_case};

use crate::util::json;

/// segmentio/go-snakecase `snake_test.go`, every vector.
const GO_SNAKECASE: &[(&str, &str)] = &[
    ("sample text", "sample_text"),
    ("sample-text", "sample_text"),
    ("sample_text", "sample_text"),
    ("sample___text", "sample_text"),
    ("sampleText", "sample_text"),
    (
        "inviteYourCustomersAddInvites",
        "invite_your_customers_add_invites",
    ),
    ("sample 2 Text", "sample_2_text"),
    ("   sample   2    Text   ", "sample_2_text"),
    ("   $#$sample   2    Text   ", "sample_2_text"),
    ("SAMPLE 2 TEXT", "sample_2_text"),
    ("___$$Base64Encode", "base64_encode"),
    ("FOO:BAR$BAZ", "foo_bar_baz"),
    ("FOO#BAR#BAZ", "foo_bar_baz"),
    ("something.com", "something_com"),
    ("$something%", "something"),
    ("something.com", "something_com"),
    ("•¶§ƒ˚foo˙∆˚¬", "foo"),
    ("CStringRef", "cstring_ref"),
];

/// Cases that pin the port to go-snakecase's byte-level rules beyond its own table.
const MORE: &[(&str, &str)] = &[
    ("Order Completed", "order_completed"),
    ("accountType", "account_type"),
    ("userId", "user_id"),
    ("receivedAt", "received_at"),
    ("already_snake_2", "already_snake_2"),
    ("HTTPResponse", "httpresponse"),
    ("getHTTPResponse", "get_httpresponse"),
    ("123Abc", "123abc"),
    ("foo_1Bar", "foo_1bar"),
    ("version2Beta", "version2_beta"),
    ("_private", "private"),
    ("trailing_", "trailing"),
    ("a_B", "a_b"),
    ("Ünïcödé key", "n_c_d_key"),
    ("", ""),
    ("$$$", ""),
];

#[test]
fn go_snakecase_vectors() {
    for (input, want) in GO_SNAKECASE.iter().chain(MORE) {
        assert_eq!(snake_case(input), *want, "snake_case({input:?})");
    }
}

#[test]
fn output_is_always_snake_and_stable() {
    for (input, _) in GO_SNAKECASE.iter().chain(MORE) {
        let once = snake_case(input);
        assert!(
            once.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{once:?}"
        );
        assert!(!once.starts_with('_') && !once.ends_with('_') && !once.contains("__"));
        assert_eq!(snake_case(&once), once, "idempotent on {input:?}");
    }
}

#[test]
fn flatten_joins_nested_keys_with_underscores() {
    let context = json(
        r#"{"app":{"version":"1.2","buildNumber":7},"ip":"1.2.3.4","page":{"url":"u"},"list":[1,2],"$$":1,"deep":{"a":{"B c":true}}}"#,
    );
    let flat: Vec<(String, String)> = flatten("context", context.as_object().expect("object"))
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    let want = [
        ("context_app_version", r#""1.2""#),
        ("context_app_build_number", "7"),
        ("context_ip", r#""1.2.3.4""#),
        ("context_page_url", r#""u""#),
        ("context_list", "[1,2]"),
        ("context_deep_a_b_c", "true"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(flat, want);

    let traits = json(r#"{"address":{"street":"1 Main"},"firstName":"Ada"}"#);
    let flat: Vec<String> = flatten("", traits.as_object().expect("object"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(flat, ["address_street", "first_name"]);
}
