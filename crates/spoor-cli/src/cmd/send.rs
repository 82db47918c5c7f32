//! The connector modules: `spoor identify`, `track`, `page`, `screen`, `group`, `alias` (one
//! message each, sent to `/v1/{type}`), plus `api` ([`super::send_api`]) and `batch`
//! ([`super::send_batch`]).
//!
//! Every message is built with `spoor-client`'s builders and validated before anything is
//! sent; bad input exits 2 with the flag and the rule. A single call is retried like the
//! batching client retries (same messageId every time), and prints one line, or with
//! `--json` what was sent and what came back.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Number, Value, json};
use spoor_client::transport::Attempt;
use spoor_client::{
    Address, Alias, ClientError, Clock, Company, CustomFields, Decimal, FieldSet, Group, Identify,
    Message, SystemClock, Timestamp, Track, Traits, Transport, View,
};

use crate::Global;
use crate::cmd::connection_store::{ConnectionFlag, resolve};
use crate::exit::{self, Exit};
use crate::output::print_json;

pub use super::send_api::{ApiArgs, run_api};
pub use super::send_batch::{BatchArgs, run_batch};

/// Flags every call takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonFlags {
    /// The user's id in your database (e.g. person-d97f88ad).
    #[arg(long, value_name = "ID")]
    pub user_id: Option<String>,
    /// A pseudo-unique id when the user is not known (a session id, a UUID).
    #[arg(long, value_name = "ID")]
    pub anonymous_id: Option<String>,
    /// When it happened, ISO 8601 with a time zone (2024-05-01T12:00:00Z); left out, the
    /// server's time is used. For importing the past.
    #[arg(long, value_name = "ISO8601")]
    pub timestamp: Option<String>,
    /// A context field: KEY=VALUE, or KEY:=JSON; dots nest (page.url=https://x.io).
    #[arg(long = "context", value_name = "KEY=VALUE")]
    pub context: Vec<String>,
    /// Turn a destination on or off: NAME=true|false (All=false, Mixpanel=true).
    #[arg(long = "integration", value_name = "NAME=BOOL")]
    pub integrations: Vec<String>,
    /// Your own messageId (at most 100 characters): a retried command is then deduplicated.
    #[arg(long, value_name = "ID")]
    pub message_id: Option<String>,
    /// Validate and print the message; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub connection: ConnectionFlag,
}

/// Arguments of `spoor identify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = r#"Ties a user to their traits. Call it when the account is created and when traits change.

Examples:

  spoor identify --user-id u42 --email ada@example.com --first-name Ada --last-name Lovelace

  spoor identify --anonymous-id 6f1c... --trait plan=pro --trait seats:=12 --trait beta:=true

Reserved traits have their own flags; `--trait email=...` is refused (use --email).
With first and last name and no --name, name is filled in as "First Last"."#
)]
pub struct IdentifyArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    #[command(flatten)]
    pub traits: Box<IdentifyTraitFlags>,
}

