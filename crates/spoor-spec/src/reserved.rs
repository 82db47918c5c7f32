//! The reserved traits, properties and context fields of the Spec, with their JSON types, and
//! typed read-only views of them.
//!
//! Reserved traits and properties may be sent in camelCase or snake_case (`firstName` or
//! `first_name`); the tables list both and the views read both (camelCase first). Context
//! fields are camelCase only, as every library sends them; their `snake` is the same name.
//!
//! The views borrow the message and never allocate; they return `None` for a field that is
//! absent, null or of the wrong JSON type (validation reports those).

use serde_json::{Map, Value};

use crate::decimal::Decimal;
use crate::message::Message;
use crate::time::Timestamp;

/// The JSON type a reserved field must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A JSON string.
    String,
    /// A JSON number.
    Number,
    /// A string or a number (company.id).
    StringOrNumber,
    /// A JSON boolean.
    Bool,
    /// A strict ISO 8601 date or timestamp string.
    Date,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl FieldKind {
    /// The kind as named in problem messages: `"a string"`, `"a number"`, ...
    pub fn describe(self) -> &'static str {
        match self {
            FieldKind::String => "a string",
            FieldKind::Number => "a number",
            FieldKind::StringOrNumber => "a string or a number",
            FieldKind::Bool => "a boolean",
            FieldKind::Date => "an ISO 8601 date or timestamp string",
            FieldKind::Object => "an object",
            FieldKind::Array => "an array",
        }
    }
}

/// One reserved field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedField {
    /// The camelCase name, as the Spec writes it (`firstName`).
    pub name: &'static str,
    /// The snake_case name (`first_name`).
    pub snake: &'static str,
    /// Its JSON type.
    pub kind: FieldKind,
}

const fn f(name: &'static str, snake: &'static str, kind: FieldKind) -> ReservedField {
    ReservedField { name, snake, kind }
}

/// Reserved identify traits.
pub const IDENTIFY_TRAITS: &[ReservedField] = &[
    f("address", "address", FieldKind::Object),
    f("age", "age", FieldKind::Number),
    f("avatar", "avatar", FieldKind::String),
    f("birthday", "birthday", FieldKind::Date),
    f("company", "company", FieldKind::Object),
    f("createdAt", "created_at", FieldKind::Date),
    f("description", "description", FieldKind::String),
    f("email", "email", FieldKind::String),
    f("firstName", "first_name", FieldKind::String),
    f("gender", "gender", FieldKind::String),
    f("id", "id", FieldKind::String),
    f("lastName", "last_name", FieldKind::String),
    f("name", "name", FieldKind::String),
    f("phone", "phone", FieldKind::String),
    f("title", "title", FieldKind::String),
    f("username", "username", FieldKind::String),
    f("website", "website", FieldKind::String),
];

/// Reserved group traits. `employees` is documented as a string although it is a count, so
/// both are accepted.
pub const GROUP_TRAITS: &[ReservedField] = &[
    f("address", "address", FieldKind::Object),
    f("avatar", "avatar", FieldKind::String),
    f("createdAt", "created_at", FieldKind::Date),
    f("description", "description", FieldKind::String),
    f("email", "email", FieldKind::String),
    f("employees", "employees", FieldKind::StringOrNumber),
    f("id", "id", FieldKind::String),
    f("industry", "industry", FieldKind::String),
    f("name", "name", FieldKind::String),
    f("phone", "phone", FieldKind::String),
    f("website", "website", FieldKind::String),
    f("plan", "plan", FieldKind::String),
];

/// The keys of the reserved `address` trait (identify and group).
pub const ADDRESS_FIELDS: &[ReservedField] = &[
    f("street", "street", FieldKind::String),
    f("city", "city", FieldKind::String),
    f("state", "state", FieldKind::String),
    f("postalCode", "postal_code", FieldKind::String),
    f("country", "country", FieldKind::String),
];

/// The keys of the reserved `company` identify trait. The Spec writes `employee_count`;
/// `employeeCount` is accepted too.
pub const COMPANY_FIELDS: &[ReservedField] = &[
    f("name", "name", FieldKind::String),
    f("id", "id", FieldKind::StringOrNumber),
    f("industry", "industry", FieldKind::String),
    f("employeeCount", "employee_count", FieldKind::Number),
    f("plan", "plan", FieldKind::String),
];

