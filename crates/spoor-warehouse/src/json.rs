//! A borrowed JSON tree for the loader: the log's messages are parsed into [`Json`] values
//! whose strings and numbers point into the log entry, so planning a message allocates only
//! for the objects' entry lists (and for strings with escapes).
//!
//! It means exactly what `serde_json` (built with `arbitrary_precision` and `preserve_order`)
//! makes of the same text, which the loader used before and which the collector writes with:
//! - a number keeps its text as `serde_json` keeps it (an exponent as `e+N`/`e-N`);
//! - an object keeps its keys in order, and a repeated key keeps its first place and its last
//!   value;
//! - arrays are kept as text and rendered as `serde_json` renders them (compact JSON).
//!
//! The parser is strict and deliberately narrow: anything it does not take (a syntax error,
//! `\u` surrogates, nesting deeper than [`MAX_DEPTH`], objects of more than [`MAX_KEYS`]
//! keys) makes [`parse`] return `None`, and the caller parses the entry with `serde_json`
//! instead and borrows the tree from its [`Value`] ([`Json::from_value`]). So the fast path
//! never accepts a text `serde_json` rejects, and both paths give the same tree.

use std::borrow::Cow;

use serde_json::Value;

/// Deepest nesting the fast parser takes (`serde_json` stops at 127).
pub const MAX_DEPTH: usize = 64;

/// Most keys in one object the fast parser takes (repeated keys are found by a linear scan).
pub const MAX_KEYS: usize = 64;

