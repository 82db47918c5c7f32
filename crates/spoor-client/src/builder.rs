//! Typed builders for the six calls. Each `build()` returns a [`Message`] that passed
//! [`spoor_spec::validate`], or every problem found.
//!
//! Reserved traits and properties have their own setters; custom ones go through
//! [`CustomFields`], which refuses a reserved name (so `email` cannot hide in a custom trait).
//! Identify fills `traits.name` from first and last name when no name is given, as Segment does.

use serde_json::{Map, Number, Value};
use spoor_spec::{Code, CustomFields, Decimal, Message, MessageType, Timestamp};

use crate::ClientError;

/// Fields every call has: ids, timestamp, messageId, context and integrations.
#[derive(Clone, Debug, Default, PartialEq)]
struct Common {
    user_id: Option<String>,
    anonymous_id: Option<String>,
    message_id: Option<String>,
    timestamp: Option<Timestamp>,
    context: Map<String, Value>,
    integrations: Map<String, Value>,
}

impl Common {
    fn write(self, body: &mut Map<String, Value>) {
        if let Some(id) = self.user_id {
            body.insert("userId".to_owned(), Value::String(id));
        }
        if let Some(id) = self.anonymous_id {
            body.insert("anonymousId".to_owned(), Value::String(id));
        }
        if let Some(id) = self.message_id {
            body.insert("messageId".to_owned(), Value::String(id));
        }
        if let Some(ts) = self.timestamp {
            body.insert("timestamp".to_owned(), Value::String(ts.to_string()));
        }
        if !self.context.is_empty() {
            body.insert("context".to_owned(), Value::Object(self.context));
        }
        if !self.integrations.is_empty() {
            body.insert("integrations".to_owned(), Value::Object(self.integrations));
        }
    }
}

/// Adds the common setters to a builder with a `common: Common` field.
macro_rules! common_setters {
    ($builder:ty) => {
        impl $builder {
            /// The user's id in your database.
            pub fn user_id(mut self, id: impl Into<String>) -> Self {
                self.common.user_id = Some(id.into());
                self
            }

            /// A pseudo-unique id for a user not yet known (a session id, a UUID).
            pub fn anonymous_id(mut self, id: impl Into<String>) -> Self {
                self.common.anonymous_id = Some(id.into());
                self
            }

            /// A messageId of your own (at most 100 characters), so a repeated call is
            /// deduplicated. Left out, the client sets a random UUID v4.
            pub fn message_id(mut self, id: impl Into<String>) -> Self {
                self.common.message_id = Some(id.into());
                self
            }

            /// When the event happened; left out, the time of enqueue (or the server's).
            pub fn timestamp(mut self, timestamp: Timestamp) -> Self {
                self.common.timestamp = Some(timestamp);
                self
            }

            /// One `context` field (`ip`, `locale`, `page`, ...).
            pub fn context(mut self, key: impl Into<String>, value: Value) -> Self {
                self.common.context.insert(key.into(), value);
                self
            }

            /// Turns one destination on or off (`"All"`, `"Mixpanel"`, ...).
            pub fn integration(mut self, name: impl Into<String>, enabled: bool) -> Self {
                self.common
                    .integrations
                    .insert(name.into(), Value::Bool(enabled));
                self
            }
        }
    };
}

fn finish(
    kind: MessageType,
    common: Common,
    fill: impl FnOnce(&mut Map<String, Value>),
) -> Result<Message, ClientError> {
    let mut body = Map::new();
    body.insert("type".to_owned(), Value::String(kind.as_str().to_owned()));
    common.write(&mut body);
    fill(&mut body);
    let message = Message::from_value(Value::Object(body), Some(kind))
        .map_err(|err| ClientError::invalid("type", Code::Required, err.to_string()))?;
    check(&message)?;
    Ok(message)
}