/// The trait flags of `spoor identify`.
#[derive(Debug, clap::Args)]
pub struct IdentifyTraitFlags {
    /// Email address.
    #[arg(long)]
    pub email: Option<String>,
    /// First name.
    #[arg(long)]
    pub first_name: Option<String>,
    /// Last name.
    #[arg(long)]
    pub last_name: Option<String>,
    /// Full name (filled from first and last name when left out).
    #[arg(long)]
    pub name: Option<String>,
    /// Age, a number.
    #[arg(long)]
    pub age: Option<String>,
    /// URL of an avatar image.
    #[arg(long, value_name = "URL")]
    pub avatar: Option<String>,
    /// Birthday, ISO 8601 date (1990-12-10).
    #[arg(long, value_name = "DATE")]
    pub birthday: Option<String>,
    /// When the account was created, ISO 8601.
    #[arg(long, value_name = "ISO8601")]
    pub created_at: Option<String>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Gender.
    #[arg(long)]
    pub gender: Option<String>,
    /// The user's id in your database, as a trait.
    #[arg(long)]
    pub id: Option<String>,
    /// Phone number.
    #[arg(long)]
    pub phone: Option<String>,
    /// Job title (VP of Engineering).
    #[arg(long)]
    pub title: Option<String>,
    /// Username, unique per user.
    #[arg(long)]
    pub username: Option<String>,
    /// Website.
    #[arg(long, value_name = "URL")]
    pub website: Option<String>,
    /// Address: street.
    #[arg(long)]
    pub address_street: Option<String>,
    /// Address: city.
    #[arg(long)]
    pub address_city: Option<String>,
    /// Address: state.
    #[arg(long)]
    pub address_state: Option<String>,
    /// Address: postal code.
    #[arg(long)]
    pub address_postal_code: Option<String>,
    /// Address: country.
    #[arg(long)]
    pub address_country: Option<String>,
    /// Company: name.
    #[arg(long)]
    pub company_name: Option<String>,
    /// Company: id.
    #[arg(long)]
    pub company_id: Option<String>,
    /// Company: industry.
    #[arg(long)]
    pub company_industry: Option<String>,
    /// Company: employee count, a number.
    #[arg(long)]
    pub company_employee_count: Option<String>,
    /// Company: plan.
    #[arg(long)]
    pub company_plan: Option<String>,
    /// A custom trait: KEY=VALUE (a string) or KEY:=JSON (numbers, booleans, objects, arrays).
    #[arg(long = "trait", value_name = "KEY=VALUE")]
    pub traits: Vec<String>,
}

/// Arguments of `spoor track`.
#[derive(Debug, clap::Args)]
#[command(after_help = r#"Records an action a user performed, with properties.

Examples:

  spoor track --user-id u42 --event "Order Completed" --revenue 19.99 --currency EUR

  spoor track --anonymous-id s-81 --event "Newsletter Signup" --value 5 --property source=footer

Revenue is kept exact (19.99 is sent as 19.99). Currency is an ISO 4217 code; left out,
USD is assumed and nothing is sent."#)]
pub struct TrackArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    /// The action's name: a noun and a past-tense verb ("Order Completed").
    #[arg(long)]
    pub event: Option<String>,
    /// Revenue, a decimal kept exact (19.99).
    #[arg(long, value_name = "DECIMAL")]
    pub revenue: Option<String>,
    /// The revenue's currency, ISO 4217 (EUR, GBP); USD when left out.
    #[arg(long, value_name = "CODE")]
    pub currency: Option<String>,
    /// An abstract value, when there is no real revenue (a signup's worth).
    #[arg(long, value_name = "DECIMAL")]
    pub value: Option<String>,
    /// A custom property: KEY=VALUE or KEY:=JSON.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

/// Arguments of `spoor page`.
#[derive(Debug, clap::Args)]
#[command(after_help = r#"Records a web page view.

Example:

  spoor page --user-id u42 --name Pricing --url https://example.com/pricing --title "Pricing""#)]
pub struct PageArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    /// The page's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The page's category.
    #[arg(long)]
    pub category: Option<String>,
    /// Property url: the canonical URL.
    #[arg(long)]
    pub url: Option<String>,
    /// Property path (/pricing).
    #[arg(long)]
    pub path: Option<String>,
    /// Property title.
    #[arg(long)]
    pub title: Option<String>,
    /// Property referrer.
    #[arg(long)]
    pub referrer: Option<String>,
    /// Property search (?q=shoes).
    #[arg(long)]
    pub search: Option<String>,
    /// A custom property: KEY=VALUE or KEY:=JSON.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

/// Arguments of `spoor screen`.
#[derive(Debug, clap::Args)]
#[command(after_help = r#"Records a mobile screen view.

Example:

  spoor screen --user-id u42 --name "Home" --property variant=b"#)]
pub struct ScreenArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    /// The screen's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The screen's category.
    #[arg(long)]
    pub category: Option<String>,
    /// A custom property: KEY=VALUE or KEY:=JSON.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

/// Arguments of `spoor group`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = r#"Associates a user with a group (an account, a company), with group traits.

