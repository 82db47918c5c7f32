//! The BI reports: each is one SQL query per dialect, written here and nowhere else, over the
//! warehouse tables, so a BI tool pointed at the same database gets the same numbers
//! (`spoor report NAME --show-sql` prints the query).
//!
//! Conventions:
//! - Times are the messages' `timestamp` (the event time, corrected for clock skew by the
//!   collector), in UTC. `--since` is inclusive and `--until` exclusive.
//! - A user is a profile (see [`crate::identity`]): events sent before identification count
//!   for the identified user.
//! - Activity (active users, retention) is any track, page or screen call.
//! - Weeks start on Monday.
//! - `events`, `active-users` and `retention` read the per-day rollups the loader keeps
//!   (`event_days`, `profile_days`) when the time bounds are whole days (or absent), and the
//!   message tables otherwise; both give the same numbers.

use std::fmt;

use spoor_spec::Timestamp;

use crate::WarehouseError;
use crate::dialect::{Dialect, quote, text_literal};
use crate::schema::{Schema, TableKind, fixed_names};
use crate::store::{Rows, Store};
use crate::value::ColType;

/// The reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportName {
    /// Track calls per event name per day.
    Events,
    /// Event names by number of calls, with distinct users.
    TopEvents,
    /// Daily, weekly and monthly active users.
    ActiveUsers,
    /// Revenue per currency per day (exact), from `revenue` properties.
    Revenue,
    /// Users who did each step in order within a window.
    Funnel,
    /// Weekly cohorts by first seen, and how many come back each week.
    Retention,
    /// Merges that would join two known users, made or refused.
    IdentityMerges,
}

impl ReportName {
    /// All reports.
    pub const ALL: [ReportName; 7] = [
        ReportName::Events,
        ReportName::TopEvents,
        ReportName::ActiveUsers,
        ReportName::Revenue,
        ReportName::Funnel,
        ReportName::Retention,
        ReportName::IdentityMerges,
    ];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::Events => "events",
            ReportName::TopEvents => "top-events",
            ReportName::ActiveUsers => "active-users",
            ReportName::Revenue => "revenue",
            ReportName::Funnel => "funnel",
            ReportName::Retention => "retention",
            ReportName::IdentityMerges => "identity-merges",
        }
    }

    /// Parses [`ReportName::as_str`].
    pub fn from_name(name: &str) -> Option<ReportName> {
        ReportName::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for ReportName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Report parameters.
#[derive(Clone, Debug)]
pub struct ReportParams {
    /// Inclusive lower bound on `timestamp`.
    pub since: Option<Timestamp>,
    /// Exclusive upper bound on `timestamp`.
    pub until: Option<Timestamp>,
    /// Only this source.
    pub source: Option<String>,
    /// Funnel steps (event names as sent).
    pub steps: Vec<String>,
    /// Funnel window in seconds, counted from the first step.
    pub window_seconds: i64,
    /// Rows of `top-events`.
    pub limit: usize,
}

impl Default for ReportParams {
    fn default() -> ReportParams {
        ReportParams {
            since: None,
            until: None,
            source: None,
            steps: Vec::new(),
            window_seconds: 7 * 86_400,
            limit: 20,
        }
    }
}

/// How a report column is typed in JSON output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// A string.
    Text,
    /// An integer.
    Integer,
    /// An exact decimal (a JSON number with the exact digits).
    Decimal,
}

/// A report's query and the kinds of its columns.
#[derive(Clone, Debug)]
pub struct ReportQuery {
    /// The SQL, ready to run (parameters are inlined as literals).
    pub sql: String,
    /// One kind per output column.
    pub kinds: Vec<ColumnKind>,
}

/// Parses a window such as `7d`, `24h`, `30m` or `90s` into seconds.
pub fn parse_window(text: &str) -> Result<i64, WarehouseError> {
    let bad = || WarehouseError::BadInput {
        reason: format!(
            "--window {text:?}: expected a positive number and a unit, like 7d, 24h, 30m or 90s"
        ),
    };
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    n.checked_mul(scale).ok_or_else(bad)
}