/// Validates a message with the Spec crate plus the checks the client owns (messageId length,
/// the ids and names a call needs). Warnings pass.
pub fn check(message: &Message) -> Result<(), ClientError> {
    let report = spoor_spec::validate(message);
    let mut problems: Vec<_> = report.errors().cloned().collect();
    let mut push = |path: &str, code: Code, text: &str| {
        if !problems.iter().any(|p| p.path == path) {
            problems.push(spoor_spec::Problem {
                path: path.to_owned(),
                code,
                severity: spoor_spec::Severity::Error,
                message: text.to_owned(),
            });
        }
    };
    let present = |key: &str| match message.body().get(key) {
        Some(Value::String(text)) => !text.trim().is_empty(),
        Some(Value::Number(_)) => true,
        _ => false,
    };
    if message.kind() == MessageType::Track && message.event().is_none_or(|e| e.trim().is_empty()) {
        push("event", Code::Required, "a track call needs an event name");
    }
    if message.kind() == MessageType::Group && message.group_id().is_none_or(|g| g.is_empty()) {
        push("groupId", Code::Required, "a group call needs a groupId");
    }
    if message.kind() == MessageType::Alias {
        if message.previous_id().is_none_or(str::is_empty) {
            push(
                "previousId",
                Code::Required,
                "an alias call needs a previousId",
            );
        }
        if message.user_id().is_none_or(str::is_empty) {
            push("userId", Code::Required, "an alias call needs a userId");
        }
    } else if !present("userId") && !present("anonymousId") {
        push(
            "userId",
            Code::MissingIdentity,
            "userId or anonymousId is required (and must not be empty)",
        );
    }
    if let Some(id) = message.message_id() {
        if id.chars().count() > spoor_spec::limits::MAX_MESSAGE_ID_CHARS {
            push(
                "messageId",
                Code::TooLong,
                "a messageId has at most 100 characters",
            );
        }
        if id.is_empty() {
            push("messageId", Code::Empty, "a messageId must not be empty");
        }
    }
    if let Some(ts) = message.body().get("timestamp") {
        match ts.as_str() {
            Some(text) => {
                if let Err(err) = Timestamp::parse(text) {
                    push(
                        "timestamp",
                        Code::InvalidTimestamp,
                        &format!("not ISO 8601: {err}"),
                    );
                }
            }
            None if !ts.is_null() => push(
                "timestamp",
                Code::WrongType,
                "timestamp must be an ISO 8601 string",
            ),
            None => {}
        }
    }
    if let Some(props) = message.properties()
        && let Some(currency) = props.get("currency").and_then(Value::as_str)
        && !spoor_spec::currency::is_currency_code(currency)
    {
        push(
            "properties.currency",
            Code::InvalidCurrency,
            &format!("{currency:?} is not an ISO 4217 currency code (like USD, EUR)"),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Invalid { problems })
    }
}

fn decimal_value(decimal: Decimal) -> Value {
    Value::Number(Number::from_string_unchecked(decimal.to_string()))
}

/// The reserved identify traits, plus custom ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traits {
    map: Map<String, Value>,
}

macro_rules! string_traits {
    ($($method:ident => $key:literal),* $(,)?) => {
        $(
            #[doc = concat!("The reserved trait `", $key, "`.")]
            pub fn $method(mut self, value: impl Into<String>) -> Self {
                self.map.insert($key.to_owned(), Value::String(value.into()));
                self
            }
        )*
    };
}

impl Traits {
    /// No traits.
    pub fn new() -> Traits {
        Traits::default()
    }

    string_traits! {
        email => "email", first_name => "firstName", last_name => "lastName", name => "name",
        avatar => "avatar", birthday => "birthday", created_at => "createdAt",
        description => "description", gender => "gender", id => "id", phone => "phone",
        title => "title", username => "username", website => "website",
    }

    /// The reserved trait `age`.
    pub fn age(mut self, age: Number) -> Self {
        self.map.insert("age".to_owned(), Value::Number(age));
        self
    }

    /// The reserved trait `address`.
    pub fn address(mut self, address: Address) -> Self {
        if let Some(value) = address.into_value() {
            self.map.insert("address".to_owned(), value);
        }
        self
    }

    /// The reserved trait `company`.
    pub fn company(mut self, company: Company) -> Self {
        if let Some(value) = company.into_value() {
            self.map.insert("company".to_owned(), value);
        }
        self
    }