Example:

  spoor group --user-id u42 --group-id acme --name "Acme Inc" --industry Tools --employees 120"#
)]
pub struct GroupArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    /// The group's id.
    #[arg(long)]
    pub group_id: Option<String>,
    /// Group trait name.
    #[arg(long)]
    pub name: Option<String>,
    /// Group trait email.
    #[arg(long)]
    pub email: Option<String>,
    /// Group trait industry.
    #[arg(long)]
    pub industry: Option<String>,
    /// Group trait employees, a number.
    #[arg(long)]
    pub employees: Option<String>,
    /// Group trait plan.
    #[arg(long)]
    pub plan: Option<String>,
    /// Group trait website.
    #[arg(long)]
    pub website: Option<String>,
    /// Group trait phone.
    #[arg(long)]
    pub phone: Option<String>,
    /// Group trait description.
    #[arg(long)]
    pub description: Option<String>,
    /// Group trait avatar (URL).
    #[arg(long)]
    pub avatar: Option<String>,
    /// Group trait createdAt, ISO 8601.
    #[arg(long)]
    pub created_at: Option<String>,
    /// A custom group trait: KEY=VALUE or KEY:=JSON.
    #[arg(long = "trait", value_name = "KEY=VALUE")]
    pub traits: Vec<String>,
}

/// Arguments of `spoor alias`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = r#"Says that one identity (the previous id, often an anonymous id) is the same person as
another (the user id).

Example:

  spoor alias --previous-id anon-81 --user-id u42"#
)]
pub struct AliasArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    /// The previous id.
    #[arg(long)]
    pub previous_id: Option<String>,
}

/// Parses `KEY=VALUE` (a string) or `KEY:=JSON` for `flag`.
pub fn parse_pair(flag: &str, text: &str) -> anyhow::Result<(String, Value)> {
    let rule = "expected KEY=VALUE, or KEY:=JSON for numbers, booleans, objects and arrays";
    let Some((key, value)) = text.split_once('=') else {
        return Err(Exit::bad_input(format!("{flag} {text:?}: {rule}")));
    };
    let (key, value) = match key.strip_suffix(':') {
        Some(key) => {
            let parsed: Value = serde_json::from_str(value).map_err(|err| {
                Exit::bad_input(format!(
                    "{flag} {key}:={value}: the value is not valid JSON ({err})"
                ))
            })?;
            (key, parsed)
        }
        None => (key, Value::String(value.to_owned())),
    };
    if key.is_empty() {
        return Err(Exit::bad_input(format!(
            "{flag} {text:?}: the key is empty; {rule}"
        )));
    }
    Ok((key.to_owned(), value))
}

/// The flag to use instead of a reserved custom name.
fn reserved_flag(reserved: &str) -> String {
    match reserved {
        "address" => "--address-street/--address-city/...".to_owned(),
        "company" => "--company-name/--company-id/...".to_owned(),
        other => {
            let mut flag = String::from("--");
            for c in other.chars() {
                if c.is_ascii_uppercase() {
                    flag.push('-');
                    flag.push(c.to_ascii_lowercase());
                } else if c == '_' {
                    flag.push('-');
                } else {
                    flag.push(c);
                }
            }
            flag
        }
    }
}

/// Custom fields from `--trait`/`--property` pairs, refusing reserved names with the flag to
/// use instead.
fn custom_fields(flag: &str, set: FieldSet, pairs: &[String]) -> anyhow::Result<CustomFields> {
    let mut custom = CustomFields::new(set);
    for pair in pairs {
        let (key, value) = parse_pair(flag, pair)?;
        if let Err(err) = custom.insert(&key, value) {
            return Err(Exit::bad_input(format!(
                "{flag} {key}: {:?} is a reserved name; use {} instead",
                err.name,
                reserved_flag(err.reserved)
            )));
        }
    }
    Ok(custom)
}

fn number(flag: &str, text: &str) -> anyhow::Result<Number> {
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Number(n)) => Ok(n),
        _ => Err(Exit::bad_input(format!("{flag}: {text:?} is not a number"))),
    }
}

fn decimal(flag: &str, text: &str) -> anyhow::Result<Decimal> {
    text.trim().parse().map_err(|_| {
        Exit::bad_input(format!(
            "{flag}: {text:?} is not a decimal number (like 19.99)"
        ))
    })
}

fn timestamp(flag: &str, text: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse(text).map_err(|err| {
        Exit::bad_input(format!(
            "{flag}: {text:?} is not an ISO 8601 timestamp: {err} (example: 2024-05-01T12:00:00Z)"
        ))
    })
}