/// Reserved track properties.
pub const TRACK_PROPERTIES: &[ReservedField] = &[
    f("revenue", "revenue", FieldKind::Number),
    f("currency", "currency", FieldKind::String),
    f("value", "value", FieldKind::Number),
];

/// Reserved page properties. `keywords` is an array of strings.
pub const PAGE_PROPERTIES: &[ReservedField] = &[
    f("name", "name", FieldKind::String),
    f("path", "path", FieldKind::String),
    f("referrer", "referrer", FieldKind::String),
    f("search", "search", FieldKind::String),
    f("title", "title", FieldKind::String),
    f("url", "url", FieldKind::String),
    f("keywords", "keywords", FieldKind::Array),
];

/// Reserved screen properties.
pub const SCREEN_PROPERTIES: &[ReservedField] = &[f("name", "name", FieldKind::String)];

/// Reserved context fields (camelCase only).
pub const CONTEXT_FIELDS: &[ReservedField] = &[
    f("active", "active", FieldKind::Bool),
    f("app", "app", FieldKind::Object),
    f("campaign", "campaign", FieldKind::Object),
    f("channel", "channel", FieldKind::String),
    f("device", "device", FieldKind::Object),
    f("direct", "direct", FieldKind::Bool),
    f("groupId", "groupId", FieldKind::String),
    f("ip", "ip", FieldKind::String),
    f("library", "library", FieldKind::Object),
    f("locale", "locale", FieldKind::String),
    f("location", "location", FieldKind::Object),
    f("network", "network", FieldKind::Object),
    f("os", "os", FieldKind::Object),
    f("page", "page", FieldKind::Object),
    f("referrer", "referrer", FieldKind::Object),
    f("screen", "screen", FieldKind::Object),
    f("timezone", "timezone", FieldKind::String),
    f("traits", "traits", FieldKind::Object),
    f("userAgent", "userAgent", FieldKind::String),
    f("userAgentData", "userAgentData", FieldKind::Object),
];

/// `context.app`.
pub const CONTEXT_APP: &[ReservedField] = &[
    f("name", "name", FieldKind::String),
    f("version", "version", FieldKind::String),
    f("build", "build", FieldKind::String),
    f("namespace", "namespace", FieldKind::String),
];

/// `context.campaign` (any other UTM parameter is allowed beside these).
pub const CONTEXT_CAMPAIGN: &[ReservedField] = &[
    f("name", "name", FieldKind::String),
    f("source", "source", FieldKind::String),
    f("medium", "medium", FieldKind::String),
    f("term", "term", FieldKind::String),
    f("content", "content", FieldKind::String),
];

/// `context.device`.
pub const CONTEXT_DEVICE: &[ReservedField] = &[
    f("id", "id", FieldKind::String),
    f("advertisingId", "advertisingId", FieldKind::String),
    f("adTrackingEnabled", "adTrackingEnabled", FieldKind::Bool),
    f("manufacturer", "manufacturer", FieldKind::String),
    f("model", "model", FieldKind::String),
    f("name", "name", FieldKind::String),
    f("type", "type", FieldKind::String),
    f("version", "version", FieldKind::String),
    f("token", "token", FieldKind::String),
];

/// `context.library`.
pub const CONTEXT_LIBRARY: &[ReservedField] = &[
    f("name", "name", FieldKind::String),
    f("version", "version", FieldKind::String),
];

/// `context.location`.
pub const CONTEXT_LOCATION: &[ReservedField] = &[
    f("city", "city", FieldKind::String),
    f("country", "country", FieldKind::String),
    f("latitude", "latitude", FieldKind::Number),
    f("longitude", "longitude", FieldKind::Number),
    f("region", "region", FieldKind::String),
    f("speed", "speed", FieldKind::Number),
];

/// `context.network`.
pub const CONTEXT_NETWORK: &[ReservedField] = &[
    f("bluetooth", "bluetooth", FieldKind::Bool),
    f("carrier", "carrier", FieldKind::String),
    f("cellular", "cellular", FieldKind::Bool),
    f("wifi", "wifi", FieldKind::Bool),
];

/// `context.os`.
pub const CONTEXT_OS: &[ReservedField] = &[
    f("name", "name", FieldKind::String),
    f("version", "version", FieldKind::String),
];