/// Parses a `--since`/`--until` value: a strict ISO 8601 timestamp, or a date `YYYY-MM-DD`
/// meaning midnight UTC at its start. `end_of_day` moves a bare date to the next midnight
/// (so `--until 2024-01-31` includes the 31st).
pub fn parse_bound(flag: &str, text: &str, end_of_day: bool) -> Result<Timestamp, WarehouseError> {
    if text.len() == 10 {
        let start = Timestamp::parse(&format!("{text}T00:00:00Z")).map_err(|err| {
            WarehouseError::BadInput {
                reason: format!("{flag} {text:?}: {err}"),
            }
        })?;
        return Ok(if end_of_day {
            start.add_nanos(86_400_000_000_000)
        } else {
            start
        });
    }
    Timestamp::parse(text).map_err(|err| WarehouseError::BadInput {
        reason: format!("{flag} {text:?}: {err} (or give a date as YYYY-MM-DD)"),
    })
}

/// `AND ...` conditions for the time range and source, on columns of `alias`.
fn filters(params: &ReportParams, alias: &str) -> String {
    let col = |c: &str| {
        if alias.is_empty() {
            c.to_owned()
        } else {
            format!("{alias}.{c}")
        }
    };
    let mut out = String::new();
    if let Some(since) = params.since {
        out.push_str(&format!(" AND {} >= '{since}'", col("timestamp")));
    }
    if let Some(until) = params.until {
        out.push_str(&format!(" AND {} < '{until}'", col("timestamp")));
    }
    if let Some(source) = &params.source {
        out.push_str(&format!(
            " AND {} = {}",
            col("source_id"),
            text_literal(source)
        ));
    }
    out
}

/// True when the time bounds fall on midnight UTC, so the per-day rollups (`event_days`,
/// `profile_days`) answer exactly.
fn day_aligned(params: &ReportParams) -> bool {
    [params.since, params.until]
        .iter()
        .flatten()
        .all(|t| t.unix_nanos().rem_euclid(86_400_000_000_000) == 0)
}

/// `AND ...` conditions on a rollup's `day` and `source_id`.
fn day_filters(params: &ReportParams) -> String {
    let day = |t: Timestamp| t.to_string().chars().take(10).collect::<String>();
    let mut out = String::new();
    if let Some(since) = params.since {
        out.push_str(&format!(" AND day >= '{}'", day(since)));
    }
    if let Some(until) = params.until {
        out.push_str(&format!(" AND day < '{}'", day(until)));
    }
    if let Some(source) = &params.source {
        out.push_str(&format!(" AND source_id = {}", text_literal(source)));
    }
    out
}

/// Track, page and screen calls: `profile_id, timestamp, source_id`.
const ACTIVITY: &str = "(SELECT profile_id, timestamp, source_id FROM tracks \
     UNION ALL SELECT profile_id, timestamp, source_id FROM pages \
     UNION ALL SELECT profile_id, timestamp, source_id FROM screens)";