/// A date trait: an ISO 8601 date (YYYY-MM-DD) or a full timestamp.
fn date(flag: &str, text: &str) -> anyhow::Result<String> {
    let b = text.as_bytes();
    let is_date = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && Timestamp::parse(&format!("{text}T00:00:00Z")).is_ok();
    if is_date || Timestamp::parse(text).is_ok() {
        Ok(text.to_owned())
    } else {
        Err(Exit::bad_input(format!(
            "{flag}: {text:?} is not an ISO 8601 date (1990-12-10) or timestamp (2024-05-01T12:00:00Z)"
        )))
    }
}

/// Sets a value at a dotted path in an object, creating objects on the way.
fn insert_path(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        Some((head, rest)) if !head.is_empty() && !rest.is_empty() => {
            let entry = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
        _ => {
            map.insert(path.to_owned(), value);
        }
    }
}

/// Applies the common flags to a built message (ids, timestamp as written, context,
/// integrations, messageId), then validates it again.
fn apply_common(mut message: Message, common: &CommonFlags) -> anyhow::Result<Message> {
    let body = message.body_mut();
    if let Some(id) = &common.user_id {
        body.insert("userId".to_owned(), Value::String(id.clone()));
    }
    if let Some(id) = &common.anonymous_id {
        body.insert("anonymousId".to_owned(), Value::String(id.clone()));
    }
    if let Some(text) = &common.timestamp {
        timestamp("--timestamp", text)?;
        body.insert("timestamp".to_owned(), Value::String(text.clone()));
    }
    if let Some(id) = &common.message_id {
        body.insert("messageId".to_owned(), Value::String(id.clone()));
    }
    if !common.context.is_empty() {
        let mut context = Map::new();
        for pair in &common.context {
            let (key, value) = parse_pair("--context", pair)?;
            insert_path(&mut context, &key, value);
        }
        body.insert("context".to_owned(), Value::Object(context));
    }
    if !common.integrations.is_empty() {
        let mut integrations = Map::new();
        for pair in &common.integrations {
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                Exit::bad_input(format!(
                    "--integration {pair:?}: expected NAME=true or NAME=false"
                ))
            })?;
            let enabled = match value {
                "true" => true,
                "false" => false,
                other => {
                    return Err(Exit::bad_input(format!(
                        "--integration {name}: {other:?} is not true or false"
                    )));
                }
            };
            integrations.insert(name.to_owned(), Value::Bool(enabled));
        }
        body.insert("integrations".to_owned(), Value::Object(integrations));
    }
    // Put the ids right after the type, where people look for them.
    let mut ordered = Map::new();
    for key in [
        "type",
        "userId",
        "anonymousId",
        "previousId",
        "groupId",
        "event",
    ] {
        if let Some(value) = body.remove(key) {
            ordered.insert(key.to_owned(), value);
        }
    }
    ordered.append(body);
    *body = ordered;
    spoor_client::builder::check(&message).map_err(|err| invalid(&err))?;
    Ok(message)
}

/// Turns a client validation error into exit 2 naming the flag.
pub fn invalid(err: &ClientError) -> anyhow::Error {
    match err {
        ClientError::Invalid { problems } => {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", flag_for_path(&p.path), p.message))
                .collect();
            Exit::bad_input(lines.join("\n"))
        }
        other => Exit::bad_input(other.to_string()),
    }
}

fn flag_for_path(path: &str) -> String {
    match path {
        "userId" => "--user-id (or --anonymous-id)".to_owned(),
        "anonymousId" => "--anonymous-id".to_owned(),
        "event" => "--event".to_owned(),
        "groupId" => "--group-id".to_owned(),
        "previousId" => "--previous-id".to_owned(),
        "messageId" => "--message-id".to_owned(),
        "timestamp" => "--timestamp".to_owned(),
        "properties.currency" => "--currency".to_owned(),
        "properties.revenue" => "--revenue".to_owned(),
        "properties.value" => "--value".to_owned(),
        "" => "message".to_owned(),
        other => other.to_owned(),
    }
}

/// A placeholder id so a builder can run; [`apply_common`] sets the real ids afterwards.
const PLACEHOLDER: &str = "\u{0}placeholder";