/// A JSON value borrowed from a log entry or from a `serde_json` [`Value`].
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json` keeps its text.
    Number(Cow<'a, str>),
    /// A string, unescaped.
    String(Cow<'a, str>),
    /// An array, kept whole.
    Array(Raw<'a>),
    /// An object.
    Object(Object<'a>),
}

/// An array or object kept whole, to be rendered as JSON text when stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Raw<'a> {
    /// Its text in the log entry (valid JSON: the parser checked it).
    Text(&'a str),
    /// A `serde_json` value.
    Value(&'a Value),
}

impl Raw<'_> {
    /// Compact JSON, as `serde_json` writes the value.
    pub fn to_json(self) -> String {
        match self {
            Raw::Text(text) => match serde_json::from_str::<Value>(text) {
                Ok(value) => value.to_string(),
                Err(_) => text.to_owned(),
            },
            Raw::Value(value) => value.to_string(),
        }
    }
}

/// An object's entries, in order, without repeated keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    entries: Vec<(Cow<'a, str>, Json<'a>)>,
    raw: Option<Raw<'a>>,
}

impl<'a> Object<'a> {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Compact JSON, as `serde_json` writes the object.
    pub fn to_json(&self) -> String {
        match self.raw {
            Some(raw) => raw.to_json(),
            None => "{}".to_owned(),
        }
    }
}

impl<'a> Json<'a> {
    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, when this is one.
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Compact JSON text, as `serde_json`'s `Value::to_string` gives it.
    pub fn to_json(&self) -> String {
        match self {
            Json::Null => "null".to_owned(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) => n.to_string(),
            Json::String(s) => serde_json::to_string(s.as_ref()).unwrap_or_default(),
            Json::Array(raw) => raw.to_json(),
            Json::Object(object) => object.to_json(),
        }
    }

    /// Borrows a tree from a `serde_json` value.
    pub fn from_value(value: &'a Value) -> Json<'a> {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(Cow::Borrowed(n.as_str())),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(_) => Json::Array(Raw::Value(value)),
            Value::Object(map) => Json::Object(Object {
                entries: map
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::from_value(v)))
                    .collect(),
                raw: Some(Raw::Value(value)),
            }),
        }
    }
}

/// Parses `text` (a whole JSON document), or `None` when the fast parser does not take it (see
/// the module docs): parse it with `serde_json` then.
pub fn parse(text: &str) -> Option<Json<'_>> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    parser.skip_ws();
    let value = parser.value(0)?;
    parser.skip_ws();
    (parser.pos == parser.bytes.len()).then_some(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    fn value(&mut self, depth: usize) -> Option<Json<'a>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| Json::Null),
            b't' => self.literal(b"true").map(|()| Json::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => self.array(depth + 1),
            b'{' => self.object(depth + 1),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number with `serde_json`'s grammar; its text with the exponent written `e+N`/`e-N`
    /// as `serde_json` keeps it.
    fn number(&mut self) -> Option<Json<'a>> {
        let start = self.pos;
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.').is_some() && self.digits() == 0 {
            return None;
        }
        let mantissa_end = self.pos;
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            let sign = match self.peek() {
                Some(s @ (b'+' | b'-')) => {
                    self.pos += 1;
                    s
                }
                _ => b'+',
            };
            let digits_start = self.pos;
            if self.digits() == 0 {
                return None;
            }
            let mut text = String::with_capacity(self.pos - start + 1);
            text.push_str(self.text.get(start..mantissa_end)?);
            text.push('e');
            text.push(char::from(sign));
            text.push_str(self.text.get(digits_start..self.pos)?);
            return Some(Json::Number(Cow::Owned(text)));
        }
        Some(Json::Number(Cow::Borrowed(self.text.get(start..self.pos)?)))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos.checked_add(4)?)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    /// A string (at its opening quote), unescaped; borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek()? {
                b'"' => {
                    let s = self.text.get(start..self.pos)?;
                    self.pos += 1;
                    return Some(Cow::Borrowed(s));
                }
                b'\\' => break,
                0x00..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        let mut out = String::from(self.text.get(start..self.pos)?);
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    self.pos += 1;
                    let escaped = self.peek()?;
                    self.pos += 1;
                    out.push(match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        // Surrogates (pairs or lone) are left to serde_json.
                        b'u' => char::from_u32(self.hex4()?)?,
                        _ => return None,
                    });
                }
                0x00..=0x1f => return None,
                _ => {
                    let run = self.pos;
                    while let Some(b) = self.peek() {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    out.push_str(self.text.get(run..self.pos)?);
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Json<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.eat(b']').is_none() {
            loop {
                self.skip_ws();
                self.value(depth)?;
                self.skip_ws();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b']' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        Some(Json::Array(Raw::Text(self.text.get(start..self.pos)?)))
    }

    fn object(&mut self, depth: usize) -> Option<Json<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.pos;
        self.pos += 1;
        let mut entries: Vec<(Cow<'a, str>, Json<'a>)> = Vec::new();
        self.skip_ws();
        if self.eat(b'}').is_none() {
            loop {
                self.skip_ws();
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                self.skip_ws();
                self.eat(b':')?;
                self.skip_ws();
                let value = self.value(depth)?;
                match entries.iter().position(|(k, _)| *k == key) {
                    Some(i) => entries[i].1 = value,
                    None if entries.len() < MAX_KEYS => entries.push((key, value)),
                    None => return None,
                }
                self.skip_ws();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b'}' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        Some(Json::Object(Object {
            entries,
            raw: Some(Raw::Text(self.text.get(start..self.pos)?)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast parser's tree equals the one borrowed from serde_json's value, or it declines.
    fn same_as_serde(text: &str) {
        let serde: Result<Value, _> = serde_json::from_str(text);
        match (parse(text), &serde) {
            (Some(fast), Ok(value)) => {
                let slow = Json::from_value(value);
                assert_eq!(fast.to_json(), slow.to_json(), "{text}");
                assert_eq!(strip(&fast), strip(&slow), "{text}");
            }
            (Some(_), Err(err)) => panic!("{text}: accepted, serde_json says {err}"),
            (None, _) => {}
        }
    }

    /// The tree without the raw texts (which differ in kind between the two paths).
    fn strip(json: &Json<'_>) -> String {
        match json {
            Json::Array(raw) => format!("array {}", raw.to_json()),
            Json::Object(o) => {
                let inner: Vec<String> = o
                    .iter()
                    .map(|(k, v)| format!("{k:?}: {}", strip(v)))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn agrees_with_serde_json() {
        for text in [
            r#"{"a": 1, "b": [1, 2, {"c": "d"}], "e": {"f": null, "g": true, "h": false}}"#,
            r#"{"n": [0, -0, 1.50, -2.0e10, 3E-2, 4e5, 1e400, 123456789012345678901234567890]}"#,
            r#"{"n": -0, "m": 1.50, "o": 3E-2, "p": 4e5, "q": -1.5e+7}"#,
            r#"{"s": "a\"b\\c\/d\b\f\n\r\t\u00e9\u0000 é", "t": "plain"}"#,
            r#"{"dup": 1, "x": 2, "dup": {"y": 3}}"#,
            r#"  {"ws" :  [ ] , "o" : { } }  "#,
            r#"[1, 2]"#,
            r#""top""#,
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": +1}"#,
            r#"{"a": 1e}"#,
            r#"{"a": [1, 2,]}"#,
            r#"{"a": 1,}"#,
            r#"{"a": "\ud83d\ude00"}"#,
            r#"{"a": "\ud83d"}"#,
            "{\"a\": \"tab\there\"}",
            r#"{"a": "\x"}"#,
            r#"{"a": 1} x"#,
            r#"{"a": tru}"#,
            r#"{"a" 1}"#,
            r#"{1: 1}"#,
            "",
        ] {
            same_as_serde(text);
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).is_none());
        same_as_serde(&deep);
    }

    #[test]
    fn numbers_keep_serde_json_text() {
        let json = parse(r#"{"a": 1E5, "b": 2e-3, "c": -0.10}"#).expect("parses");
        let object = json.as_object().expect("object");
        assert_eq!(object.get("a"), Some(&Json::Number("1e+5".into())));
        assert_eq!(object.get("b"), Some(&Json::Number("2e-3".into())));
        assert_eq!(object.get("c"), Some(&Json::Number("-0.10".into())));
    }

    #[test]
    fn repeated_keys_keep_first_place_and_last_value() {
        let json = parse(r#"{"a": 1, "b": 2, "a": 3}"#).expect("parses");
        let keys: Vec<(&str, String)> = json
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k, v.to_json()))
            .collect();
        assert_eq!(keys, vec![("a", "3".to_owned()), ("b", "2".to_owned())]);
    }

    #[test]
    fn declines_what_it_does_not_take() {
        assert!(parse(r#"{"a": "\ud83d\ude00"}"#).is_none());
        let many: Vec<String> = (0..=MAX_KEYS).map(|i| format!("\"k{i}\": {i}")).collect();
        assert!(parse(&format!("{{{}}}", many.join(", "))).is_none());
        assert!(parse("{\"a\": 1").is_none());
    }
}
