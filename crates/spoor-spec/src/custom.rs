//! A builder for custom traits and properties that refuses reserved names.
//!
//! A name is refused when it is a reserved name of the set in camelCase or snake_case
//! (`firstName`, `first_name`), and also when it becomes the same warehouse column as a
//! reserved name under Segment's [`snake_case`](crate::naming::snake_case) (`First Name`,
//! `first-name`, `FirstName`): such a custom field would land in the reserved field's column.
//! The error names the reserved field to set instead.

use serde_json::{Map, Value};

use crate::naming::snake_case_cow;
use crate::reserved::{self, ReservedField};

/// Which set of reserved names a [`CustomFields`] guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldSet {
    /// Identify traits.
    IdentifyTraits,
    /// Track properties.
    TrackProperties,
    /// Group traits.
    GroupTraits,
    /// Page properties.
    PageProperties,
    /// Screen properties.
    ScreenProperties,
}

impl FieldSet {
    /// Every set.
    pub const ALL: [FieldSet; 5] = [
        FieldSet::IdentifyTraits,
        FieldSet::TrackProperties,
        FieldSet::GroupTraits,
        FieldSet::PageProperties,
        FieldSet::ScreenProperties,
    ];

    /// The reserved fields of this set.
    pub fn reserved(self) -> &'static [ReservedField] {
        match self {
            FieldSet::IdentifyTraits => reserved::IDENTIFY_TRAITS,
            FieldSet::TrackProperties => reserved::TRACK_PROPERTIES,
            FieldSet::GroupTraits => reserved::GROUP_TRAITS,
            FieldSet::PageProperties => reserved::PAGE_PROPERTIES,
            FieldSet::ScreenProperties => reserved::SCREEN_PROPERTIES,
        }
    }

    /// The reserved field that `name` collides with in this set, if any: the same camelCase
    /// or snake_case name, or the same warehouse column.
    pub fn collision(self, name: &str) -> Option<&'static ReservedField> {
        if let Some(field) = reserved::lookup(self.reserved(), name) {
            return Some(field);
        }
        let column = snake_case_cow(name);
        self.reserved()
            .iter()
            .find(|field| snake_case_cow(field.snake) == column)
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

    /// The set guarded.
    pub fn set(&self) -> FieldSet {
        self.set
    }

    /// Adds a custom field, refusing a reserved name (see the module docs). A second insert
    /// of the same name replaces the value.
    pub fn insert(&mut self, name: &str, value: Value) -> Result<(), ReservedNameError> {
        if let Some(field) = self.set.collision(name) {
            return Err(ReservedNameError {
                name: name.to_owned(),
                reserved: field.name,
            });
        }
        self.fields.insert(name.to_owned(), value);
        Ok(())
    }

    /// Builder form of [`CustomFields::insert`].
    pub fn with(mut self, name: &str, value: Value) -> Result<CustomFields, ReservedNameError> {
        self.insert(name, value)?;
        Ok(self)
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there is no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields, borrowed.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The fields.
    pub fn into_map(self) -> Map<String, Value> {
        self.fields
    }
}
