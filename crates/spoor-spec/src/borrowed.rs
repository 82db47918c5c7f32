//! A JSON tree that borrows its strings from the text it was parsed from: the collector's
//! fast path for messages, where a `serde_json::Value` costs an allocation per key, string
//! and number, and a SipHash per key.
//!
//! [`Node`] means exactly what the `Value` parsed from the same text means, and
//! [`Node::write_json`] writes exactly the bytes `serde_json::to_string` writes for that
//! `Value` (compact, the same string escapes, each number's text as `arbitrary_precision`
//! keeps it). [`Object`] keeps keys in order and replaces a key's value in place, as
//! `preserve_order`'s map does.
//!
//! Parsing refuses what would make the two differ rather than handle it: an object with the
//! same key twice (the `Value` keeps the last value at the first position), and keys that
//! serde_json reserves for its own numbers and raw values. Such text gets
//! [`NodeError::Unsupported`], and the caller takes the `Value` path.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::message::{MessageType, ParseError};

/// serde_json's map key for a number kept as text (`arbitrary_precision`).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";
/// serde_json's map key for a raw value (`raw_value`).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";
/// Objects up to this size are checked for duplicate keys by a linear scan per key.
const LINEAR_KEYS: usize = 16;

/// Why text was not parsed into a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The text is not JSON.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// JSON that a [`Node`] does not represent like a `Value` does (a duplicate key, a
    /// serde_json private key, a number text serde_json would rewrite).
    #[error("JSON the borrowed tree does not represent: {0}")]
    Unsupported(&'static str),
}

/// One JSON value, its strings borrowed from the parsed text where they hold no escapes.
#[derive(Clone, Debug, PartialEq)]
pub enum Node<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its text (as serde_json's `arbitrary_precision` keeps it).
    Number(Cow<'a, str>),
    /// A string, unescaped.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Node<'a>>),
    /// An object.
    Object(Object<'a>),
}

/// A JSON object: keys in order, each key once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    entries: Vec<(Cow<'a, str>, Node<'a>)>,
}

impl<'a> Node<'a> {
    /// Parses JSON text. See the module docs for what is refused.
    pub fn parse(text: &'a str) -> Result<Node<'a>, NodeError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let node = NodeSeed
            .deserialize(&mut deserializer)
            .map_err(|err| classify(&err))?;
        deserializer.end().map_err(|err| classify(&err))?;
        Ok(node)
    }

    /// The same value, its strings borrowed from `value`.
    pub fn from_value(value: &'a Value) -> Node<'a> {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(Cow::Borrowed(n.as_str())),
            Value::String(s) => Node::String(Cow::Borrowed(s)),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_value).collect()),
            Value::Object(map) => Node::Object(Object::from_map(map)),
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, when this is one.
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Node::Object(map) => Some(map),
            _ => None,
        }
    }

    /// Appends the compact JSON text of this value, byte for byte what `serde_json` writes
    /// for the equal `Value`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            Node::Number(text) => out.extend_from_slice(text.as_bytes()),
            Node::String(text) => write_str(out, text),
            Node::Array(items) => {
                out.push(b'[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Node::Object(map) => map.write_json(out),
        }
    }
}

/// Appends a JSON string with serde_json's own escaping.
fn write_str(out: &mut Vec<u8>, text: &str) {
    // serde_json escapes exactly the control characters, `"` and `\`; text without them is
    // written as is, as serde_json would.
    if !needs_escape(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing to a Vec cannot fail, and serde_json escapes exactly as it does for a Value.
    let _ = serde_json::to_writer(&mut *out, text);
}

impl<'a> Object<'a> {
    /// An empty object.
    pub fn new() -> Object<'a> {
        Object::default()
    }

    /// The same object, its strings borrowed from `map`.
    pub fn from_map(map: &'a Map<String, Value>) -> Object<'a> {
        Object {
            entries: map
                .iter()
                .map(|(key, value)| (Cow::Borrowed(key.as_str()), Node::from_value(value)))
                .collect(),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of a key, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// True when the key is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets a key: an existing key keeps its position, a new one goes last (as
    /// `preserve_order`'s `Map::insert`).
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: Node<'a>) {
        let key = key.into();
        match self.position(&key) {
            Some(index) => self.entries[index].1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes a key, keeping the order of the others (as `Map::shift_remove`).
    pub fn shift_remove(&mut self, key: &str) -> Option<Node<'a>> {
        let index = self.position(key)?;
        Some(self.entries.remove(index).1)
    }

    /// The keys and values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The keys and values, in order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Node<'a>)> {
        self.entries.iter_mut().map(|(k, v)| (&**k, v))
    }

    /// Appends the compact JSON text of this object (see [`Node::write_json`]).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (index, (key, value)) in self.entries.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_str(out, key);
            out.push(b':');
            value.write_json(out);
        }
        out.push(b'}');
    }
}

