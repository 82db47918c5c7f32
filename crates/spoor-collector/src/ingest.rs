//! The ingest domain function: from a decoded request body to durable messages.
//!
//! [`ingest`] authenticates the request (HTTP Basic write key, or `writeKey` in the body;
//! both must agree when both are present), parses it, checks the limits, merges batch-level
//! fields into items, validates and normalizes each message with the Spec crate, fills
//! `context.ip`, and appends everything to the [`spoor_store::MessageLog`] in one request:
//! the accepted messages and the rejected ones (`discards`), so nothing is dropped silently.
//! It returns only after the log has committed.
//!
//! Rules, as decided where Segment is silent (see `docs/COLLECTOR.md`):
//! - one bad message on a single-message endpoint rejects the request (400) with every error;
//! - in a batch, valid items are accepted and invalid ones listed (200);
//! - `writeKey` is removed from stored bodies (it is a secret); the source is the
//!   `source_id` column, not a `projectId` in the body;
//! - a request whose write key cannot be established is answered but nothing of it is
//!   stored (no unauthenticated writes to disk).

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use spoor_spec::validate::{batch_size_problem, message_size_problem};
use spoor_spec::{
    Batch, BorrowedMessage, Map, Message, MessageType, Node, NormalizeCtx, Object, ParseError,
    Problem, Timestamp, Value,
};
use spoor_store::{
    AppendOutcome, AppendRequest, KeySnapshot, MessageFields, NewDiscard, NewMessage, StoreError,
};

use crate::AppState;

/// Which kind of endpoint received the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/track`, `/v1/t`, ...: one message whose type the path implies.
    Single(MessageType),
    /// `/v1/batch`, `/v1/import`, `/v1/b`.
    Batch,
}

/// One request, decoded from HTTP.
#[derive(Clone, Copy, Debug)]
pub struct IngestRequest<'a> {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The decompressed body.
    pub body: &'a [u8],
    /// The write key from HTTP Basic auth, if sent.
    pub basic_key: Option<&'a str>,
    /// The client's address, for `context.ip`.
    pub client_ip: Option<IpAddr>,
}

/// One problem, as answered and as stored in `discards.reasons`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Dotted JSON path (`batch[3].userId`), empty for the whole body.
    pub path: String,
    /// Stable code.
    pub code: String,
    /// A sentence naming the field and the rule.
    pub message: String,
}

impl Reason {
    fn from_problem(problem: &Problem, prefix: &str) -> Reason {
        Reason {
            path: join_path(prefix, &problem.path),
            code: problem.code.as_str().to_owned(),
            message: problem.message.clone(),
        }
    }

    fn from_parse(err: &ParseError, path: &str) -> Reason {
        Reason {
            path: path.to_owned(),
            code: err.code().to_owned(),
            message: err.to_string(),
        }
    }
}

fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// A batch item that was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectedItem {
    /// Its index in `batch`.
    pub index: usize,
    /// Every error found.
    pub errors: Vec<Reason>,
}

/// The result of an accepted request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Messages acknowledged (stored or duplicate).
    pub accepted: usize,
    /// Of those, duplicates within the dedupe window (stored once, earlier).
    pub duplicates: usize,
    /// Batch items not accepted.
    pub rejected: Vec<RejectedItem>,
}

/// Why a request's write key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key in the Authorization header nor in the body.
    #[error("no write key: send it as the HTTP Basic user name or as writeKey in the body")]
    Missing,
    /// The Authorization header is not valid Basic auth.
    #[error("the Authorization header is not valid HTTP Basic auth (base64 of \"WRITE_KEY:\")")]
    MalformedHeader,
    /// The key is not known.
    #[error("unknown write key")]
    Unknown,
    /// The key's source is disabled.
    #[error("the source of this write key is disabled")]
    Disabled,
    /// Basic auth and the body name different keys.
    #[error("the write key in the Authorization header and writeKey in the body differ")]
    Mismatch,
    /// `writeKey` in the body is not a string.
    #[error("writeKey: must be a string")]
    NotAString,
}