fn without_placeholders(mut message: Message) -> Message {
    let body = message.body_mut();
    for key in ["userId", "anonymousId"] {
        if body.get(key).and_then(Value::as_str) == Some(PLACEHOLDER) {
            body.remove(key);
        }
    }
    message
}

fn built(result: Result<Message, ClientError>) -> anyhow::Result<Message> {
    result
        .map(without_placeholders)
        .map_err(|err| invalid(&err))
}

/// Builds the identify message from its flags.
pub fn identify_message(identify: &IdentifyArgs) -> anyhow::Result<Message> {
    let args = &identify.traits;
    let mut traits = Traits::new();
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = &args.$field { traits = traits.$field(v.clone()); } )* };
    }
    set!(
        email,
        first_name,
        last_name,
        name,
        avatar,
        description,
        gender,
        id,
        phone,
        title,
        username,
        website
    );
    if let Some(v) = &args.age {
        traits = traits.age(number("--age", v)?);
    }
    if let Some(v) = &args.birthday {
        traits = traits.birthday(date("--birthday", v)?);
    }
    if let Some(v) = &args.created_at {
        traits = traits.created_at(date("--created-at", v)?);
    }
    traits = traits.address(Address {
        street: args.address_street.clone(),
        city: args.address_city.clone(),
        state: args.address_state.clone(),
        postal_code: args.address_postal_code.clone(),
        country: args.address_country.clone(),
    });
    traits = traits.company(Company {
        name: args.company_name.clone(),
        id: args.company_id.clone().map(Value::String),
        industry: args.company_industry.clone(),
        employee_count: args
            .company_employee_count
            .as_deref()
            .map(|v| number("--company-employee-count", v))
            .transpose()?,
        plan: args.company_plan.clone(),
    });
    traits = traits.custom(custom_fields(
        "--trait",
        FieldSet::IdentifyTraits,
        &args.traits,
    )?);
    let message = built(Identify::new().user_id(PLACEHOLDER).traits(traits).build())?;
    apply_common(message, &identify.common)
}

/// Builds the track message from its flags.
pub fn track_message(args: &TrackArgs) -> anyhow::Result<Message> {
    let event = args
        .event
        .clone()
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| {
            Exit::bad_input("--event: required, the action's name (\"Order Completed\")")
        })?;
    let mut track = Track::new(event).user_id(PLACEHOLDER);
    if let Some(v) = &args.revenue {
        track = track.revenue(decimal("--revenue", v)?);
    }
    if let Some(code) = &args.currency {
        // Any case is accepted and sent in capitals, as the Spec crate treats a lowercase
        // code (a warning, normalized), not an error.
        let Some(canonical) = spoor_spec::currency::lookup_ignore_case(code) else {
            let hint = match spoor_spec::currency::withdrawn_replacement(&code.to_ascii_uppercase())
            {
                Some(current) => format!(
                    " ({} was withdrawn; use {current})",
                    code.to_ascii_uppercase()
                ),
                None => String::new(),
            };
            return Err(Exit::bad_input(format!(
                "--currency: {code:?} is not an ISO 4217 currency code (like USD, EUR, GBP){hint}"
            )));
        };
        track = track.currency(canonical);
    }
    if let Some(v) = &args.value {
        track = track.value(decimal("--value", v)?);
    }
    track = track.properties(custom_fields(
        "--property",
        FieldSet::TrackProperties,
        &args.properties,
    )?);
    let message = built(track.build())?;
    apply_common(message, &args.common)
}

fn view_message(
    mut view: View,
    name: &Option<String>,
    category: &Option<String>,
    reserved: &[(&str, &Option<String>)],
    properties: &[String],
    common: &CommonFlags,
) -> anyhow::Result<Message> {
    if let Some(name) = name {
        view = view.name(name.clone());
    }
    if let Some(category) = category {
        view = view.category(category.clone());
    }
    for (key, value) in reserved {
        if let Some(value) = value {
            view = view.property(*key, Value::String(value.clone()));
        }
    }
    let mut custom = CustomFields::new(FieldSet::TrackProperties);
    for pair in properties {
        let (key, value) = parse_pair("--property", pair)?;
        if reserved.iter().any(|(r, _)| *r == key) {
            return Err(Exit::bad_input(format!(
                "--property {key}: {key:?} is a reserved page property; use --{key} instead"
            )));
        }
        custom.insert(&key, value).map_err(|err| {
            Exit::bad_input(format!(
                "--property {key}: {:?} is a reserved name; use {} instead",
                err.name,
                reserved_flag(err.reserved)
            ))
        })?;
    }
    let message = built(view.user_id(PLACEHOLDER).properties(custom).build())?;
    apply_common(message, common)
}