/// The query of a report.
pub fn report_query(
    name: ReportName,
    dialect: Dialect,
    schema: &Schema,
    params: &ReportParams,
) -> Result<ReportQuery, WarehouseError> {
    use ColumnKind::{Decimal, Integer, Text};
    let d = dialect;
    let w = filters(params, "");
    let dw = day_filters(params);
    let (sql, kinds) = match name {
        ReportName::Events if day_aligned(params) => (
            format!(
                "SELECT day, event_text AS event, sum(events) AS events\n\
                 FROM event_days\nWHERE 1 = 1{dw}\nGROUP BY day, event_text\nORDER BY 1, {order}",
                order = d.bytewise("event_text"),
            ),
            vec![Text, Text, Integer],
        ),
        ReportName::Events => (
            format!(
                "SELECT {day} AS day, event_text AS event, count(*) AS events\n\
                 FROM tracks\nWHERE 1 = 1{w}\nGROUP BY 1, 2\nORDER BY 1, {order}",
                day = d.day("timestamp"),
                order = d.bytewise("event_text"),
            ),
            vec![Text, Text, Integer],
        ),
        // Both databases read the `tracks (event_text, timestamp, profile_id, source_id)`
        // index in `event_text` order instead of the wide rows (PostgreSQL with an index-only
        // scan once vacuumed); distinct users are counted per event.
        ReportName::TopEvents => (
            format!(
                "SELECT event_text AS event, count(*) AS events, \
                 count(DISTINCT profile_id) AS users\nFROM tracks\nWHERE 1 = 1{w}\n\
                 GROUP BY event_text\nORDER BY events DESC, {order}\nLIMIT {limit}",
                order = d.bytewise("event_text"),
                limit = params.limit.max(1),
            ),
            vec![Text, Integer, Integer],
        ),
        ReportName::ActiveUsers => (
            format!(
                "WITH a AS MATERIALIZED (\n  {source}\n)\n\
                 SELECT period, start, active_users FROM (\n  \
                 SELECT 1 AS o, 'day' AS period, day AS start, count(*) AS active_users \
                 FROM a GROUP BY day\n  UNION ALL\n  \
                 SELECT 2, 'week', week, count(*) \
                 FROM (SELECT DISTINCT week, profile_id FROM a) w GROUP BY week\n  \
                 UNION ALL\n  \
                 SELECT 3, 'month', m, count(*) \
                 FROM (SELECT DISTINCT substr(day, 1, 7) || '-01' AS m, profile_id FROM a) x \
                 GROUP BY m\n) r\nORDER BY o, start",
                source = if day_aligned(params) {
                    format!(
                        "SELECT DISTINCT day, week, profile_id FROM profile_days WHERE 1 = 1{dw}"
                    )
                } else {
                    format!(
                        "SELECT DISTINCT {day} AS day, {week} AS week, profile_id\n  \
                         FROM {ACTIVITY} x\n  WHERE profile_id IS NOT NULL{w}",
                        day = d.day("timestamp"),
                        week = d.week("timestamp"),
                    )
                },
            ),
            vec![Text, Text, Integer],
        ),
        ReportName::Revenue => {
            let mut parts = Vec::new();
            let fixed = fixed_names(TableKind::Event);
            for table in schema.table_names() {
                if crate::naming::FIXED_TABLES.contains(&table.as_str()) {
                    continue;
                }
                let Some(t) = schema.table(&table) else {
                    continue;
                };
                if !fixed.iter().all(|c| t.column(c).is_some()) {
                    continue;
                }
                let numeric = matches!(
                    t.column("revenue"),
                    Some(ColType::Decimal | ColType::Integer | ColType::Float)
                );
                if !numeric {
                    continue;
                }
                let currency = if t.column("currency").is_some() {
                    "CAST(currency AS TEXT)"
                } else {
                    "CAST(NULL AS TEXT)"
                };
                parts.push(format!(
                    "SELECT timestamp, source_id, {currency} AS currency, {rev} AS revenue \
                     FROM {q}",
                    rev = d.as_decimal("revenue"),
                    q = quote(&table),
                ));
            }
            let sql = if parts.is_empty() {
                "SELECT CAST(NULL AS TEXT) AS day, CAST(NULL AS TEXT) AS currency, \
                 CAST(NULL AS TEXT) AS revenue, 0 AS orders WHERE 1 = 0"
                    .to_owned()
            } else {
                format!(
                    "SELECT {day} AS day, upper(coalesce(currency, 'USD')) AS currency, \
                     {sum} AS revenue, count(*) AS orders\nFROM (\n  {union}\n) r\n\
                     WHERE revenue IS NOT NULL{w}\nGROUP BY 1, 2\nORDER BY 1, 2",
                    day = d.day("timestamp"),
                    sum = d.decimal_sum("revenue"),
                    union = parts.join("\n  UNION ALL\n  "),
                )
            };
            (sql, vec![Text, Text, Decimal, Integer])
        }
        ReportName::Funnel => {
            if params.steps.len() < 2 {
                return Err(WarehouseError::BadInput {
                    reason: "--step: a funnel needs at least two steps (--step A --step B)"
                        .to_owned(),
                });
            }
            // The steps' calls are read once, from the covering `tracks (event_text,
            // timestamp, profile_id, source_id)` index, and each step joins them.
            let mut names: Vec<String> = params.steps.iter().map(|s| text_literal(s)).collect();
            names.sort();
            names.dedup();
            let mut ctes = vec![
                format!(
                    "e AS (\n  SELECT profile_id, event_text, timestamp FROM tracks\n  \
                     WHERE event_text IN ({names}) AND profile_id IS NOT NULL{w}\n)",
                    names = names.join(", "),
                ),
                format!(
                    "s1 AS (\n  SELECT profile_id, min(timestamp) AS t0, min(timestamp) AS t \
                     FROM e\n  WHERE event_text = {e}\n  GROUP BY profile_id\n)",
                    e = text_literal(&params.steps[0]),
                ),
            ];
            for (i, step) in params.steps.iter().enumerate().skip(1) {
                ctes.push(format!(
                    "s{n} AS (\n  SELECT s.profile_id, s.t0, min(e.timestamp) AS t \
                     FROM s{i} s\n  JOIN e ON e.profile_id = s.profile_id \
                     AND e.event_text = {ev}\n    AND e.timestamp >= s.t \
                     AND e.timestamp <= {end}\n  GROUP BY s.profile_id, s.t0\n)",
                    n = i + 1,
                    ev = text_literal(step),
                    end = d.plus_seconds("s.t0", params.window_seconds),
                ));
            }
            let selects: Vec<String> = params
                .steps
                .iter()
                .enumerate()
                .map(|(i, step)| {
                    format!(
                        "SELECT {n} AS step, {e} AS event, count(*) AS users FROM s{n}",
                        n = i + 1,
                        e = text_literal(step)
                    )
                })
                .collect();
            (
                format!(
                    "WITH {}\nSELECT step, event, users FROM (\n  {}\n) f\nORDER BY step",
                    ctes.join(",\n"),
                    selects.join("\n  UNION ALL\n  ")
                ),
                vec![Integer, Text, Integer],
            )
        }
        ReportName::Retention => (
            format!(
                "WITH a AS MATERIALIZED (\n  {source}\n),\n\
                 c AS (SELECT profile_id, min(week) AS cohort FROM a GROUP BY profile_id),\n\
                 s AS (SELECT cohort, count(*) AS size FROM c GROUP BY cohort)\n\
                 SELECT c.cohort AS cohort, s.size AS cohort_users, {diff} AS week, \
                 count(*) AS active_users\n\
                 FROM a\nJOIN c ON c.profile_id = a.profile_id\nJOIN s ON s.cohort = c.cohort\n\
                 GROUP BY c.cohort, s.size, a.week\nORDER BY 1, 3",
                source = if day_aligned(params) {
                    format!("SELECT DISTINCT profile_id, week FROM profile_days WHERE 1 = 1{dw}")
                } else {
                    format!(
                        "SELECT DISTINCT profile_id, {week} AS week\n  FROM {ACTIVITY} x\n  \
                         WHERE profile_id IS NOT NULL{w}",
                        week = d.week("timestamp"),
                    )
                },
                diff = d.weeks_between("a.week", "c.cohort"),
            ),
            vec![Text, Integer, Integer, Integer],
        ),
        ReportName::IdentityMerges => {
            let mut w = String::new();
            if let Some(since) = params.since {
                w.push_str(&format!(" AND timestamp >= '{since}'"));
            }
            if let Some(until) = params.until {
                w.push_str(&format!(" AND timestamp < '{until}'"));
            }
            (
                format!(
                    "SELECT {ts} AS timestamp, message_id, user_id, other_user_id, \
                     kept_profile_id, merged_profile_id, \
                     CASE WHEN allowed THEN 'merged' ELSE 'refused' END AS outcome\n\
                     FROM identity_merges\nWHERE 1 = 1{w}\nORDER BY 1, 2",
                    ts = d.render_column("timestamp", ColType::Timestamp),
                ),
                vec![Text, Text, Text, Text, Text, Text, Text],
            )
        }
    };
    Ok(ReportQuery { sql, kinds })
}