/// `context.page`.
pub const CONTEXT_PAGE: &[ReservedField] = &[
    f("path", "path", FieldKind::String),
    f("referrer", "referrer", FieldKind::String),
    f("search", "search", FieldKind::String),
    f("title", "title", FieldKind::String),
    f("url", "url", FieldKind::String),
];

/// `context.referrer`.
pub const CONTEXT_REFERRER: &[ReservedField] = &[
    f("type", "type", FieldKind::String),
    f("name", "name", FieldKind::String),
    f("url", "url", FieldKind::String),
    f("link", "link", FieldKind::String),
    f("id", "id", FieldKind::String),
];

/// `context.screen`.
pub const CONTEXT_SCREEN: &[ReservedField] = &[
    f("density", "density", FieldKind::Number),
    f("height", "height", FieldKind::Number),
    f("width", "width", FieldKind::Number),
];

/// `context.userAgentData` (Browser Client Hints).
pub const CONTEXT_USER_AGENT_DATA: &[ReservedField] = &[
    f("brands", "brands", FieldKind::Array),
    f("mobile", "mobile", FieldKind::Bool),
    f("platform", "platform", FieldKind::String),
];

/// Finds a reserved field by its camelCase or snake_case name.
pub fn lookup(fields: &'static [ReservedField], name: &str) -> Option<&'static ReservedField> {
    fields
        .iter()
        .find(|field| field.name == name || field.snake == name)
}

/// The reserved keys inside a reserved object field of `fields`: `address` and `company` in
/// traits, `app`, `library`, `page`, ... in context (`traits` in context gives
/// [`IDENTIFY_TRAITS`]). `None` for fields without known keys.
pub fn nested(
    fields: &'static [ReservedField],
    field: &ReservedField,
) -> Option<&'static [ReservedField]> {
    if fields == CONTEXT_FIELDS {
        return match field.name {
            "app" => Some(CONTEXT_APP),
            "campaign" => Some(CONTEXT_CAMPAIGN),
            "device" => Some(CONTEXT_DEVICE),
            "library" => Some(CONTEXT_LIBRARY),
            "location" => Some(CONTEXT_LOCATION),
            "network" => Some(CONTEXT_NETWORK),
            "os" => Some(CONTEXT_OS),
            "page" => Some(CONTEXT_PAGE),
            "referrer" => Some(CONTEXT_REFERRER),
            "screen" => Some(CONTEXT_SCREEN),
            "traits" => Some(IDENTIFY_TRAITS),
            "userAgentData" => Some(CONTEXT_USER_AGENT_DATA),
            _ => None,
        };
    }
    match field.name {
        "address" if field.kind == FieldKind::Object => Some(ADDRESS_FIELDS),
        "company" if field.kind == FieldKind::Object => Some(COMPANY_FIELDS),
        _ => None,
    }
}

/// A read-only view of a JSON object holding reserved fields.
#[derive(Clone, Copy, Debug)]
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// The value under the camelCase or the snake_case name, ignoring nulls.
    fn get(self, camel: &str, snake: &str) -> Option<&'a Value> {
        let found = self.0.get(camel).filter(|v| !v.is_null());
        if found.is_some() || camel == snake {
            return found;
        }
        self.0.get(snake).filter(|v| !v.is_null())
    }

    fn str(self, camel: &str, snake: &str) -> Option<&'a str> {
        self.get(camel, snake).and_then(Value::as_str)
    }

    fn object(self, camel: &str, snake: &str) -> Option<&'a Map<String, Value>> {
        self.get(camel, snake).and_then(Value::as_object)
    }

    fn bool(self, camel: &str, snake: &str) -> Option<bool> {
        self.get(camel, snake).and_then(Value::as_bool)
    }

    /// A number, or a string holding a decimal number (accepted with a warning).
    fn decimal(self, camel: &str, snake: &str) -> Option<Decimal> {
        decimal_of(self.get(camel, snake)?)
    }

    /// A string, or a number's exact text.
    fn str_or_number(self, camel: &str, snake: &str) -> Option<&'a str> {
        match self.get(camel, snake)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.as_str()),
            _ => None,
        }
    }

    fn date(self, camel: &str, snake: &str) -> Option<Timestamp> {
        Timestamp::parse_date_or_timestamp(self.str(camel, snake)?).ok()
    }
}