impl AuthError {
    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::Missing => "missing_write_key",
            AuthError::MalformedHeader => "invalid_authorization",
            AuthError::Unknown => "invalid_write_key",
            AuthError::Disabled => "source_disabled",
            AuthError::Mismatch => "write_key_mismatch",
            AuthError::NotAString => "invalid_write_key",
        }
    }
}

/// Why a request was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The write key is missing, unknown or disabled (401).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The request is bad and will never succeed (400). Kept in `discards` when the source
    /// is known.
    #[error("{message}")]
    Rejected {
        /// Stable code.
        code: String,
        /// A sentence for people.
        message: String,
        /// Every problem, when the request was one message.
        errors: Vec<Reason>,
    },
    /// The store could not commit (503; retrying later may work).
    #[error("the store is unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Ingests one request: authenticate, parse, validate, normalize, append durably.
pub async fn ingest(state: &AppState, request: IngestRequest<'_>) -> Result<Accepted, IngestError> {
    let keys = state.keys.snapshot();
    let received_at = (state.clock)();
    let basic_source = match request.basic_key {
        Some(key) => Some(resolve(&keys, key)?),
        None => None,
    };
    let parsed = match parse_body(request.endpoint, request.body) {
        Ok(parsed) => parsed,
        Err(err) => {
            let reason = Reason::from_parse(&err, "");
            return reject_request(state, basic_source, received_at, reason, request.body).await;
        }
    };
    let body_key = match parsed.write_key() {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.as_str()),
        Some(_) => return Err(AuthError::NotAString.into()),
    };
    let source = match (basic_source, body_key) {
        (None, None) => return Err(AuthError::Missing.into()),
        (Some(source), None) => source,
        (None, Some(key)) => resolve(&keys, key)?,
        (Some(source), Some(key)) => {
            let other = resolve(&keys, key).map_err(|_| AuthError::Mismatch)?;
            if other != source || request.basic_key.is_some_and(|basic| basic != key) {
                return Err(AuthError::Mismatch.into());
            }
            source
        }
    };
    let mut prepared = Prepared::new(Arc::clone(&source), received_at, request.client_ip);
    match parsed {
        Parsed::Single(value, kind) => {
            if let Err((code, errors)) = prepared.single(value, kind, request.body.len()) {
                return reject_single(state, prepared, code, errors).await;
            }
        }
        Parsed::Batch { envelope, items } => {
            let reject = |err: ParseError| Reason::from_parse(&err, "");
            let items = match items {
                Some(items) => items,
                _ => {
                    let reason = reject(ParseError::MissingBatch);
                    return reject_request(state, Some(source), received_at, reason, request.body)
                        .await;
                }
            };
            let batch = match Batch::from_value(Value::Object(envelope)) {
                Ok(batch) => batch,
                Err(err) => {
                    return reject_request(
                        state,
                        Some(source),
                        received_at,
                        reject(err),
                        request.body,
                    )
                    .await;
                }
            };
            if let Some(problem) = batch_size_problem(request.body.len(), items.len()) {
                let reason = Reason::from_problem(&problem, "");
                return reject_request(state, Some(source), received_at, reason, request.body)
                    .await;
            }
            prepared.batch(&batch, &items);
        }
    }
    let accepted_count = prepared.request.messages.len();
    let rejected = std::mem::take(&mut prepared.rejected);
    let outcome = append(state, prepared.request).await?;
    state
        .metrics
        .record_accepted(accepted_count, outcome.duplicates);
    for item in &rejected {
        state.metrics.record_rejected(
            item.errors.first().map_or("invalid", |r| r.code.as_str()),
            1,
        );
    }
    Ok(Accepted {
        accepted: accepted_count,
        duplicates: outcome.duplicates,
        rejected,
    })
}

