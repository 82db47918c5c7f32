//! Table and column names: Segment's `snake_case` (from the Spec crate) plus the rules a SQL
//! database needs.
//!
//! - Names that start with a digit, or that are SQL keywords, get a leading `_`
//!   (`3d` → `_3d`, `order` → `_order`).
//! - A trait or property whose column would collide with a column spoor sets itself (`id`,
//!   `user_id`, `received_at`, any `context_*`, ...) is kept under the same name with a leading
//!   `_` (`id` → `_id`). Segment drops such values; spoor keeps them.
//! - An event whose table name would collide with a fixed table (`tracks`, `users`, the
//!   internal tables, the log's `messages`) gets a leading `_` too.
//! - Names are cut to 63 bytes, PostgreSQL's identifier limit.
//!
//! `snake_case` never produces a leading `_`, so prefixed names cannot collide with plain ones.

/// PostgreSQL's identifier length limit, applied on both backends so they agree.
pub const MAX_NAME_BYTES: usize = 63;

/// Reserved SQL words (reserved in PostgreSQL and standard SQL, and the SQLite keywords that
/// cannot be column names unquoted) that get a leading `_`. Words that are only keywords in some
/// contexts (`plan`, `key`, `name`, `type`, ...) are left alone.
const KEYWORDS: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "both",
    "by",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "delete",
    "desc",
    "distinct",
    "do",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exists",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "in",
    "index",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "join",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "set",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "values",
    "variadic",
    "when",
    "where",
    "with",
];

/// Tables spoor creates itself, plus the log's tables that `spoor query` shows next to the
/// warehouse: an event table never takes one of these names.
pub const FIXED_TABLES: &[&str] = &[
    "identifies",
    "users",
    "groups",
    "accounts",
    "aliases",
    "pages",
    "screens",
    "tracks",
    "type_conflicts",
    "profile_ids",
    "profile_traits",
    "identity_merges",
    "event_days",
    "profile_days",
    "warehouse_columns",
    "warehouse_state",
    "messages",
    "discards",
];

/// True when `name` is a SQL keyword.
pub fn is_keyword(name: &str) -> bool {
    KEYWORDS.binary_search(&name).is_ok()
}

/// Cuts a name to [`MAX_NAME_BYTES`] (names are ASCII after `snake_case`).
fn cut(mut name: String) -> String {
    if name.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// Applies the digit and keyword rules to an already snake_cased name.
pub fn sql_safe(name: &str) -> String {
    let needs_prefix = name.starts_with(|c: char| c.is_ascii_digit()) || is_keyword(name);
    if needs_prefix {
        cut(format!("_{name}"))
    } else {
        cut(name.to_owned())
    }
}

/// The table of a track event, or `None` when the name has no letters or digits at all (the
/// message then only lands in `tracks`).
pub fn event_table(event: &str) -> Option<String> {
    let snake = spoor_spec::naming::snake_case(event);
    if snake.is_empty() {
        return None;
    }
    if FIXED_TABLES.contains(&snake.as_str()) {
        return Some(cut(format!("_{snake}")));
    }
    Some(sql_safe(&snake))
}

/// The column of a flattened trait or property, given the columns spoor sets itself in that
/// table (`fixed`).
pub fn data_column(flat: &str, fixed: &[&str]) -> String {
    if fixed.contains(&flat) || flat.starts_with("context_") {
        return cut(format!("_{flat}"));
    }
    sql_safe(flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted_for_binary_search() {
        let mut sorted = KEYWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, KEYWORDS);
    }

    #[test]
    fn rules() {
        assert_eq!(sql_safe("3d_model"), "_3d_model");
        assert_eq!(sql_safe("order"), "_order");
        assert_eq!(sql_safe("plan"), "plan");
        assert_eq!(
            event_table("Order Completed").as_deref(),
            Some("order_completed")
        );
        assert_eq!(event_table("Tracks").as_deref(), Some("_tracks"));
        assert_eq!(event_table("2FA Enabled").as_deref(), Some("_2fa_enabled"));
        assert_eq!(event_table("$$$"), None);
        assert_eq!(data_column("id", &["id", "user_id"]), "_id");
        assert_eq!(data_column("context_ip", &["id"]), "_context_ip");
        assert_eq!(data_column("select", &["id"]), "_select");
        assert_eq!(data_column(&"a".repeat(80), &[]).len(), 63);
    }
}
