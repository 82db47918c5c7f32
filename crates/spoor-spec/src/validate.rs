//! Validation: every problem of a message at once, each with a JSON path and a stable code.
//!
//! Paths are dotted from the message root (`properties.revenue`, `traits.address.city`,
//! `properties.keywords[2]`); a key that holds `.`, `[`, `]` or `"`, or is empty, is written
//! in brackets as a JSON string (`integrations["Google Analytics 4.0"]`). A caller that
//! validates batch items prefixes them with [`Problem::prefixed`] (`batch[3].properties.revenue`).
//! Which problems are errors and which are warnings is listed in `docs/SPEC.md`.
//!
//! Validation allocates nothing for a valid message: paths and messages are built only when
//! a problem is found.

use std::fmt;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::borrowed::{BorrowedMessage, Node, Object};
use crate::currency;
use crate::decimal::Decimal;
use crate::message::{Message, MessageType};
use crate::reserved::{self, FieldKind, ReservedField};
use crate::time::Timestamp;

/// How bad a problem is: an error rejects the message, a warning is reported only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The message is not accepted.
    Error,
    /// The message is accepted; the problem is reported.
    Warning,
}

impl Severity {
    /// `"error"` or `"warning"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A stable, machine-readable problem code. The string forms never change once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Neither userId nor anonymousId.
    MissingIdentity,
    /// A required field is absent (event, groupId, previousId, alias userId).
    Required,
    /// A field that must not be empty is empty.
    Empty,
    /// A field has the wrong JSON type.
    WrongType,
    /// A timestamp is not strict ISO 8601 with date, time and offset.
    InvalidTimestamp,
    /// A currency is not an ISO 4217 code.
    InvalidCurrency,
    /// messageId longer than 100 characters.
    TooLong,
    /// A message over 32 KB of JSON.
    MessageTooLarge,
    /// A batch over 500 KB.
    BatchTooLarge,
    /// A batch over 2,500 messages.
    TooManyMessages,
    /// An id (userId, anonymousId, previousId, groupId) sent as a number; normalization turns
    /// it into a string.
    NumberId,
    /// A number field (revenue, value, age, ...) sent as a string holding a number.
    NumericString,
    /// A number that no exact decimal holds (more than 38 digits, or a huge exponent).
    InvalidNumber,
    /// A currency code in the wrong case (`usd` for `USD`).
    CurrencyCase,
    /// A currency code withdrawn from ISO 4217 (`HRK`, now `EUR`).
    WithdrawnCurrency,
}

impl Code {
    /// The stable string form, e.g. `"missing_identity"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MissingIdentity => "missing_identity",
            Code::Required => "required",
            Code::Empty => "empty",
            Code::WrongType => "wrong_type",
            Code::InvalidTimestamp => "invalid_timestamp",
            Code::InvalidCurrency => "invalid_currency",
            Code::TooLong => "too_long",
            Code::MessageTooLarge => "message_too_large",
            Code::BatchTooLarge => "batch_too_large",
            Code::TooManyMessages => "too_many_messages",
            Code::NumberId => "number_id",
            Code::NumericString => "numeric_string",
            Code::InvalidNumber => "invalid_number",
            Code::CurrencyCase => "currency_case",
            Code::WithdrawnCurrency => "withdrawn_currency",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem: where, what, and how bad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted JSON path of the field (`properties.revenue`), or `""` for the whole message.
    pub path: String,
    /// The stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// A sentence for people that names the field and the rule.
    pub message: String,
}

impl Problem {
    /// The same problem under a parent path: `prefixed("batch[3]")` turns `userId` into
    /// `batch[3].userId` (and the whole-message path `""` into `batch[3]`). The message's
    /// own mention of the field is left as is.
    pub fn prefixed(mut self, prefix: &str) -> Problem {
        self.path = if self.path.is_empty() {
            prefix.to_owned()
        } else if self.path.starts_with('[') {
            format!("{prefix}{}", self.path)
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.code)
    }
}