/// One message in the borrowed tree: [`crate::Message`]'s counterpart, for the collector's
/// fast path ([`crate::validate::validate_borrowed`], [`crate::normalize::normalize_borrowed`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BorrowedMessage<'a> {
    kind: MessageType,
    body: Object<'a>,
}

impl<'a> BorrowedMessage<'a> {
    /// Builds a message from an object, as [`crate::Message::from_value`] does (the implied
    /// type is written into a body without one). On failure the body is given back.
    pub fn from_object(
        mut body: Object<'a>,
        implied: Option<MessageType>,
    ) -> Result<BorrowedMessage<'a>, (ParseError, Object<'a>)> {
        let kind = match (body.get("type"), implied) {
            (None | Some(Node::Null), Some(kind)) => {
                body.insert("type", Node::String(Cow::Borrowed(kind.as_str())));
                kind
            }
            (None | Some(Node::Null), None) => return Err((ParseError::MissingType, body)),
            (Some(Node::String(name)), implied) => {
                let Some(found) = MessageType::from_wire(name) else {
                    let found = Value::String(name.to_string()).to_string();
                    return Err((ParseError::UnknownType { found }, body));
                };
                match implied {
                    Some(expected) if expected != found => {
                        let found = name.to_string();
                        return Err((ParseError::TypeMismatch { expected, found }, body));
                    }
                    _ => found,
                }
            }
            (Some(other), _) => {
                let mut text = Vec::new();
                other.write_json(&mut text);
                let found = String::from_utf8_lossy(&text).into_owned();
                return Err((ParseError::UnknownType { found }, body));
            }
        };
        Ok(BorrowedMessage { kind, body })
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        self.kind
    }

    /// The whole body, `type` included.
    pub fn body(&self) -> &Object<'a> {
        &self.body
    }

    /// The whole body, mutable. Changing `type` through it is not supported.
    pub fn body_mut(&mut self) -> &mut Object<'a> {
        &mut self.body
    }

    /// A string field at the top level, if present and a string.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Node::as_str)
    }
}

fn classify(err: &serde_json::Error) -> NodeError {
    if err.is_data() {
        // A data error here can only come from the visitors below.
        NodeError::Unsupported("duplicate key, private key or unusual number")
    } else {
        NodeError::Json(err.to_string())
    }
}

/// Deserializes one [`Node`] from a serde_json deserializer.
struct NodeSeed;

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node<'de>, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(value))
    }

    // With `arbitrary_precision`, serde_json hands integers that fit 64 bits over as such,
    // and `Value` writes them back with `itoa`: the same digits as sent.
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(Cow::Owned(integer_text(value, false))))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(Cow::Owned(integer_text(
            value.unsigned_abs(),
            value < 0,
        ))))
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(NodeSeed)? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let Some(first) = map.next_key_seed(KeySeed)? else {
            return Ok(Node::Object(Object::new()));
        };
        if first == NUMBER_TOKEN {
            // A number (or an object whose first key is that token, which `Value` reads as
            // a number too): its text, refused unless it is what the scanner writes.
            let text: Cow<'de, str> = map.next_value_seed(KeySeed)?;
            if !is_scanned_number(&text) {
                return Err(de::Error::custom("unusual number text"));
            }
            return Ok(Node::Number(text));
        }
        if first == RAW_VALUE_TOKEN {
            return Err(de::Error::custom("serde_json private key"));
        }
        let mut entries: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(8);
        entries.push((first, map.next_value_seed(NodeSeed)?));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if entries.len() < LINEAR_KEYS && entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(NodeSeed)?;
            entries.push((key, value));
        }
        if entries.len() > LINEAR_KEYS {
            let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            if keys.windows(2).any(|pair| pair[0] == pair[1]) {
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(Node::Object(Object { entries }))
    }
}

/// Deserializes a string, borrowed when it holds no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(value))
    }
}

/// True when a byte of `bytes` is one serde_json escapes: below 0x20, `"` or `\`. Eight
/// bytes at a time: most strings need no escape, and this is on every string written.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit set in each byte of `word` that is zero.
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        // Bytes below 0x20 (0x20 subtracted borrows into their high bit; bytes of 0x80 and
        // above are masked by `!word`), `"` and `\` (zero after the xor).
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        if control
            | zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// The decimal digits of an integer, with a `-` when negative.
fn integer_text(mut value: u64, negative: bool) -> String {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // A digit is below 10: the cast keeps it.
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let mut text = String::with_capacity(21);
    if negative {
        text.push('-');
    }
    for &digit in &digits[start..] {
        text.push(char::from(digit));
    }
    text
}