/// A request body, parsed as far as the endpoint needs before authentication.
enum Parsed<'a> {
    /// One message and the type its path implies.
    Single(Value, MessageType),
    /// A batch: the envelope's fields (with an empty `batch`), and each item's JSON text
    /// (`None` when `batch` is missing or not an array).
    Batch {
        envelope: Map<String, Value>,
        items: Option<Vec<&'a str>>,
    },
}

impl Parsed<'_> {
    fn write_key(&self) -> Option<&Value> {
        match self {
            Parsed::Single(value, _) => value.get("writeKey"),
            Parsed::Batch { envelope, .. } => envelope.get("writeKey"),
        }
    }
}

/// Parses the body. A batch's items stay raw JSON, so each is measured by its exact bytes
/// and parsed once, on its own.
fn parse_body(endpoint: Endpoint, body: &[u8]) -> Result<Parsed<'_>, ParseError> {
    match endpoint {
        Endpoint::Single(kind) => serde_json::from_slice(body)
            .map(|value| Parsed::Single(value, kind))
            .map_err(|err| ParseError::from_json(&err)),
        Endpoint::Batch => {
            let starts_as_object = body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{');
            if !starts_as_object {
                // Not an object: find out what it is (or where the JSON breaks).
                let value: Value =
                    serde_json::from_slice(body).map_err(|err| ParseError::from_json(&err))?;
                return Err(ParseError::NotAnObject {
                    found: spoor_spec::message::json_kind(&value),
                });
            }
            let RawBody { fields, items } = match serde_json::from_slice::<RawBody<'_>>(body) {
                Ok(split) => split,
                // serde_json words some syntax errors inside an array differently when it
                // reads the array element by element: read the body again as before, for
                // the same error (and the same result, should it succeed).
                Err(_) => split_whole(body)?,
            };
            let mut envelope = Map::new();
            for (key, raw) in fields {
                let value: Value =
                    serde_json::from_str(raw.get()).map_err(|err| ParseError::from_json(&err))?;
                envelope.insert(key, value);
            }
            envelope.insert("batch".to_owned(), Value::Array(Vec::new()));
            Ok(Parsed::Batch { envelope, items })
        }
    }
}