/// The exact decimal of a JSON number or of a string holding one (`"19.99"`).
pub fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => Decimal::from_json_number(n).ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// True when `fields` has `key` as a reserved name (camelCase or snake_case).
fn is_reserved(fields: &'static [ReservedField], key: &str) -> bool {
    lookup(fields, key).is_some()
}

macro_rules! str_getters {
    ($( $(#[$doc:meta])* $fn_name:ident => ($camel:literal, $snake:literal); )*) => {
        $(
            $(#[$doc])*
            pub fn $fn_name(&self) -> Option<&'a str> {
                self.fields().str($camel, $snake)
            }
        )*
    };
}

/// Reserved identify traits (`traits` of an identify, or `context.traits`).
#[derive(Clone, Copy, Debug)]
pub struct IdentifyTraits<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> IdentifyTraits<'a> {
    /// A view of a traits object.
    pub fn new(map: &'a Map<String, Value>) -> IdentifyTraits<'a> {
        IdentifyTraits { map }
    }

    /// The `traits` of a message, when it has a traits object.
    pub fn of(message: &'a Message) -> Option<IdentifyTraits<'a>> {
        message.traits().map(IdentifyTraits::new)
    }

    /// The whole traits object.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    str_getters! {
        /// `avatar`: a URL.
        avatar => ("avatar", "avatar");
        /// `description`.
        description => ("description", "description");
        /// `email`.
        email => ("email", "email");
        /// `firstName` or `first_name`.
        first_name => ("firstName", "first_name");
        /// `gender`.
        gender => ("gender", "gender");
        /// `id`.
        id => ("id", "id");
        /// `lastName` or `last_name`.
        last_name => ("lastName", "last_name");
        /// `name`, as sent (see [`IdentifyTraits::full_name`]).
        name => ("name", "name");
        /// `phone`.
        phone => ("phone", "phone");
        /// `title`: the job title.
        title => ("title", "title");
        /// `username`.
        username => ("username", "username");
        /// `website`.
        website => ("website", "website");
    }

    /// `address`.
    pub fn address(&self) -> Option<Address<'a>> {
        self.fields().object("address", "address").map(Address::new)
    }

    /// `age`: a number (or a numeric string, accepted with a warning).
    pub fn age(&self) -> Option<Decimal> {
        self.fields().decimal("age", "age")
    }

    /// `birthday`: a date or a timestamp.
    pub fn birthday(&self) -> Option<Timestamp> {
        self.fields().date("birthday", "birthday")
    }

    /// `company`.
    pub fn company(&self) -> Option<Company<'a>> {
        self.fields().object("company", "company").map(Company::new)
    }

    /// `createdAt` or `created_at`.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.fields().date("createdAt", "created_at")
    }

    /// `name`, or `firstName lastName` when only those are given (Segment's rule).
    pub fn full_name(&self) -> Option<String> {
        if let Some(name) = self.name() {
            return Some(name.to_owned());
        }
        full_name_of(self.first_name()?, self.last_name()?)
    }

    /// The custom traits: every key that is not a reserved identify trait.
    pub fn custom(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.map
            .iter()
            .filter(|(k, _)| !is_reserved(IDENTIFY_TRAITS, k))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// `first last`, trimmed, when both are non-empty after trimming.
pub(crate) fn full_name_of(first: &str, last: &str) -> Option<String> {
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() || last.is_empty() {
        return None;
    }
    Some(format!("{first} {last}"))
}

/// The reserved `address` trait.
#[derive(Clone, Copy, Debug)]
pub struct Address<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Address<'a> {
    /// A view of an address object.
    pub fn new(map: &'a Map<String, Value>) -> Address<'a> {
        Address { map }
    }

    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    str_getters! {
        /// `street`.
        street => ("street", "street");
        /// `city`.
        city => ("city", "city");
        /// `state`.
        state => ("state", "state");
        /// `postalCode` or `postal_code`.
        postal_code => ("postalCode", "postal_code");
        /// `country`.
        country => ("country", "country");
    }
}

/// The reserved `company` identify trait.
#[derive(Clone, Copy, Debug)]
pub struct Company<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Company<'a> {
    /// A view of a company object.
    pub fn new(map: &'a Map<String, Value>) -> Company<'a> {
        Company { map }
    }

    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    str_getters! {
        /// `name`.
        name => ("name", "name");
        /// `industry`.
        industry => ("industry", "industry");
        /// `plan`.
        plan => ("plan", "plan");
    }

    /// `id`: a string, or a number's exact text.
    pub fn id(&self) -> Option<&'a str> {
        self.fields().str_or_number("id", "id")
    }

    /// `employee_count` or `employeeCount`.
    pub fn employee_count(&self) -> Option<Decimal> {
        self.fields().decimal("employeeCount", "employee_count")
    }
}