/// Runs a report: reads the schema, builds the query, runs it.
pub async fn run_report<S: Store>(
    store: &mut S,
    name: ReportName,
    params: &ReportParams,
) -> Result<(ReportQuery, Rows), WarehouseError> {
    let schema = crate::loader::read_schema(store).await?;
    let query = report_query(name, store.dialect(), &schema, params)?;
    let rows = store.query(&query.sql).await?;
    Ok((query, rows))
}

/// Rows as JSON objects, typed by the report's column kinds.
pub fn rows_json(query: &ReportQuery, rows: &Rows) -> serde_json::Value {
    let data: Vec<serde_json::Value> = rows
        .rows
        .iter()
        .map(|row| {
            let mut object = serde_json::Map::new();
            for (i, (column, cell)) in rows.columns.iter().zip(row).enumerate() {
                let kind = query.kinds.get(i).copied().unwrap_or(ColumnKind::Text);
                let value = match (cell, kind) {
                    (None, _) => serde_json::Value::Null,
                    (Some(text), ColumnKind::Integer | ColumnKind::Decimal) => {
                        serde_json::from_str::<serde_json::Number>(text)
                            .map(serde_json::Value::Number)
                            .unwrap_or_else(|_| serde_json::Value::String(text.clone()))
                    }
                    (Some(text), ColumnKind::Text) => serde_json::Value::String(text.clone()),
                };
                object.insert(column.clone(), value);
            }
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::Value::Array(data)
}