/// A batch body read in one pass: the fields other than `batch`, their values left raw,
/// and the text of each item of `batch` (`None` when it is missing or not an array; the
/// last `batch` wins, as the last value of a key does in a `Value`).
struct RawBody<'a> {
    fields: Vec<(String, &'a RawValue)>,
    items: Option<Vec<&'a str>>,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawBody<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Fields<'a> {
            type Value = RawBody<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut body = RawBody {
                    fields: Vec::new(),
                    items: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    if key == "batch" {
                        body.items = map.next_value_seed(Items(std::marker::PhantomData))?;
                    } else {
                        body.fields.push((key, map.next_value::<&'de RawValue>()?));
                    }
                }
                Ok(body)
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// The items of `batch`, each as its exact JSON text; `None` for any other JSON value.
struct Items<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::DeserializeSeed<'de> for Items<'a> {
    type Value = Option<Vec<&'a str>>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> serde::de::Visitor<'de> for Items<'a> {
    type Value = Option<Vec<&'a str>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item.get());
        }
        Ok(Some(items))
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        use serde::de::IgnoredAny;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A batch body read as before [`RawBody`]: the body with each value left raw, then the
/// `batch` array split into raw items. For bodies [`RawBody`] refuses, so the error names
/// the same place with the same words.
fn split_whole(body: &[u8]) -> Result<RawBody<'_>, ParseError> {
    let fields: Vec<(String, &RawValue)> = serde_json::from_slice::<RawObject<'_>>(body)
        .map_err(|err| ParseError::from_json(&err))?
        .0;
    let mut split = RawBody {
        fields: Vec::with_capacity(fields.len()),
        items: None,
    };
    for (key, raw) in fields {
        if key == "batch" {
            split.items = serde_json::from_str::<Vec<&RawValue>>(raw.get())
                .ok()
                .map(|items| items.iter().map(|item| item.get()).collect());
        } else {
            split.fields.push((key, raw));
        }
    }
    Ok(split)
}

/// A JSON object's fields in order, values left raw.
struct RawObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Fields<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(RawObject(fields))
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

async fn append(state: &AppState, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
    let started = std::time::Instant::now();
    let outcome = state.log.append(request).await;
    state.metrics.record_commit(started.elapsed());
    outcome
}

fn resolve(keys: &KeySnapshot, key: &str) -> Result<Arc<str>, AuthError> {
    if key.is_empty() {
        return Err(AuthError::Missing);
    }
    let entry = keys.write_key(key).ok_or(AuthError::Unknown)?;
    if !entry.enabled {
        return Err(AuthError::Disabled);
    }
    Ok(Arc::clone(&entry.source_id))
}

/// A request-level rejection: stored in `discards` when the source is known, then 400.
async fn reject_request(
    state: &AppState,
    source: Option<Arc<str>>,
    received_at: Timestamp,
    reason: Reason,
    body: &[u8],
) -> Result<Accepted, IngestError> {
    state.metrics.record_rejected(&reason.code, 1);
    if let Some(source) = source {
        let discard = NewDiscard {
            source_id: Some(source),
            code: reason.code.clone(),
            reasons: serde_json::to_string(&[&reason]).unwrap_or_default(),
            body: String::from_utf8_lossy(body).into_owned(),
        };
        let request = AppendRequest {
            received_at,
            messages: Vec::new(),
            discards: vec![discard],
        };
        if let Err(err) = append(state, request).await {
            tracing::error!(error = %err, "cannot store a rejected request in discards");
        }
    }
    Err(IngestError::Rejected {
        code: reason.code,
        message: reason.message,
        errors: Vec::new(),
    })
}

/// A single message that failed: its discard is already prepared; store it, then 400.
async fn reject_single(
    state: &AppState,
    prepared: Prepared,
    code: String,
    errors: Vec<Reason>,
) -> Result<Accepted, IngestError> {
    let reason = errors.first().map_or(code.as_str(), |r| r.code.as_str());
    state.metrics.record_rejected(reason, 1);
    if let Err(err) = append(state, prepared.request).await {
        tracing::error!(error = %err, "cannot store a rejected message in discards");
    }
    let message = match errors.as_slice() {
        [one] => format!("{}: {}", one.path, one.message),
        many => format!(
            "the message has {} errors: {}",
            many.len(),
            many.iter()
                .map(|r| format!("{}: {}", r.path, r.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    Err(IngestError::Rejected {
        code,
        message,
        errors,
    })
}

/// Messages and discards of one request, being built.
struct Prepared {
    source: Arc<str>,
    /// The client's address as text, formatted once per request.
    client_ip: Option<String>,
    request: AppendRequest,
    rejected: Vec<RejectedItem>,
}

impl Prepared {
    fn new(source: Arc<str>, received_at: Timestamp, client_ip: Option<IpAddr>) -> Prepared {
        Prepared {
            source,
            client_ip: client_ip.map(|ip| ip.to_string()),
            request: AppendRequest {
                received_at,
                messages: Vec::new(),
                discards: Vec::new(),
            },
            rejected: Vec::new(),
        }
    }

    /// One message on a single-message endpoint. On failure, the discard is prepared and
    /// the code and reasons are returned.
    fn single(
        &mut self,
        value: Value,
        kind: MessageType,
        size: usize,
    ) -> Result<(), (String, Vec<Reason>)> {
        let message = match to_message(value, Some(kind)) {
            Ok(message) => message,
            Err((err, value)) => {
                let reason = Reason::from_parse(
                    &err,
                    if err.code() == "not_an_object" {
                        ""
                    } else {
                        "type"
                    },
                );
                let code = reason.code.clone();
                self.discard(vec![reason.clone()], &value);
                return Err((code, vec![reason]));
            }
        };
        if let Some(problem) = message_size_problem(size) {
            let reason = Reason::from_problem(&problem, "");
            let code = reason.code.clone();
            self.discard(vec![reason.clone()], &message.into_value());
            return Err((code, vec![reason]));
        }
        let report = spoor_spec::validate(&message);
        if !report.is_ok() {
            let reasons: Vec<Reason> = report
                .errors()
                .map(|p| Reason::from_problem(p, ""))
                .collect();
            self.discard(reasons.clone(), &message.into_value());
            return Err(("validation_failed".to_owned(), reasons));
        }
        self.accept(message);
        Ok(())
    }

    /// Every item of a batch: accepted or listed as rejected (with a discard).
    ///
    /// Each item first takes the borrowed tree ([`Prepared::accept_borrowed`]); an item it
    /// does not accept (invalid, or JSON it leaves to `Value`) takes the `Value` path below,
    /// which gives the same stored bytes for a valid item and builds every rejection.
    fn batch(&mut self, batch: &Batch, items: &[&str]) {
        self.request.messages.reserve(items.len());
        for (index, &raw) in items.iter().enumerate() {
            if self.accept_borrowed(batch, raw) {
                continue;
            }
            let prefix = || format!("batch[{index}]");
            let size = raw.len();
            // The text was checked as JSON when the body was split, so this cannot fail;
            // should it, the item is rejected like any other bad item.
            let item: Value = match serde_json::from_str(raw) {
                Ok(item) => item,
                Err(err) => {
                    let reason = Reason::from_parse(&ParseError::from_json(&err), &prefix());
                    self.reject_item(index, vec![reason], &Value::String(raw.to_owned()));
                    continue;
                }
            };
            let mut map = match item {
                Value::Object(map) => map,
                other => {
                    let err = ParseError::NotAnObject {
                        found: spoor_spec::message::json_kind(&other),
                    };
                    self.reject_item(index, vec![Reason::from_parse(&err, &prefix())], &other);
                    continue;
                }
            };
            if let Some(problem) = message_size_problem(size) {
                let value = Value::Object(map);
                self.reject_item(
                    index,
                    vec![Reason::from_problem(&problem, &prefix())],
                    &value,
                );
                continue;
            }
            batch.merge_into(&mut map);
            let message = match to_message(Value::Object(map), None) {
                Ok(message) => message,
                Err((err, value)) => {
                    let reason = Reason::from_parse(&err, &format!("{}.type", prefix()));
                    self.reject_item(index, vec![reason], &value);
                    continue;
                }
            };
            let report = spoor_spec::validate(&message);
            if !report.is_ok() {
                let prefix = prefix();
                let reasons = report
                    .errors()
                    .map(|p| Reason::from_problem(p, &prefix))
                    .collect();
                self.reject_item(index, reasons, &message.into_value());
                continue;
            }
            self.accept(message);
        }
    }

    /// Accepts a batch item through the borrowed tree when it is valid; false (and nothing
    /// done) when the item must take the `Value` path: over the size limit, not an object,
    /// JSON the tree refuses (see [`spoor_spec::borrowed`]), no valid type, or any error.
    fn accept_borrowed(&mut self, batch: &Batch, text: &str) -> bool {
        if message_size_problem(text.len()).is_some() {
            return false;
        }
        let Ok(Node::Object(mut map)) = Node::parse(text) else {
            return false;
        };
        batch.merge_into_borrowed(&mut map);
        let Ok(mut message) = BorrowedMessage::from_object(map, None) else {
            return false;
        };
        if !spoor_spec::validate_borrowed(&message).is_ok() {
            return false;
        }
        let body = message.body_mut();
        body.shift_remove("writeKey");
        if let Some(ip) = &self.client_ip {
            fill_ip_borrowed(body, ip);
        }
        let mut new_id = fresh_message_id;
        let mut ctx = NormalizeCtx {
            received_at: self.request.received_at,
            new_message_id: &mut new_id,
        };
        spoor_spec::normalize_borrowed(&mut message, &mut ctx);
        let body = message.body();
        // Room for the normalized body and the fields stored beside it (`NewMessage::new`).
        let mut json = Vec::with_capacity(text.len() + 320);
        body.write_json(&mut json);
        let user_id = id_text_borrowed(body.get("userId"));
        let anonymous_id = id_text_borrowed(body.get("anonymousId"));
        let stored = NewMessage::new(
            Arc::clone(&self.source),
            message
                .str_field("messageId")
                .unwrap_or_default()
                .to_owned(),
            message.kind().as_str(),
            String::from_utf8(json).unwrap_or_default(),
            MessageFields {
                user_id,
                anonymous_id,
                event: message.str_field("event"),
                timestamp: message.str_field("timestamp"),
            },
        );
        self.request.messages.push(stored);
        true
    }

    fn reject_item(&mut self, index: usize, errors: Vec<Reason>, value: &Value) {
        self.discard(errors.clone(), value);
        self.rejected.push(RejectedItem { index, errors });
    }

    fn discard(&mut self, reasons: Vec<Reason>, value: &Value) {
        let mut value = value.clone();
        if let Value::Object(map) = &mut value {
            map.shift_remove("writeKey");
        }
        self.request.discards.push(NewDiscard {
            source_id: Some(Arc::clone(&self.source)),
            code: reasons
                .first()
                .map_or_else(|| "invalid".to_owned(), |r| r.code.clone()),
            reasons: serde_json::to_string(&reasons).unwrap_or_default(),
            body: serde_json::to_string(&value).unwrap_or_default(),
        });
    }

    fn accept(&mut self, mut message: Message) {
        let body = message.body_mut();
        body.shift_remove("writeKey");
        if let Some(ip) = &self.client_ip {
            fill_ip(body, ip);
        }
        let mut new_id = fresh_message_id;
        let mut ctx = NormalizeCtx {
            received_at: self.request.received_at,
            new_message_id: &mut new_id,
        };
        spoor_spec::normalize(&mut message, &mut ctx);
        let body = message.body();
        let user_id = id_text(body.get("userId"));
        let anonymous_id = id_text(body.get("anonymousId"));
        let stored = NewMessage::new(
            Arc::clone(&self.source),
            message.message_id().unwrap_or_default().to_owned(),
            message.kind().as_str(),
            serde_json::to_string(body).unwrap_or_default(),
            MessageFields {
                user_id: user_id.as_deref(),
                anonymous_id: anonymous_id.as_deref(),
                event: message.event(),
                timestamp: message.timestamp(),
            },
        );
        self.request.messages.push(stored);
    }
}

/// Builds a message, giving the value back when it is not one (for the discard).
fn to_message(value: Value, implied: Option<MessageType>) -> Result<Message, (ParseError, Value)> {
    let will_parse = match &value {
        Value::Object(map) => match map.get("type") {
            None | Some(Value::Null) => implied.is_some(),
            Some(Value::String(name)) => MessageType::from_wire(name)
                .is_some_and(|kind| implied.is_none_or(|expected| expected == kind)),
            Some(_) => false,
        },
        _ => false,
    };
    if will_parse {
        Message::from_value(value, implied).map_err(|err| (err, Value::Null))
    } else {
        match Message::from_value(value.clone(), implied) {
            Ok(message) => Ok(message),
            Err(err) => Err((err, value)),
        }
    }
}

fn fill_ip(body: &mut Map<String, Value>, ip: &str) {
    match body.get_mut("context") {
        Some(Value::Object(context)) => {
            if context.get("ip").is_none_or(Value::is_null) {
                context.insert("ip".to_owned(), Value::String(ip.to_owned()));
            }
        }
        None | Some(Value::Null) => {
            let mut context = Map::new();
            context.insert("ip".to_owned(), Value::String(ip.to_owned()));
            body.insert("context".to_owned(), Value::Object(context));
        }
        Some(_) => {}
    }
}

/// [`fill_ip`] for the borrowed tree.
fn fill_ip_borrowed(body: &mut Object<'_>, ip: &str) {
    match body.get_mut("context") {
        Some(Node::Object(context)) => {
            if context.get("ip").is_none_or(Node::is_null) {
                context.insert("ip", Node::String(ip.to_owned().into()));
            }
        }
        None | Some(Node::Null) => {
            let mut context = Object::new();
            context.insert("ip", Node::String(ip.to_owned().into()));
            body.insert("context", Node::Object(context));
        }
        Some(_) => {}
    }
}

/// [`id_text`] for the borrowed tree.
fn id_text_borrowed<'n>(value: Option<&'n Node<'_>>) -> Option<&'n str> {
    match value? {
        Node::String(text) | Node::Number(text) => Some(text),
        _ => None,
    }
}

fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn fresh_message_id() -> String {
    spoor_store::secret::new_uuid()
        .unwrap_or_else(|_| format!("spoor-{}", spoor_store::files::now().unix_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Shown<'a> = (Vec<String>, Option<Vec<&'a str>>);

    /// Both readings of a batch body, as (fields, items) texts.
    fn both(body: &str) -> (Result<Shown<'_>, String>, Result<Shown<'_>, String>) {
        fn show(split: RawBody<'_>) -> Shown<'_> {
            let fields = split
                .fields
                .iter()
                .map(|(key, raw)| format!("{key}={}", raw.get()))
                .collect();
            (fields, split.items)
        }
        let one_pass = serde_json::from_slice::<RawBody<'_>>(body.as_bytes())
            .map(show)
            .map_err(|err| err.to_string());
        let two_pass = split_whole(body.as_bytes())
            .map(show)
            .map_err(|err| err.to_string());
        (one_pass, two_pass)
    }

    #[test]
    fn one_pass_splits_batches_as_two_passes_do() {
        let bodies = [
            r#"{"batch":[]}"#,
            r#"{ "batch" : [ ] , "sentAt" : "x" }"#,
            r#"{"batch":[ 1 , 2 ,3],"context":{"a":[1,{"b":2}]}}"#,
            r#"{"a":1,"batch":[{"a":"],[{\"x\\"},{"b":[1,[2,{}]]}, "s\\\" , ]" ,  null,true ,{"k":"\u00e9é,"}],"z":null}"#,
            r#"{"batch":[[],[[]],{},{"":""}]}"#,
            r#"{"batch":{"type":"track"}}"#,
            r#"{"batch":"[1,2]"}"#,
            r#"{"batch":12.5e3}"#,
            r#"{"batch":null}"#,
            r#"{"batch":[1],"batch":{"x":1}}"#,
            r#"{"batch":{"x":1},"batch":[2]}"#,
            r#"{"nobatch":true}"#,
        ];
        for body in bodies {
            let (one_pass, two_pass) = both(body);
            assert!(one_pass.is_ok(), "{body}: {one_pass:?}");
            assert_eq!(one_pass, two_pass, "{body}");
        }
        // Broken bodies: the one-pass reading fails too (and the caller asks split_whole).
        for body in [
            r#"{"batch":[1,]}"#,
            r#"{"batch":[1 2]}"#,
            r#"{"batch":[{"a":}]}"#,
            r#"{"batch":[1"#,
        ] {
            let (one_pass, two_pass) = both(body);
            assert!(one_pass.is_err() && two_pass.is_err(), "{body}");
        }
    }
}
