//! Segment's warehouse naming: `snake_case` (a port of `segmentio/go-snakecase`) and the
//! flattening of nested objects with `_`.

use serde_json::{Map, Value};

/// Segment's table and column naming. Non-alphanumeric characters separate words and are
/// dropped, a lower-to-upper boundary starts a word, runs of capitals stay together,
/// everything is lowercased, and separators collapse to one `_`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev: Option<char> = None;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev = None;
            continue;
        }
        if c.is_ascii_uppercase()
            && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
            && !out.ends_with('_')
        {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
        prev = Some(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// Flattens an object into `(column, value)` pairs: nested objects join their keys with `_`
/// after [`snake_case`]; arrays and scalars are leaves. `prefix` is prepended (with `_`) when
/// not empty, e.g. `"context"`.
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
        let key = snake_case(key);
        if key.is_empty() {
            continue;
        }
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}_{key}")
        };
        match value {
            Value::Object(inner) => flatten_into(&name, inner, out),
            leaf => out.push((name, leaf)),
        }
    }
}
