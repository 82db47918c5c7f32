//! A builder for custom traits and properties that refuses reserved names.

use serde_json::{Map, Value};

use crate::reserved::{self, ReservedField};

/// Which set of reserved names a [`CustomFields`] guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldSet {
    /// Identify traits.
    IdentifyTraits,
    /// Track properties.
    TrackProperties,
}

impl FieldSet {
    /// The reserved fields of this set.
    pub fn reserved(self) -> &'static [ReservedField] {
        match self {
            FieldSet::IdentifyTraits => reserved::IDENTIFY_TRAITS,
            FieldSet::TrackProperties => reserved::TRACK_PROPERTIES,
        }
    }
}

/// A custom name that collides with a reserved one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is a reserved name; set the reserved field {reserved:?} instead")]
pub struct ReservedNameError {
    /// The custom name refused.
    pub name: String,
    /// The reserved field to use instead (camelCase).
    pub reserved: &'static str,
}

/// Custom traits or properties, guarded against reserved names.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomFields {
    set: FieldSet,
    fields: Map<String, Value>,
}

impl CustomFields {
    /// An empty set of custom fields for `set`.
    pub fn new(set: FieldSet) -> CustomFields {
        CustomFields {
            set,
            fields: Map::new(),
        }
    }

    /// Adds a custom field, refusing a reserved name (camelCase or snake_case).
    pub fn insert(&mut self, name: &str, value: Value) -> Result<(), ReservedNameError> {
        if let Some(field) = reserved::lookup(self.set.reserved(), name) {
            return Err(ReservedNameError {
                name: name.to_owned(),
                reserved: field.name,
            });
        }
        self.fields.insert(name.to_owned(), value);
        Ok(())
    }

    /// The fields.
    pub fn into_map(self) -> Map<String, Value> {
        self.fields
    }
}
