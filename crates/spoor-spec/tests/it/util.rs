//! Shared helpers: building messages from JSON text and summarizing reports.

use spoor_spec::{Message, MessageType, Report, Severity, Value, validate};

/// Parses a message from JSON text; the body must carry its `type`.
pub fn msg(json: &str) -> Message {
    Message::from_slice(json.as_bytes(), None)
        .unwrap_or_else(|e| panic!("test message does not parse: {e}\n{json}"))
}

/// Parses JSON text into a value.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad test JSON: {e}\n{text}"))
}

/// The problems of a report as `(severity, code, path)` triples, in order.
pub fn summary(report: &Report) -> Vec<(&'static str, &'static str, String)> {
    report
        .problems
        .iter()
        .map(|p| {
            let severity = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            (severity, p.code.as_str(), p.path.clone())
        })
        .collect()
}

/// Validates JSON text as a message of type `kind` (implied, as on `/v1/<kind>`).
pub fn check(kind: MessageType, json: &str) -> Vec<(&'static str, &'static str, String)> {
    let message = Message::from_slice(json.as_bytes(), Some(kind))
        .unwrap_or_else(|e| panic!("test message does not parse: {e}\n{json}"));
    summary(&validate(&message))
}
