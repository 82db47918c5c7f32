//! The custom-fields builder refuses reserved names in every set, and names the field to use.

use spoor_spec::{CustomFields, FieldSet, ReservedNameError, Value};

#[test]
fn reserved_names_are_refused_in_every_spelling() {
    let cases: &[(FieldSet, &str, &str)] = &[
        (FieldSet::IdentifyTraits, "firstName", "firstName"),
        (FieldSet::IdentifyTraits, "first_name", "firstName"),
        (FieldSet::IdentifyTraits, "First Name", "firstName"),
        (FieldSet::IdentifyTraits, "first-name", "firstName"),
        (FieldSet::IdentifyTraits, "FirstName", "firstName"),
        (FieldSet::IdentifyTraits, "created_at", "createdAt"),
        (FieldSet::IdentifyTraits, "EMAIL", "email"),
        (FieldSet::IdentifyTraits, "ID", "id"),
        (FieldSet::IdentifyTraits, "address", "address"),
        (FieldSet::GroupTraits, "employees", "employees"),
        (FieldSet::GroupTraits, "Industry", "industry"),
        (FieldSet::GroupTraits, "createdAt", "createdAt"),
        (FieldSet::TrackProperties, "revenue", "revenue"),
        (FieldSet::TrackProperties, "Revenue", "revenue"),
        (FieldSet::TrackProperties, "currency", "currency"),
        (FieldSet::TrackProperties, "value", "value"),
        (FieldSet::PageProperties, "url", "url"),
        (FieldSet::PageProperties, "keywords", "keywords"),
        (FieldSet::PageProperties, "Title", "title"),
        (FieldSet::ScreenProperties, "name", "name"),
    ];
    for (set, name, reserved) in cases {
        let err = CustomFields::new(*set)
            .insert(name, Value::Bool(true))
            .expect_err(name);
        assert_eq!(
            err,
            ReservedNameError {
                name: (*name).to_owned(),
                reserved
            },
            "{set:?} {name}"
        );
        assert!(
            err.to_string()
                .contains(&format!("set the reserved field \"{reserved}\""))
        );
    }
}

#[test]
fn custom_names_are_kept_as_given() {
    let cases: &[(FieldSet, &str)] = &[
        (FieldSet::IdentifyTraits, "plan"),
        (FieldSet::IdentifyTraits, "favoriteColor"),
        (FieldSet::IdentifyTraits, "firstname"),
        (FieldSet::GroupTraits, "age"),
        (FieldSet::TrackProperties, "price"),
        (FieldSet::TrackProperties, "email"),
        (FieldSet::PageProperties, "revenue"),
        (FieldSet::ScreenProperties, "url"),
    ];
    for (set, name) in cases {
        let fields = CustomFields::new(*set)
            .with(name, Value::from(1))
            .unwrap_or_else(|e| panic!("{set:?} {name}: {e}"));
        assert_eq!(fields.get(name), Some(&Value::from(1)));
        assert_eq!(fields.len(), 1);
        assert_eq!(fields.set(), *set);
        assert_eq!(
            fields.into_map().keys().next().map(String::as_str),
            Some(*name)
        );
    }
}

#[test]
fn every_set_knows_its_reserved_fields() {
    for set in FieldSet::ALL {
        assert!(!set.reserved().is_empty());
        for field in set.reserved() {
            assert_eq!(set.collision(field.name).map(|f| f.name), Some(field.name));
            assert_eq!(set.collision(field.snake).map(|f| f.name), Some(field.name));
        }
    }
    let empty = CustomFields::new(FieldSet::TrackProperties);
    assert!(empty.is_empty() && empty.as_map().is_empty());
}
