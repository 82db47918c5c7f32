//! The reserved traits, properties and context fields of the Spec, with their JSON types, and
//! typed read-only views of them.

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

/// Reserved track properties.
pub const TRACK_PROPERTIES: &[ReservedField] = &[
    f("revenue", "revenue", FieldKind::Number),
    f("currency", "currency", FieldKind::String),
    f("value", "value", FieldKind::Number),
];

/// Finds a reserved field by its camelCase or snake_case name.
pub fn lookup(fields: &'static [ReservedField], name: &str) -> Option<&'static ReservedField> {
    fields
        .iter()
        .find(|field| field.name == name || field.snake == name)
}