    /// Custom traits (their names were checked against the reserved ones).
    pub fn custom(mut self, custom: CustomFields) -> Self {
        self.map.extend(custom.into_map());
        self
    }

    /// Fills `name` from `firstName` and `lastName` when both are set and `name` is not.
    fn fill_name(&mut self) {
        if self.map.contains_key("name") {
            return;
        }
        let first = self
            .map
            .get("firstName")
            .and_then(Value::as_str)
            .map(str::trim);
        let last = self
            .map
            .get("lastName")
            .and_then(Value::as_str)
            .map(str::trim);
        if let (Some(first), Some(last)) = (first, last)
            && !first.is_empty()
            && !last.is_empty()
        {
            let name = format!("{first} {last}");
            self.map.insert("name".to_owned(), Value::String(name));
        }
    }

    /// The traits as a JSON object.
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }
}

/// The reserved `address` trait.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Address {
    /// Street.
    pub street: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Postal code (`postalCode` on the wire).
    pub postal_code: Option<String>,
    /// Country.
    pub country: Option<String>,
}

impl Address {
    fn into_value(self) -> Option<Value> {
        let mut map = Map::new();
        for (key, value) in [
            ("street", self.street),
            ("city", self.city),
            ("state", self.state),
            ("postalCode", self.postal_code),
            ("country", self.country),
        ] {
            if let Some(value) = value {
                map.insert(key.to_owned(), Value::String(value));
            }
        }
        (!map.is_empty()).then_some(Value::Object(map))
    }
}

/// The reserved `company` trait.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Company {
    /// Name.
    pub name: Option<String>,
    /// Id: a string or a number.
    pub id: Option<Value>,
    /// Industry.
    pub industry: Option<String>,
    /// Employee count (`employee_count` on the wire).
    pub employee_count: Option<Number>,
    /// Plan.
    pub plan: Option<String>,
}

impl Company {
    fn into_value(self) -> Option<Value> {
        let mut map = Map::new();
        if let Some(name) = self.name {
            map.insert("name".to_owned(), Value::String(name));
        }
        if let Some(id) = self.id {
            map.insert("id".to_owned(), id);
        }
        if let Some(industry) = self.industry {
            map.insert("industry".to_owned(), Value::String(industry));
        }
        if let Some(count) = self.employee_count {
            map.insert("employee_count".to_owned(), Value::Number(count));
        }
        if let Some(plan) = self.plan {
            map.insert("plan".to_owned(), Value::String(plan));
        }
        (!map.is_empty()).then_some(Value::Object(map))
    }
}

/// An identify call: who the user is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identify {
    common: Common,
    traits: Traits,
}
common_setters!(Identify);

impl Identify {
    /// An identify call; set `user_id` or `anonymous_id`.
    pub fn new() -> Identify {
        Identify::default()
    }

    /// The traits.
    pub fn traits(mut self, traits: Traits) -> Self {
        self.traits = traits;
        self
    }

    /// The message, validated.
    pub fn build(self) -> Result<Message, ClientError> {
        let mut traits = self.traits;
        traits.fill_name();
        finish(MessageType::Identify, self.common, |body| {
            if !traits.map.is_empty() {
                body.insert("traits".to_owned(), Value::Object(traits.map));
            }
        })
    }
}

/// A track call: an action the user performed.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    common: Common,
    event: String,
    revenue: Option<Decimal>,
    currency: Option<String>,
    value: Option<Decimal>,
    custom: Map<String, Value>,
}
common_setters!(Track);

impl Track {
    /// A track call of `event` (`"Order Completed"`).
    pub fn new(event: impl Into<String>) -> Track {
        Track {
            common: Common::default(),
            event: event.into(),
            revenue: None,
            currency: None,
            value: None,
            custom: Map::new(),
        }
    }

    /// Revenue, exact: 19.99 is sent as `19.99`.
    pub fn revenue(mut self, revenue: Decimal) -> Self {
        self.revenue = Some(revenue);
        self
    }