/// Reserved group traits.
#[derive(Clone, Copy, Debug)]
pub struct GroupTraits<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> GroupTraits<'a> {
    /// A view of a group's traits object.
    pub fn new(map: &'a Map<String, Value>) -> GroupTraits<'a> {
        GroupTraits { map }
    }

    /// The `traits` of a message, when it has a traits object.
    pub fn of(message: &'a Message) -> Option<GroupTraits<'a>> {
        message.traits().map(GroupTraits::new)
    }

    /// The whole traits object.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    str_getters! {
        /// `avatar`.
        avatar => ("avatar", "avatar");
        /// `description`.
        description => ("description", "description");
        /// `email`.
        email => ("email", "email");
        /// `id`.
        id => ("id", "id");
        /// `industry`.
        industry => ("industry", "industry");
        /// `name`.
        name => ("name", "name");
        /// `phone`.
        phone => ("phone", "phone");
        /// `website`.
        website => ("website", "website");
        /// `plan`.
        plan => ("plan", "plan");
    }

    /// `address`.
    pub fn address(&self) -> Option<Address<'a>> {
        self.fields().object("address", "address").map(Address::new)
    }

    /// `createdAt` or `created_at`.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.fields().date("createdAt", "created_at")
    }

    /// `employees`: a string or a number's exact text.
    pub fn employees(&self) -> Option<&'a str> {
        self.fields().str_or_number("employees", "employees")
    }

    /// The custom traits: every key that is not a reserved group trait.
    pub fn custom(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.map
            .iter()
            .filter(|(k, _)| !is_reserved(GROUP_TRAITS, k))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Reserved track properties.
#[derive(Clone, Copy, Debug)]
pub struct TrackProperties<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> TrackProperties<'a> {
    /// A view of a properties object.
    pub fn new(map: &'a Map<String, Value>) -> TrackProperties<'a> {
        TrackProperties { map }
    }

    /// The `properties` of a message, when it has a properties object.
    pub fn of(message: &'a Message) -> Option<TrackProperties<'a>> {
        message.properties().map(TrackProperties::new)
    }

    /// The whole properties object.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    /// `revenue`, exact: a number, or a numeric string (accepted with a warning).
    pub fn revenue(&self) -> Option<Decimal> {
        self.fields().decimal("revenue", "revenue")
    }

    /// `currency`, as sent (the Spec assumes USD when absent).
    pub fn currency(&self) -> Option<&'a str> {
        self.fields().str("currency", "currency")
    }

    /// `value`, exact.
    pub fn value(&self) -> Option<Decimal> {
        self.fields().decimal("value", "value")
    }

    /// The custom properties: every key that is not a reserved track property.
    pub fn custom(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.map
            .iter()
            .filter(|(k, _)| !is_reserved(TRACK_PROPERTIES, k))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Reserved page properties.
#[derive(Clone, Copy, Debug)]
pub struct PageProperties<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> PageProperties<'a> {
    /// A view of a page's properties object.
    pub fn new(map: &'a Map<String, Value>) -> PageProperties<'a> {
        PageProperties { map }
    }

    /// The `properties` of a message, when it has a properties object.
    pub fn of(message: &'a Message) -> Option<PageProperties<'a>> {
        message.properties().map(PageProperties::new)
    }

    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    str_getters! {
        /// `name` (reserved for future use).
        name => ("name", "name");
        /// `path`: `location.pathname`.
        path => ("path", "path");
        /// `referrer`: `document.referrer`.
        referrer => ("referrer", "referrer");
        /// `search`: `location.search`.
        search => ("search", "search");
        /// `title`: `document.title`.
        title => ("title", "title");
        /// `url`: the canonical URL or `location.href`.
        url => ("url", "url");
    }

    /// `keywords`: the string items of the array.
    pub fn keywords(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.fields()
            .get("keywords", "keywords")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }
}

/// Reserved screen properties.
#[derive(Clone, Copy, Debug)]
pub struct ScreenProperties<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> ScreenProperties<'a> {
    /// A view of a screen's properties object.
    pub fn new(map: &'a Map<String, Value>) -> ScreenProperties<'a> {
        ScreenProperties { map }
    }

    /// The `properties` of a message, when it has a properties object.
    pub fn of(message: &'a Message) -> Option<ScreenProperties<'a>> {
        message.properties().map(ScreenProperties::new)
    }

    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    str_getters! {
        /// `name` (reserved for future use; the screen's name is the top-level `name`).
        name => ("name", "name");
    }
}

/// Reserved context fields.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Context<'a> {
    /// A view of a context object.
    pub fn new(map: &'a Map<String, Value>) -> Context<'a> {
        Context { map }
    }

    /// The `context` of a message, when it has a context object.
    pub fn of(message: &'a Message) -> Option<Context<'a>> {
        message.context().map(Context::new)
    }

    /// The whole context object.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    fn object(&self, key: &str) -> Option<&'a Map<String, Value>> {
        self.fields().object(key, key)
    }

    str_getters! {
        /// `channel`: server, browser or mobile.
        channel => ("channel", "channel");
        /// `groupId`: the account to attribute the event to.
        group_id => ("groupId", "groupId");
        /// `ip`: the user's IP address.
        ip => ("ip", "ip");
        /// `locale`, e.g. `en-US`.
        locale => ("locale", "locale");
        /// `timezone`: a tzdata name.
        timezone => ("timezone", "timezone");
        /// `userAgent`.
        user_agent => ("userAgent", "userAgent");
    }

    /// `active`: `false` updates traits without touching "last seen".
    pub fn active(&self) -> Option<bool> {
        self.fields().bool("active", "active")
    }

    /// `direct`: `true` asks the collector to record the caller's IP.
    pub fn direct(&self) -> Option<bool> {
        self.fields().bool("direct", "direct")
    }

    /// `library`: the sending library.
    pub fn library(&self) -> Option<Library<'a>> {
        self.object("library").map(|map| Library { map })
    }

    /// `page`: the web page the event happened on.
    pub fn page(&self) -> Option<ContextPage<'a>> {
        self.object("page").map(|map| ContextPage { map })
    }

    /// `traits`: the user's traits, as in identify.
    pub fn traits(&self) -> Option<IdentifyTraits<'a>> {
        self.object("traits").map(IdentifyTraits::new)
    }

    /// `app`: `name`, `version`, `build`, `namespace`.
    pub fn app(&self) -> Option<&'a Map<String, Value>> {
        self.object("app")
    }

    /// `campaign`: the UTM parameters.
    pub fn campaign(&self) -> Option<&'a Map<String, Value>> {
        self.object("campaign")
    }

    /// `device`.
    pub fn device(&self) -> Option<&'a Map<String, Value>> {
        self.object("device")
    }

    /// `location`.
    pub fn location(&self) -> Option<&'a Map<String, Value>> {
        self.object("location")
    }

    /// `network`.
    pub fn network(&self) -> Option<&'a Map<String, Value>> {
        self.object("network")
    }

    /// `os`: `name`, `version`.
    pub fn os(&self) -> Option<&'a Map<String, Value>> {
        self.object("os")
    }

    /// `referrer`.
    pub fn referrer(&self) -> Option<&'a Map<String, Value>> {
        self.object("referrer")
    }

    /// `screen`: `density`, `height`, `width`.
    pub fn screen(&self) -> Option<&'a Map<String, Value>> {
        self.object("screen")
    }

    /// `userAgentData`: the Browser Client Hints.
    pub fn user_agent_data(&self) -> Option<&'a Map<String, Value>> {
        self.object("userAgentData")
    }
}

/// `context.library`.
#[derive(Clone, Copy, Debug)]
pub struct Library<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Library<'a> {
    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    str_getters! {
        /// `name`, e.g. `analytics-python`.
        name => ("name", "name");
        /// `version`.
        version => ("version", "version");
    }
}

/// `context.page`.
#[derive(Clone, Copy, Debug)]
pub struct ContextPage<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> ContextPage<'a> {
    fn fields(&self) -> Fields<'a> {
        Fields(self.map)
    }

    str_getters! {
        /// `path`.
        path => ("path", "path");
        /// `referrer`.
        referrer => ("referrer", "referrer");
        /// `search`.
        search => ("search", "search");
        /// `title`.
        title => ("title", "title");
        /// `url`.
        url => ("url", "url");
    }
}
