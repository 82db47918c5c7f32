//! Segment's warehouse naming: `snake_case` (a port of `segmentio/go-snakecase`) and the
//! flattening of nested objects with `_`.
//!
//! The port follows go-snakecase byte for byte: it works on bytes, so every non-ASCII
//! character is a separator and disappears, and the result is always ASCII.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Segment's table and column naming. Non-alphanumeric characters separate words and are
/// dropped, a lower-to-upper boundary starts a word, runs of capitals stay together,
/// everything is lowercased, and separators collapse to one `_`.
///
/// `"Order Completed"` gives `order_completed`, `"accountType"` gives `account_type` and
/// `"CStringRef"` gives `cstring_ref`.
pub fn snake_case(name: &str) -> String {
    snake_case_cow(name).into_owned()
}

/// [`snake_case`] without an allocation when `name` is already snake case.
pub fn snake_case_cow(name: &str) -> Cow<'_, str> {
    let s = name.as_bytes();
    let mut idx = 0;
    let mut has_lower = false;
    let mut has_underscore = false;
    let mut lowercase_since_underscore = false;
    // The leading run of good characters: lowercase letters, digits, and underscores that
    // are neither first nor last and are followed by a lowercase letter or a digit.
    while idx < s.len() {
        let c = s[idx];
        if c.is_ascii_lowercase() {
            has_lower = true;
            if has_underscore {
                lowercase_since_underscore = true;
            }
        } else if c.is_ascii_digit() {
        } else if c == b'_'
            && idx > 0
            && idx < s.len() - 1
            && (s[idx + 1].is_ascii_lowercase() || s[idx + 1].is_ascii_digit())
        {
            has_underscore = true;
            lowercase_since_underscore = false;
        } else {
            break;
        }
        idx += 1;
    }
    if idx == s.len() {
        return Cow::Borrowed(name);
    }
    let mut out = Vec::with_capacity(s.len().max(16));
    out.extend_from_slice(&s[..idx]);
    if s[idx].is_ascii_uppercase() && (!has_lower || has_underscore && !lowercase_since_underscore)
    {
        // An upper-case letter right after a prefix of digits (or after an underscore with
        // no lowercase since) continues that word instead of starting a new one.
        idx = push_word(s, idx, &mut out);
    }
    while idx < s.len() {
        if !s[idx].is_ascii_alphanumeric() {
            idx += 1;
            continue;
        }
        if !out.is_empty() {
            out.push(b'_');
        }
        idx = push_word(s, idx, &mut out);
    }
    // Only ASCII alphanumerics, underscores and the untouched ASCII prefix were pushed.
    Cow::Owned(String::from_utf8(out).unwrap_or_default())
}

/// Pushes one word starting at `idx`: a run of capitals and digits (lowercased), then a run
/// of lowercase letters and digits. Returns the index after the word.
fn push_word(s: &[u8], mut idx: usize, out: &mut Vec<u8>) -> usize {
    while idx < s.len() && (s[idx].is_ascii_uppercase() || s[idx].is_ascii_digit()) {
        out.push(s[idx].to_ascii_lowercase());
        idx += 1;
    }
    while idx < s.len() && (s[idx].is_ascii_lowercase() || s[idx].is_ascii_digit()) {
        out.push(s[idx]);
        idx += 1;
    }
    idx
}

/// Flattens an object into `(column, value)` pairs: nested objects join their keys with `_`
/// after [`snake_case`]; arrays and scalars are leaves. `prefix` is prepended (with `_`) when
/// not empty, e.g. `"context"`. Keys whose snake case is empty (`"$%"`) are skipped.
///
/// `{"app": {"version": "1.2"}}` with prefix `context` gives `context_app_version`.
pub fn flatten<'a>(prefix: &str, object: &'a Map<String, Value>) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    flatten_into(prefix, object, &mut out);
    out
}

fn flatten_into<'a>(
    prefix: &str,
    object: &'a Map<String, Value>,
    out: &mut Vec<(String, &'a Value)>,
) {
    for (key, value) in object {
        let key = snake_case_cow(key);
        if key.is_empty() {
            continue;
        }
        let name = if prefix.is_empty() {
            key.into_owned()
        } else {
            format!("{prefix}_{key}")
        };
        match value {
            Value::Object(inner) => flatten_into(&name, inner, out),
            leaf => out.push((name, leaf)),
        }
    }
}
