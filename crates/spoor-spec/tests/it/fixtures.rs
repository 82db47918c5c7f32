//! Real payloads captured from the official libraries (segment-analytics-python and
//! @segment/analytics-node; see `tests/fixtures/capture/`): every fixture parses, validates
//! clean, and round-trips.

use std::fs;
use std::path::{Path, PathBuf};

use spoor_spec::reserved::{IdentifyTraits, TrackProperties};
use spoor_spec::{
    Batch, Message, MessageType, NormalizeCtx, Timestamp, Value, normalize, validate,
    validate::validate_envelope,
};

const LIBRARIES: [&str; 2] = ["python", "node"];
const CALLS: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

fn fixture(library: &str, name: &str) -> (PathBuf, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(library)
        .join(format!("{name}.json"));
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, bytes)
}

#[test]
fn every_call_of_every_library_is_captured() {
    for library in LIBRARIES {
        for call in CALLS {
            fixture(library, call);
            fixture(library, &format!("batch-{call}"));
        }
    }
}

#[test]
fn items_parse_validate_clean_and_round_trip_byte_for_byte() {
    for library in LIBRARIES {
        for call in CALLS {
            let (path, bytes) = fixture(library, call);
            let message = Message::from_slice(&bytes, None)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(message.kind().as_str(), call, "{}", path.display());
            let report = validate(&message);
            assert!(
                report.is_clean(),
                "{}: {:?}",
                path.display(),
                report.problems
            );
            // The item files are compact JSON in the library's key order, so serializing
            // the parsed message gives the same bytes.
            assert_eq!(
                String::from_utf8_lossy(&message.to_vec()),
                String::from_utf8_lossy(&bytes),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn envelopes_parse_merge_validate_and_round_trip() {
    for library in LIBRARIES {
        for call in CALLS {
            let (path, bytes) = fixture(library, &format!("batch-{call}"));
            let value: Value = serde_json::from_slice(&bytes).expect("JSON");
            if library == "node" {
                // analytics-node sends compact JSON: re-serializing gives the same bytes.
                assert_eq!(serde_json::to_vec(&value).expect("serializes"), bytes);
            }
            let batch = Batch::from_value(value.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(validate_envelope(&batch).is_clean(), "{}", path.display());
            assert!(batch.write_key.is_some() && batch.sent_at.is_some());
            assert_eq!(batch.clone().into_value(), value, "{}", path.display());
            let messages = batch.into_messages();
            assert_eq!(messages.len(), 1);
            for message in messages {
                let mut message = message.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(message.body().contains_key("sentAt"), "batch sentAt merged");
                let report = validate(&message);
                assert!(
                    report.is_clean(),
                    "{}: {:?}",
                    path.display(),
                    report.problems
                );
                let mut new_id = || "unused".to_owned();
                let mut ctx = NormalizeCtx {
                    received_at: Timestamp::parse("2030-01-01T00:00:00Z").expect("valid"),
                    new_message_id: &mut new_id,
                };
                normalize(&mut message, &mut ctx);
                let report = validate(&message);
                assert!(
                    report.is_clean(),
                    "{} normalized: {:?}",
                    path.display(),
                    report.problems
                );
                assert_ne!(message.message_id(), Some("unused"));
                assert_eq!(message.received_at(), Some("2030-01-01T00:00:00.000Z"));
                let reparsed = Message::from_slice(&message.to_vec(), None).expect("reparses");
                assert_eq!(reparsed, message);
            }
        }
    }
}

#[test]
fn revenue_stays_exact_and_names_are_filled() {
    for library in LIBRARIES {
        let (_, bytes) = fixture(library, "track");
        let message = Message::from_slice(&bytes, Some(MessageType::Track)).expect("parses");
        let props = TrackProperties::of(&message).expect("properties");
        assert_eq!(
            props.revenue().map(|d| d.to_string()).as_deref(),
            Some("19.99")
        );
        assert!(String::from_utf8_lossy(&message.to_vec()).contains(r#""revenue":19.99"#));

        let (_, bytes) = fixture(library, "identify");
        let mut message = Message::from_slice(&bytes, None).expect("parses");
        let mut new_id = || "unused".to_owned();
        let mut ctx = NormalizeCtx {
            received_at: Timestamp::from_unix_millis(0),
            new_message_id: &mut new_id,
        };
        normalize(&mut message, &mut ctx);
        let traits = IdentifyTraits::of(&message).expect("traits");
        let want = if library == "python" {
            "Ada Lovelace"
        } else {
            "Grace Hopper"
        };
        assert_eq!(traits.name(), Some(want));
    }
}

/// The keys of every object in a value, as sorted dotted paths (values ignored).
fn shape(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = format!("{prefix}.{key}");
                out.push(path.clone());
                shape(inner, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn shape_of(bytes: &[u8]) -> Vec<String> {
    let value: Value = serde_json::from_slice(bytes).expect("JSON");
    let mut out = Vec::new();
    shape(&value, "", &mut out);
    out.sort();
    out.dedup();
    out
}

/// Captures afresh from the installed official libraries (the scripts under
/// `tests/fixtures/capture/`) and checks that what they send today validates clean and has
/// the committed fixtures' shape. Needs SPOOR_TEST_PYTHON (a python with
/// segment-analytics-python) and SPOOR_TEST_NODE_MODULES (with @segment/analytics-node),
/// which `.ci/run` sets.
#[test]
fn live_capture_matches_the_fixtures() {
    let (Ok(python), Ok(node_modules)) = (
        std::env::var("SPOOR_TEST_PYTHON"),
        std::env::var("SPOOR_TEST_NODE_MODULES"),
    ) else {
        eprintln!("skipped: SPOOR_TEST_PYTHON or SPOOR_TEST_NODE_MODULES not set");
        return;
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = std::env::temp_dir().join(format!(
        "spoor-spec-capture-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let status = std::process::Command::new("bash")
        .arg(fixtures.join("capture/capture.sh"))
        .arg(&python)
        .arg(&node_modules)
        .arg(&out)
        .status()
        .expect("bash runs");
    assert!(status.success(), "capture.sh failed: {status}");
    for library in LIBRARIES {
        for call in CALLS {
            for name in [call.to_owned(), format!("batch-{call}")] {
                let live_path = out.join(library).join(format!("{name}.json"));
                let live =
                    fs::read(&live_path).unwrap_or_else(|e| panic!("{}: {e}", live_path.display()));
                let (_, committed) = fixture(library, &name);
                assert_eq!(shape_of(&live), shape_of(&committed), "{library}/{name}");
            }
            let live = fs::read(out.join(library).join(format!("{call}.json"))).expect("item");
            let message = Message::from_slice(&live, None).expect("live item parses");
            let report = validate(&message);
            assert!(
                report.is_clean(),
                "{library}/{call} live: {:?}",
                report.problems
            );
        }
    }
    let _ = fs::remove_dir_all(&out);
}