/// All problems of one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every problem found, errors and warnings, in a fixed order: identity, then the
    /// type's own fields (event, groupId, name), then the common fields (messageId,
    /// timestamps, channel, context, integrations), then traits or properties in key order.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when there is no error (warnings allowed).
    pub fn is_ok(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }

    /// True when there is no problem at all.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The same report with every path under `prefix` (see [`Problem::prefixed`]), e.g.
    /// `batch[3]` for the fourth item of a batch.
    pub fn prefixed(self, prefix: &str) -> Report {
        Report {
            problems: self
                .problems
                .into_iter()
                .map(|p| p.prefixed(prefix))
                .collect(),
        }
    }
}

/// A JSON value as validation reads it: a `serde_json::Value` or a borrowed [`Node`], so
/// both are checked by the same code.
pub(crate) trait Json: Sized {
    /// The object type.
    type Object;
    /// The value's kind, with its contents.
    fn view(&self) -> View<'_, Self>;
    /// An object's keys and values, in order.
    fn entries<'v>(object: &'v Self::Object) -> impl Iterator<Item = (&'v str, &'v Self)>
    where
        Self: 'v;
}

/// What a [`Json`] value is.
pub(crate) enum View<'v, J: Json> {
    Null,
    Bool,
    Number(&'v str),
    String(&'v str),
    Array(&'v [J]),
    Object(&'v J::Object),
}

impl<J: Json> View<'_, J> {
    fn is_null(&self) -> bool {
        matches!(self, View::Null)
    }

    /// The kind as named in error messages.
    fn kind(&self) -> &'static str {
        match self {
            View::Null => "null",
            View::Bool => "boolean",
            View::Number(_) => "number",
            View::String(_) => "string",
            View::Array(_) => "array",
            View::Object(_) => "object",
        }
    }
}

impl Json for Value {
    type Object = Map<String, Value>;

    fn view(&self) -> View<'_, Value> {
        match self {
            Value::Null => View::Null,
            Value::Bool(_) => View::Bool,
            Value::Number(n) => View::Number(n.as_str()),
            Value::String(s) => View::String(s),
            Value::Array(items) => View::Array(items),
            Value::Object(map) => View::Object(map),
        }
    }

    fn entries<'v>(object: &'v Map<String, Value>) -> impl Iterator<Item = (&'v str, &'v Value)>
    where
        Self: 'v,
    {
        object.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<'a> Json for Node<'a> {
    type Object = Object<'a>;

    fn view(&self) -> View<'_, Node<'a>> {
        match self {
            Node::Null => View::Null,
            Node::Bool(_) => View::Bool,
            Node::Number(n) => View::Number(n),
            Node::String(s) => View::String(s),
            Node::Array(items) => View::Array(items),
            Node::Object(map) => View::Object(map),
        }
    }

    fn entries<'v>(object: &'v Object<'a>) -> impl Iterator<Item = (&'v str, &'v Node<'a>)>
    where
        Self: 'v,
    {
        object.iter()
    }
}

/// One step of a JSON path.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A JSON path as a linked list on the stack: nothing is allocated until a problem renders it.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