    /// The ISO 4217 currency of the revenue (checked at build). Any case is accepted and
    /// sent in the standard's capitals (`eur` is sent as `EUR`), as the Spec crate normalizes
    /// it on the server side. Left out, USD is assumed.
    pub fn currency(mut self, currency: impl Into<String>) -> Self {
        let currency = currency.into();
        self.currency = Some(match spoor_spec::currency::lookup_ignore_case(&currency) {
            Some(canonical) => canonical.to_owned(),
            None => currency,
        });
        self
    }

    /// An abstract value of the event (when there is no revenue).
    pub fn value(mut self, value: Decimal) -> Self {
        self.value = Some(value);
        self
    }

    /// Custom properties.
    pub fn properties(mut self, custom: CustomFields) -> Self {
        self.custom.extend(custom.into_map());
        self
    }

    /// The message, validated.
    pub fn build(self) -> Result<Message, ClientError> {
        let mut props = Map::new();
        if let Some(revenue) = self.revenue {
            props.insert("revenue".to_owned(), decimal_value(revenue));
        }
        if let Some(currency) = self.currency {
            props.insert("currency".to_owned(), Value::String(currency));
        }
        if let Some(value) = self.value {
            props.insert("value".to_owned(), decimal_value(value));
        }
        props.extend(self.custom);
        let event = self.event;
        finish(MessageType::Track, self.common, |body| {
            body.insert("event".to_owned(), Value::String(event));
            if !props.is_empty() {
                body.insert("properties".to_owned(), Value::Object(props));
            }
        })
    }
}

/// A page or screen view: `name`, `category` and properties.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    kind: MessageType,
    common: Common,
    name: Option<String>,
    category: Option<String>,
    properties: Map<String, Value>,
}
common_setters!(View);

/// A page call (a web page view).
pub type Page = View;
/// A screen call (a mobile screen view).
pub type Screen = View;

impl View {
    /// A page call.
    pub fn page() -> View {
        View::new(MessageType::Page)
    }

    /// A screen call.
    pub fn screen() -> View {
        View::new(MessageType::Screen)
    }

    fn new(kind: MessageType) -> View {
        View {
            kind,
            common: Common::default(),
            name: None,
            category: None,
            properties: Map::new(),
        }
    }

    /// The page or screen name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The category.
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }

    /// One reserved page property (`url`, `path`, `title`, `referrer`, `search`, `keywords`).
    pub fn property(mut self, key: impl Into<String>, value: Value) -> Self {
        self.properties.insert(key.into(), value);
        self
    }

    /// Custom properties.
    pub fn properties(mut self, custom: CustomFields) -> Self {
        self.properties.extend(custom.into_map());
        self
    }

    /// The message, validated.
    pub fn build(self) -> Result<Message, ClientError> {
        let (name, category, props) = (self.name, self.category, self.properties);
        finish(self.kind, self.common, |body| {
            if let Some(name) = name {
                body.insert("name".to_owned(), Value::String(name));
            }
            if let Some(category) = category {
                body.insert("category".to_owned(), Value::String(category));
            }
            if !props.is_empty() {
                body.insert("properties".to_owned(), Value::Object(props));
            }
        })
    }
}

/// The reserved group traits (Spec: group traits).
pub const GROUP_TRAITS: &[&str] = &[
    "address",
    "avatar",
    "createdAt",
    "created_at",
    "description",
    "email",
    "employees",
    "id",
    "industry",
    "name",
    "phone",
    "website",
    "plan",
];

/// A group call: the user belongs to a group (account, company).
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    common: Common,
    group_id: String,
    traits: Map<String, Value>,
}
common_setters!(Group);

impl Group {
    /// A group call for `group_id`.
    pub fn new(group_id: impl Into<String>) -> Group {
        Group {
            common: Common::default(),
            group_id: group_id.into(),
            traits: Map::new(),
        }
    }

    /// One reserved group trait (see [`GROUP_TRAITS`]), e.g. `name`, `industry`, `employees`.
    pub fn trait_value(mut self, key: impl Into<String>, value: Value) -> Self {
        self.traits.insert(key.into(), value);
        self
    }