/// True for number text as serde_json's scanner writes it with `arbitrary_precision`:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?(e[+-][0-9]+)?`.
fn is_scanned_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let digits = |at: &mut usize| {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - start
    };
    let integer_start = at;
    let integer = digits(&mut at);
    if integer == 0 || (integer > 1 && bytes[integer_start] == b'0') {
        return false;
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(&mut at) == 0 {
            return false;
        }
    }
    if bytes.get(at) == Some(&b'e') {
        at += 1;
        if !matches!(bytes.get(at), Some(b'+' | b'-')) {
            return false;
        }
        at += 1;
        if digits(&mut at) == 0 {
            return false;
        }
    }
    at == bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text serde_json writes for the `Value` parsed from `text`.
    fn via_value(text: &str) -> Option<String> {
        serde_json::from_str::<Value>(text)
            .ok()
            .map(|v| v.to_string())
    }

    fn via_node(text: &str) -> Result<String, NodeError> {
        let node = Node::parse(text)?;
        let mut out = Vec::new();
        node.write_json(&mut out);
        Ok(String::from_utf8(out).unwrap_or_default())
    }

    #[test]
    fn writes_what_serde_json_writes() {
        for text in [
            r#"{"a":1,"b":[1,2.50,-0,1E5,1e-7,2.5E+3,12345678901234567890123456789],"c":null}"#,
            r#" { "k" : "\u00e9\/\"\\\b\f\n\r\t\u0001\u001f\u007f\ud83d\ude00 😀" , "e\u0041" : [ ] , "o" : { } } "#,
            r#"[true,false,null,"",{"x":{"y":{"z":[[]]}}}]"#,
            r#""just a string""#,
            "1.0",
        ] {
            assert_eq!(via_node(text).ok(), via_value(text), "{text}");
        }
    }

    #[test]
    fn refuses_what_a_value_would_read_differently() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"$serde_json::private::RawValue":"1"}"#,
            r#"{"$serde_json::private::Number":"01"}"#,
        ] {
            assert!(
                matches!(Node::parse(text), Err(NodeError::Unsupported(_))),
                "{text}"
            );
        }
        let many: Vec<String> = (0..40).map(|i| format!("\"k{}\":{i}", i % 39)).collect();
        let text = format!("{{{}}}", many.join(","));
        assert!(matches!(Node::parse(&text), Err(NodeError::Unsupported(_))));
        assert!(matches!(Node::parse("{\"a\":"), Err(NodeError::Json(_))));
        assert!(matches!(Node::parse("{} x"), Err(NodeError::Json(_))));
    }

    #[test]
    fn objects_insert_and_remove_like_preserve_order_maps() {
        let text = r#"{"a":1,"b":2,"c":3}"#;
        let mut node = Node::parse(text).unwrap();
        let mut value: Value = serde_json::from_str(text).unwrap();
        let (Node::Object(object), Value::Object(map)) = (&mut node, &mut value) else {
            panic!("objects expected");
        };
        object.insert("a", Node::Bool(true));
        map.insert("a".to_owned(), Value::Bool(true));
        object.insert("d", Node::Null);
        map.insert("d".to_owned(), Value::Null);
        object.shift_remove("b");
        map.shift_remove("b");
        let mut out = Vec::new();
        node.write_json(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), value.to_string());
    }

    #[test]
    fn integers_keep_their_digits() {
        for text in [
            "0",
            "-1",
            "7",
            "18446744073709551615",
            "-9223372036854775808",
            "42",
        ] {
            assert_eq!(via_node(text).ok(), via_value(text), "{text}");
        }
    }

    #[test]
    fn escapes_are_found_in_every_position() {
        let plain = "abcdefghijklmnopqrstuvwxyz 0123456789 é😀~\u{7f}";
        assert!(!needs_escape(plain.as_bytes()));
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in 0..plain.len() {
                if plain.is_char_boundary(at) {
                    let text = format!("{}{special}{}", &plain[..at], &plain[at..]);
                    assert!(needs_escape(text.as_bytes()), "{text:?}");
                }
            }
        }
        for byte in 0u8..=255 {
            let text = [b'a', b'b', b'c', b'd', b'e', b'f', b'g', byte, b'h'];
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
            assert_eq!(needs_escape(&text), expected, "{byte}");
            assert_eq!(needs_escape(&text[7..]), expected, "{byte}");
        }
    }

    #[test]
    fn scanned_numbers() {
        for ok in ["0", "-0", "12", "1.5", "1e+5", "-1.25e-7"] {
            assert!(is_scanned_number(ok), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e5", "1E+5", "1e+", "+1", "1x"] {
            assert!(!is_scanned_number(bad), "{bad}");
        }
    }
}