/// Builds the page message from its flags.
pub fn page_message(args: &PageArgs) -> anyhow::Result<Message> {
    let reserved = [
        ("url", &args.url),
        ("path", &args.path),
        ("title", &args.title),
        ("referrer", &args.referrer),
        ("search", &args.search),
    ];
    view_message(
        View::page(),
        &args.name,
        &args.category,
        &reserved,
        &args.properties,
        &args.common,
    )
}

/// Builds the screen message from its flags.
pub fn screen_message(args: &ScreenArgs) -> anyhow::Result<Message> {
    view_message(
        View::screen(),
        &args.name,
        &args.category,
        &[],
        &args.properties,
        &args.common,
    )
}

/// Builds the group message from its flags.
pub fn group_message(args: &GroupArgs) -> anyhow::Result<Message> {
    let group_id = args
        .group_id
        .clone()
        .filter(|g| !g.is_empty())
        .ok_or_else(|| Exit::bad_input("--group-id: required, the group's id"))?;
    let mut group = Group::new(group_id).user_id(PLACEHOLDER);
    for (key, value) in [
        ("name", &args.name),
        ("email", &args.email),
        ("industry", &args.industry),
        ("plan", &args.plan),
        ("website", &args.website),
        ("phone", &args.phone),
        ("description", &args.description),
        ("avatar", &args.avatar),
    ] {
        if let Some(value) = value {
            group = group.trait_value(key, Value::String(value.clone()));
        }
    }
    if let Some(v) = &args.employees {
        group = group.trait_value("employees", Value::Number(number("--employees", v)?));
    }
    if let Some(v) = &args.created_at {
        group = group.trait_value("createdAt", Value::String(date("--created-at", v)?));
    }
    for pair in &args.traits {
        let (key, value) = parse_pair("--trait", pair)?;
        group = group.custom_trait(&key, value).map_err(|_| {
            Exit::bad_input(format!(
                "--trait {key}: {key:?} is a reserved group trait; use {} instead",
                reserved_flag(&key)
            ))
        })?;
    }
    let message = built(group.build())?;
    apply_common(message, &args.common)
}

/// Builds the alias message from its flags.
pub fn alias_message(args: &AliasArgs) -> anyhow::Result<Message> {
    let previous = args
        .previous_id
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Exit::bad_input("--previous-id: required, the id the user had before"))?;
    if args.common.user_id.as_deref().is_none_or(str::is_empty) {
        return Err(Exit::bad_input(
            "--user-id: required, the id the user has now",
        ));
    }
    let message = built(Alias::new(previous, PLACEHOLDER).build())?;
    apply_common(message, &args.common)
}