    /// One custom group trait; a reserved name is refused.
    pub fn custom_trait(mut self, key: &str, value: Value) -> Result<Self, ClientError> {
        if let Some(reserved) = GROUP_TRAITS.iter().find(|r| **r == key) {
            return Err(ClientError::ReservedName(spoor_spec::ReservedNameError {
                name: key.to_owned(),
                reserved,
            }));
        }
        self.traits.insert(key.to_owned(), value);
        Ok(self)
    }

    /// The message, validated.
    pub fn build(self) -> Result<Message, ClientError> {
        let (group_id, traits) = (self.group_id, self.traits);
        finish(MessageType::Group, self.common, |body| {
            body.insert("groupId".to_owned(), Value::String(group_id));
            if !traits.is_empty() {
                body.insert("traits".to_owned(), Value::Object(traits));
            }
        })
    }
}

/// An alias call: `previous_id` is the same person as `user_id`.
#[derive(Clone, Debug, PartialEq)]
pub struct Alias {
    common: Common,
    previous_id: String,
}
common_setters!(Alias);

impl Alias {
    /// An alias of `previous_id` to `user_id`.
    pub fn new(previous_id: impl Into<String>, user_id: impl Into<String>) -> Alias {
        Alias {
            common: Common {
                user_id: Some(user_id.into()),
                ..Common::default()
            },
            previous_id: previous_id.into(),
        }
    }

    /// The message, validated.
    pub fn build(self) -> Result<Message, ClientError> {
        let previous_id = self.previous_id;
        finish(MessageType::Alias, self.common, |body| {
            body.insert("previousId".to_owned(), Value::String(previous_id));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spoor_spec::FieldSet;

    #[test]
    fn identify_fills_name_and_keeps_reserved_traits() {
        let message = Identify::new()
            .user_id("u1")
            .traits(
                Traits::new()
                    .first_name("Ada")
                    .last_name("Lovelace")
                    .email("a@x.io"),
            )
            .build()
            .expect("valid");
        let traits = message.traits().expect("traits");
        assert_eq!(traits["name"], "Ada Lovelace");
        assert_eq!(traits["email"], "a@x.io");
    }

    #[test]
    fn identify_without_ids_is_refused() {
        let err = Identify::new().build().expect_err("no ids");
        assert!(err.to_string().contains("userId"), "{err}");
    }

    #[test]
    fn track_keeps_revenue_exact_and_checks_currency() {
        let message = Track::new("Order Completed")
            .user_id("u1")
            .revenue("19.99".parse().expect("decimal"))
            .currency("EUR")
            .build()
            .expect("valid");
        let json = String::from_utf8(message.to_vec()).expect("utf8");
        assert!(json.contains(r#""revenue":19.99"#), "{json}");
        let lower = Track::new("Order Completed")
            .user_id("u1")
            .currency("eur")
            .build()
            .expect("lowercase is accepted");
        let json = String::from_utf8(lower.to_vec()).expect("utf8");
        assert!(json.contains(r#""currency":"EUR""#), "{json}");
        let err = Track::new("x")
            .user_id("u")
            .currency("XYZ")
            .build()
            .expect_err("bad currency");
        assert!(err.to_string().contains("ISO 4217"), "{err}");
    }

    #[test]
    fn custom_fields_refuse_reserved_names() {
        let mut custom = CustomFields::new(FieldSet::IdentifyTraits);
        assert!(custom.insert("email", Value::Bool(true)).is_err());
        let group = Group::new("g1")
            .user_id("u1")
            .custom_trait("plan", Value::Null);
        assert!(group.is_err());
    }

    #[test]
    fn alias_needs_both_ids_and_message_id_is_bounded() {
        assert!(Alias::new("", "u1").build().is_err());
        let long = "x".repeat(101);
        assert!(
            Track::new("e")
                .user_id("u")
                .message_id(long)
                .build()
                .is_err()
        );
        assert!(Alias::new("a1", "u1").build().is_ok());
    }
}