impl<'a> Path<'a> {
    fn root(key: &'a str) -> Path<'a> {
        Path {
            parent: None,
            seg: Seg::Key(key),
        }
    }

    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    fn index(&'a self, index: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }

    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            segs.push(p.seg);
            at = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match *seg {
                Seg::Key(key) if is_plain_key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Seg::Key(key) => {
                    out.push('[');
                    out.push_str(&Value::String(key.to_owned()).to_string());
                    out.push(']');
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty() && !key.contains(['.', '[', ']', '"'])
}

/// Collects problems.
struct Checker {
    problems: Vec<Problem>,
    /// The severity of type problems in the part being checked (warnings inside nested
    /// context objects and context.traits).
    soft: bool,
}

impl Checker {
    fn push(&mut self, path: &Path<'_>, code: Code, severity: Severity, message: String) {
        self.problems.push(Problem {
            path: path.render(),
            code,
            severity,
            message,
        });
    }

    /// Error, or warning when checking a soft part.
    fn type_severity(&self) -> Severity {
        if self.soft {
            Severity::Warning
        } else {
            Severity::Error
        }
    }

    fn wrong_type<J: Json>(&mut self, path: &Path<'_>, expected: &str, found: &J) {
        let severity = self.type_severity();
        let message = format!(
            "{} must be {expected}, not {}",
            path.render(),
            kind_phrase(&found.view())
        );
        self.push(path, Code::WrongType, severity, message);
    }
}

fn kind_phrase<J: Json>(value: &View<'_, J>) -> String {
    match value {
        View::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        View::Number(n) if n.len() <= 40 => format!("the number {n}"),
        other => {
            let kind = other.kind();
            let article = if kind == "array" || kind == "object" {
                "an"
            } else {
                "a"
            };
            format!("{article} {kind}")
        }
    }
}

/// Validates one message against the Spec. Sizes are checked by [`message_size_problem`]
/// and [`batch_size_problem`], since only the caller knows the bytes it received.
pub fn validate(message: &Message) -> Report {
    validate_body::<Value>(message.kind(), message.body())
}

/// [`validate()`] for a message parsed into the borrowed tree: the same problems in the
/// same order.
pub fn validate_borrowed(message: &BorrowedMessage<'_>) -> Report {
    validate_body::<Node<'_>>(message.kind(), message.body())
}

fn validate_body<J: Json>(kind: MessageType, body: &J::Object) -> Report {
    let mut checker = Checker {
        problems: Vec::new(),
        soft: false,
    };
    let top = Top::<J>::collect(body);

    // Identity.
    let user_id = check_id(&mut checker, &top, "userId");
    let anonymous_id = check_id(&mut checker, &top, "anonymousId");
    match kind {
        MessageType::Alias => {
            require_id(&mut checker, &top, "userId", user_id);
            let previous_id = check_id(&mut checker, &top, "previousId");
            require_id(&mut checker, &top, "previousId", previous_id);
        }
        _ if user_id != IdState::Present && anonymous_id != IdState::Present => {
            checker.push(
                &Path::root("userId"),
                Code::MissingIdentity,
                Severity::Error,
                "userId or anonymousId is required".to_owned(),
            );
        }
        _ => {}
    }
    for (key, state) in [("userId", user_id), ("anonymousId", anonymous_id)] {
        let required = kind == MessageType::Alias && key == "userId";
        if state == IdState::Empty && !required {
            checker.push(
                &Path::root(key),
                Code::Empty,
                Severity::Warning,
                format!("{key} is empty; it does not count as an identity"),
            );
        }
    }

    // Type-specific fields.
    match kind {
        MessageType::Track => check_event(&mut checker, &top),
        MessageType::Group => {
            let group_id = check_id(&mut checker, &top, "groupId");
            require_id(&mut checker, &top, "groupId", group_id);
        }
        MessageType::Page | MessageType::Screen => {
            check_optional_string(&mut checker, &top, "name");
            check_optional_string(&mut checker, &top, "category");
        }
        MessageType::Identify | MessageType::Alias => {}
    }

    // Common fields.
    check_message_id(&mut checker, &top);
    for key in ["timestamp", "sentAt", "originalTimestamp"] {
        if let Some(value) = top.get(key) {
            check_timestamp(&mut checker, &Path::root(key), value, false);
        }
    }
    check_optional_string(&mut checker, &top, "channel");
    if let Some(value) = top.get("context") {
        check_context(&mut checker, value);
    }
    if let Some(value) = top.get("integrations") {
        check_integrations(&mut checker, &Path::root("integrations"), value);
    }

    // Traits and properties.
    let (key, fields) = match kind {
        MessageType::Identify => ("traits", reserved::IDENTIFY_TRAITS),
        MessageType::Group => ("traits", reserved::GROUP_TRAITS),
        MessageType::Track => ("properties", reserved::TRACK_PROPERTIES),
        MessageType::Page => ("properties", reserved::PAGE_PROPERTIES),
        MessageType::Screen => ("properties", reserved::SCREEN_PROPERTIES),
        MessageType::Alias => ("", &[][..]),
    };
    if !key.is_empty()
        && let Some(value) = top.get(key)
    {
        let path = Path::root(key);
        match value.view() {
            View::Object(map) => {
                let set = if kind == MessageType::Track {
                    Set::TrackProperties
                } else {
                    Set::Plain
                };
                check_fields::<J>(&mut checker, &path, map, fields, set);
            }
            _ => checker.wrong_type(&path, "an object", value),
        }
    }

    Report {
        problems: checker.problems,
    }
}

/// The top-level fields validation looks at, collected in one pass over the body: one string
/// match per key instead of a hash lookup per field.
struct Top<'a, J> {
    slots: [Option<&'a J>; TOP_KEYS.len()],
}

/// The top-level fields validation looks at; [`top_slot`] gives their index.
const TOP_KEYS: [&str; 16] = [
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "event",
    "name",
    "category",
    "messageId",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "channel",
    "context",
    "integrations",
    "traits",
    "properties",
];

fn top_slot(key: &str) -> Option<usize> {
    Some(match key {
        "userId" => 0,
        "anonymousId" => 1,
        "previousId" => 2,
        "groupId" => 3,
        "event" => 4,
        "name" => 5,
        "category" => 6,
        "messageId" => 7,
        "timestamp" => 8,
        "sentAt" => 9,
        "originalTimestamp" => 10,
        "channel" => 11,
        "context" => 12,
        "integrations" => 13,
        "traits" => 14,
        "properties" => 15,
        _ => return None,
    })
}

impl<'a, J: Json> Top<'a, J> {
    fn collect(body: &'a J::Object) -> Top<'a, J> {
        let mut slots = [None; TOP_KEYS.len()];
        for (key, value) in J::entries(body) {
            if let Some(slot) = top_slot(key)
                && !value.view().is_null()
            {
                slots[slot] = Some(value);
            }
        }
        Top { slots }
    }

    /// A field's value, treating `null` as absent.
    fn get(&self, key: &str) -> Option<&'a J> {
        top_slot(key).and_then(|slot| self.slots[slot])
    }
}

/// A field's value, treating `null` as absent.
fn present<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IdState {
    Absent,
    Empty,
    Present,
}

/// Checks an id field's type. Strings are ids; numbers are ids with a warning (libraries
/// stringify them, and so does normalization); empty strings warn and do not count.
fn check_id<J: Json>(checker: &mut Checker, top: &Top<'_, J>, key: &str) -> IdState {
    let Some(value) = top.get(key) else {
        return IdState::Absent;
    };
    let path = Path::root(key);
    match value.view() {
        View::String(s) if s.trim().is_empty() => IdState::Empty,
        View::String(_) => IdState::Present,
        View::Number(n) => {
            checker.push(
                &path,
                Code::NumberId,
                Severity::Warning,
                format!("{key} is the number {n}; ids are strings, it is stored as \"{n}\""),
            );
            IdState::Present
        }
        _ => {
            checker.wrong_type(&path, "a string", value);
            IdState::Absent
        }
    }
}

/// Reports a required id that is absent or empty. Empty optional ids only warn.
fn require_id<J: Json>(checker: &mut Checker, top: &Top<'_, J>, key: &str, state: IdState) {
    let path = Path::root(key);
    match state {
        IdState::Present => {}
        IdState::Empty => checker.push(
            &path,
            Code::Empty,
            Severity::Error,
            format!("{key} must not be empty"),
        ),
        IdState::Absent if top.get(key).is_none() => checker.push(
            &path,
            Code::Required,
            Severity::Error,
            format!("{key} is required"),
        ),
        // Present with a wrong type: already reported.
        IdState::Absent => {}
    }
}

fn check_event<J: Json>(checker: &mut Checker, top: &Top<'_, J>) {
    let path = Path::root("event");
    let Some(value) = top.get("event") else {
        checker.push(
            &path,
            Code::Required,
            Severity::Error,
            "event is required on a track".to_owned(),
        );
        return;
    };
    match value.view() {
        View::String(s) if s.trim().is_empty() => checker.push(
            &path,
            Code::Empty,
            Severity::Error,
            "event must not be empty".to_owned(),
        ),
        View::String(_) => {}
        _ => checker.wrong_type(&path, "a string", value),
    }
}

fn check_optional_string<J: Json>(checker: &mut Checker, top: &Top<'_, J>, key: &str) {
    if let Some(value) = top.get(key)
        && !matches!(value.view(), View::String(_))
    {
        checker.wrong_type(&Path::root(key), "a string", value);
    }
}

fn check_message_id<J: Json>(checker: &mut Checker, top: &Top<'_, J>) {
    let path = Path::root("messageId");
    let Some(value) = top.get("messageId") else {
        return;
    };
    match value.view() {
        View::String(s) => {
            // Byte length bounds the character count; count only when it could be over.
            let max = crate::limits::MAX_MESSAGE_ID_CHARS;
            if s.len() > max {
                let chars = s.chars().count();
                if chars > max {
                    checker.push(
                        &path,
                        Code::TooLong,
                        Severity::Error,
                        format!("messageId is {chars} characters; the limit is {max}"),
                    );
                }
            }
        }
        _ => checker.wrong_type(&path, "a string", value),
    }
}

/// Checks a timestamp field: a string in strict ISO 8601 (with `date_ok`, a bare date too).
fn check_timestamp<J: Json>(checker: &mut Checker, path: &Path<'_>, value: &J, date_ok: bool) {
    let View::String(text) = value.view() else {
        let expected = if date_ok {
            "an ISO 8601 date or timestamp string"
        } else {
            "an ISO 8601 timestamp string"
        };
        checker.wrong_type(path, expected, value);
        return;
    };
    let parsed = if date_ok {
        Timestamp::parse_date_or_timestamp(text)
    } else {
        Timestamp::parse(text)
    };
    if let Err(err) = parsed {
        let severity = checker.type_severity();
        let shape = if date_ok {
            "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS.sssZ"
        } else {
            "YYYY-MM-DDTHH:MM:SS.sssZ or with an offset like +02:00"
        };
        checker.push(
            path,
            Code::InvalidTimestamp,
            severity,
            format!(
                "{} is {text:?}, not a strict ISO 8601 timestamp ({shape}): {err}",
                path.render()
            ),
        );
    }
}

fn check_context<J: Json>(checker: &mut Checker, value: &J) {
    let path = Path::root("context");
    let View::Object(map) = value.view() else {
        checker.wrong_type(&path, "an object", value);
        return;
    };
    check_fields::<J>(checker, &path, map, reserved::CONTEXT_FIELDS, Set::Context);
}

fn check_integrations<J: Json>(checker: &mut Checker, path: &Path<'_>, value: &J) {
    let View::Object(map) = value.view() else {
        checker.wrong_type(path, "an object", value);
        return;
    };
    for (name, setting) in J::entries(map) {
        match setting.view() {
            View::Bool | View::Object(_) => {}
            _ => checker.wrong_type(&path.key(name), "a boolean or an object", setting),
        }
    }
}

/// What a table of reserved fields is, for the rules beyond JSON types.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Set {
    /// Traits, page and screen properties, and nested objects.
    Plain,
    /// Track properties: revenue and value must be exact decimals, currency a code.
    TrackProperties,
    /// The context: its reserved objects have known keys, checked as warnings.
    Context,
}

/// The reserved keys inside a reserved object field.
fn children(set: Set, field: &ReservedField) -> Option<&'static [ReservedField]> {
    match (set, field.name) {
        (Set::Context, "app") => Some(reserved::CONTEXT_APP),
        (Set::Context, "campaign") => Some(reserved::CONTEXT_CAMPAIGN),
        (Set::Context, "device") => Some(reserved::CONTEXT_DEVICE),
        (Set::Context, "library") => Some(reserved::CONTEXT_LIBRARY),
        (Set::Context, "location") => Some(reserved::CONTEXT_LOCATION),
        (Set::Context, "network") => Some(reserved::CONTEXT_NETWORK),
        (Set::Context, "os") => Some(reserved::CONTEXT_OS),
        (Set::Context, "page") => Some(reserved::CONTEXT_PAGE),
        (Set::Context, "referrer") => Some(reserved::CONTEXT_REFERRER),
        (Set::Context, "screen") => Some(reserved::CONTEXT_SCREEN),
        (Set::Context, "traits") => Some(reserved::IDENTIFY_TRAITS),
        (Set::Context, "userAgentData") => Some(reserved::CONTEXT_USER_AGENT_DATA),
        (Set::Context, _) => None,
        (_, "address") => Some(reserved::ADDRESS_FIELDS),
        (_, "company") => Some(reserved::COMPANY_FIELDS),
        _ => None,
    }
}

/// Checks the reserved fields of an object against `fields`; other keys are custom and
/// free. Nested reserved objects are checked too.
fn check_fields<J: Json>(
    checker: &mut Checker,
    path: &Path<'_>,
    map: &J::Object,
    fields: &'static [ReservedField],
    set: Set,
) {
    let money = set == Set::TrackProperties;
    for (key, value) in J::entries(map) {
        let view = value.view();
        if view.is_null() {
            continue;
        }
        let Some(field) = reserved::lookup(fields, key) else {
            continue;
        };
        let path = path.key(key);
        match field.kind {
            FieldKind::String => {
                if let View::String(s) = view {
                    if money && field.name == "currency" {
                        check_currency(checker, &path, s);
                    }
                } else {
                    checker.wrong_type(&path, "a string", value);
                }
            }
            FieldKind::Number => check_number(checker, &path, value, money),
            FieldKind::StringOrNumber => {
                if !matches!(view, View::String(_) | View::Number(_)) {
                    checker.wrong_type(&path, "a string or a number", value);
                }
            }
            FieldKind::Bool => {
                if !matches!(view, View::Bool) {
                    checker.wrong_type(&path, "a boolean", value);
                }
            }
            FieldKind::Date => check_timestamp(checker, &path, value, true),
            FieldKind::Array => match view {
                View::Array(items) => {
                    if field.name == "keywords" {
                        for (i, item) in items.iter().enumerate() {
                            if !matches!(item.view(), View::String(_)) {
                                checker.wrong_type(&path.index(i), "a string", item);
                            }
                        }
                    }
                }
                _ => checker.wrong_type(&path, "an array", value),
            },
            FieldKind::Object => match view {
                View::Object(inner) => {
                    if let Some(inner_fields) = children(set, field) {
                        // Inside context, reserved sub-fields (library.name, traits.email,
                        // ...) are checked as warnings: the context's own shape is an error.
                        let soft = checker.soft;
                        checker.soft = soft || set == Set::Context;
                        check_fields::<J>(checker, &path, inner, inner_fields, Set::Plain);
                        checker.soft = soft;
                    }
                }
                _ => checker.wrong_type(&path, "an object", value),
            },
        }
    }
}

/// A number field: numbers pass (money must also be an exact decimal); numeric strings warn;
/// anything else is a wrong type.
fn check_number<J: Json>(checker: &mut Checker, path: &Path<'_>, value: &J, money: bool) {
    match value.view() {
        View::Number(n) => {
            if money && n.parse::<Decimal>().is_err() {
                let severity = checker.type_severity();
                checker.push(
                    path,
                    Code::InvalidNumber,
                    severity,
                    format!(
                        "{} is {n}, which no exact decimal holds (at most 38 digits)",
                        path.render()
                    ),
                );
            }
        }
        View::String(s) if s.trim() == s && s.parse::<Decimal>().is_ok() => {
            checker.push(
                path,
                Code::NumericString,
                Severity::Warning,
                format!(
                    "{} is the string {s:?}; send the number {s} instead",
                    path.render()
                ),
            );
        }
        _ => checker.wrong_type(path, "a number", value),
    }
}

fn check_currency(checker: &mut Checker, path: &Path<'_>, code: &str) {
    if currency::is_currency_code(code) {
        return;
    }
    if let Some(upper) = currency::lookup_ignore_case(code) {
        checker.push(
            path,
            Code::CurrencyCase,
            Severity::Warning,
            format!(
                "{} is {code:?}; ISO 4217 codes are upper case: {upper:?}",
                path.render()
            ),
        );
        return;
    }
    if let Some(new) = currency::withdrawn_replacement(code) {
        checker.push(
            path,
            Code::WithdrawnCurrency,
            Severity::Warning,
            format!(
                "{} is {code:?}, withdrawn from ISO 4217; it was replaced by {new:?}",
                path.render()
            ),
        );
        return;
    }
    let severity = checker.type_severity();
    checker.push(
        path,
        Code::InvalidCurrency,
        severity,
        format!(
            "{} is {code:?}, not an ISO 4217 currency code (such as \"USD\" or \"EUR\")",
            path.render()
        ),
    );
}

/// The problem of a message of `len` bytes of JSON, if it is over the limit.
pub fn message_size_problem(len: usize) -> Option<Problem> {
    (len > crate::limits::MAX_MESSAGE_BYTES).then(|| Problem {
        path: String::new(),
        code: Code::MessageTooLarge,
        severity: Severity::Error,
        message: format!(
            "the message is {len} bytes of JSON; the limit is {} bytes (32 KB)",
            crate::limits::MAX_MESSAGE_BYTES
        ),
    })
}

/// The problem of a batch of `len` bytes and `count` messages, if over a limit.
pub fn batch_size_problem(len: usize, count: usize) -> Option<Problem> {
    if len > crate::limits::MAX_BATCH_BYTES {
        return Some(Problem {
            path: String::new(),
            code: Code::BatchTooLarge,
            severity: Severity::Error,
            message: format!(
                "the batch is {len} bytes; the limit is {} bytes (500 KB)",
                crate::limits::MAX_BATCH_BYTES
            ),
        });
    }
    (count > crate::limits::MAX_BATCH_MESSAGES).then(|| Problem {
        path: "batch".to_owned(),
        code: Code::TooManyMessages,
        severity: Severity::Error,
        message: format!(
            "the batch holds {count} messages; the limit is {}",
            crate::limits::MAX_BATCH_MESSAGES
        ),
    })
}

/// Validates the batch-level fields of a batch envelope: `context` and `integrations` must be
/// objects (with integrations of booleans or objects), `sentAt` a strict timestamp.
/// Items are validated one by one after [`crate::Batch::merge_into`].
pub fn validate_envelope(batch: &crate::Batch) -> Report {
    let mut checker = Checker {
        problems: Vec::new(),
        soft: false,
    };
    if let Some(value) = present(&batch.rest, "context") {
        checker.wrong_type(&Path::root("context"), "an object", value);
    }
    if let Some(value) = present(&batch.rest, "integrations") {
        checker.wrong_type(&Path::root("integrations"), "an object", value);
    }
    if let Some(integrations) = &batch.integrations {
        let path = Path::root("integrations");
        for (name, setting) in integrations {
            if !matches!(setting, Value::Bool(_) | Value::Object(_)) {
                checker.wrong_type(&path.key(name), "a boolean or an object", setting);
            }
        }
    }
    if let Some(sent_at) = &batch.sent_at {
        check_timestamp(&mut checker, &Path::root("sentAt"), sent_at, false);
    }
    Report {
        problems: checker.problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_slots_match_top_keys() {
        for (index, key) in TOP_KEYS.iter().enumerate() {
            assert_eq!(top_slot(key), Some(index), "{key}");
        }
        assert_eq!(top_slot("type"), None);
    }
}