/// Completes (messageId, library), then prints (dry run) or sends one message.
async fn send_one(
    message: Message,
    common: &CommonFlags,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let message = spoor_client::complete(message, None).map_err(|err| invalid(&err))?;
    if let Some(problem) = spoor_spec::validate::message_size_problem(message.to_vec().len()) {
        return Err(Exit::bad_input(format!("message: {}", problem.message)));
    }
    let kind = message.kind();
    if common.dry_run {
        if global.json {
            print_json(&json!({"dryRun": true, "sent": message.clone().into_value()}));
        } else {
            println!("{}", serde_json::to_string_pretty(message.body())?);
        }
        return Ok(exit::SUCCESS);
    }
    let target = resolve(&common.connection)?;
    let transport = Transport::new(
        &target.endpoint,
        &target.write_key,
        Duration::from_secs(15),
        false,
    )
    .map_err(|err| Exit::bad_input(err.to_string()))?;
    let mut body = message.body().clone();
    body.insert(
        "writeKey".to_owned(),
        Value::String(target.write_key.clone()),
    );
    let backoff = spoor_client::Backoff::default();
    let max_retries = 5;
    let mut attempt = 0;
    let (outcome, status, reply) = loop {
        attempt += 1;
        let mut wire = body.clone();
        wire.insert(
            "sentAt".to_owned(),
            Value::String(SystemClock.now().to_string()),
        );
        let bytes = serde_json::to_vec(&wire)?;
        match transport
            .post(&format!("/v1/{kind}"), bytes, attempt - 1)
            .await
        {
            Attempt::Delivered { status, body } => break ("delivered", status, body),
            Attempt::Rejected { status, body } => break ("rejected", status, body),
            Attempt::Retry {
                reason,
                retry_after,
            } => {
                if attempt > max_retries {
                    break ("failed", 0, reason);
                }
                let wait = retry_after
                    .unwrap_or_else(|| backoff.delay(attempt, spoor_client::id::unit_random()));
                tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
            }
        }
    };
    let message_id = message.message_id().unwrap_or_default().to_owned();
    let connection = target.name.clone();
    if global.json {
        let reply_body =
            serde_json::from_str::<Value>(&reply).unwrap_or(Value::String(reply.clone()));
        print_json(&json!({
            "sent": message.into_value(),
            "endpoint": format!("{}/v1/{kind}", target.endpoint),
            "connection": connection,
            "outcome": outcome,
            "attempts": attempt,
            "response": {"status": if status == 0 { Value::Null } else { json!(status) }, "body": reply_body},
        }));
    } else if outcome == "delivered" {
        println!(
            "{kind} delivered to {} (HTTP {status}, messageId {message_id})",
            target.endpoint
        );
    }
    match outcome {
        "delivered" => Ok(exit::SUCCESS),
        "rejected" => Err(Exit::refused(format!(
            "{kind} rejected by {}: HTTP {status}: {reply}",
            target.endpoint
        ))),
        _ => Err(Exit::refused(format!(
            "{kind} not delivered after {attempt} attempts: {reply}"
        ))),
    }
}

/// Runs `spoor identify`.
pub async fn run_identify(args: IdentifyArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let message = identify_message(&args)?;
    send_one(message, &args.common, global).await
}

/// Runs `spoor track`.
pub async fn run_track(args: TrackArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let message = track_message(&args)?;
    send_one(message, &args.common, global).await
}

/// Runs `spoor page`.
pub async fn run_page(args: PageArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let message = page_message(&args)?;
    send_one(message, &args.common, global).await
}

/// Runs `spoor screen`.
pub async fn run_screen(args: ScreenArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let message = screen_message(&args)?;
    send_one(message, &args.common, global).await
}

/// Runs `spoor group`.
pub async fn run_group(args: GroupArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let message = group_message(&args)?;
    send_one(message, &args.common, global).await
}

/// Runs `spoor alias`.
pub async fn run_alias(args: AliasArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let message = alias_message(&args)?;
    send_one(message, &args.common, global).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_strings_and_json() {
        assert_eq!(
            parse_pair("--trait", "plan=pro").expect("ok"),
            ("plan".to_owned(), json!("pro"))
        );
        assert_eq!(parse_pair("--trait", "seats:=12").expect("ok").1, json!(12));
        assert_eq!(parse_pair("--trait", "x=a=b").expect("ok").1, json!("a=b"));
        assert!(parse_pair("--trait", "noequals").is_err());
        assert!(parse_pair("--trait", "bad:={").is_err());
        assert!(parse_pair("--trait", "=v").is_err());
    }

    #[test]
    fn reserved_names_map_to_flags() {
        assert_eq!(reserved_flag("firstName"), "--first-name");
        assert_eq!(reserved_flag("created_at"), "--created-at");
        assert_eq!(reserved_flag("email"), "--email");
    }

    #[test]
    fn dotted_context_nests() {
        let mut map = Map::new();
        insert_path(&mut map, "page.url", json!("u"));
        insert_path(&mut map, "ip", json!("1.2.3.4"));
        assert_eq!(
            Value::Object(map),
            json!({"page": {"url": "u"}, "ip": "1.2.3.4"})
        );
    }
}
