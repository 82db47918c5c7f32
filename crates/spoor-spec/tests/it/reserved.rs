//! Typed views of the reserved traits, properties and context fields.

use spoor_spec::reserved::{
    self, Context, FieldKind, GroupTraits, IdentifyTraits, PageProperties, ScreenProperties,
    TrackProperties,
};
use spoor_spec::{Decimal, Timestamp};

use crate::util::msg;

#[test]
fn identify_traits_in_camel_and_snake_case() {
    let camel = msg(
        r#"{"type":"identify","userId":"u","traits":{"email":"ada@example.com","firstName":"Ada","lastName":"Lovelace","age":36,"birthday":"1815-12-10","createdAt":"2020-01-01T00:00:00Z","address":{"street":"1 Main","city":"London","postalCode":"N1","country":"UK","state":"LDN"},"company":{"name":"Engines","id":42,"industry":"Computing","employee_count":3,"plan":"pro"},"favoriteColor":"green","phone":"+44","title":"Countess","username":"ada","website":"w","avatar":"a","gender":"f","description":"d","id":"u"}}"#,
    );
    let traits = IdentifyTraits::of(&camel).expect("traits");
    assert_eq!(traits.email(), Some("ada@example.com"));
    assert_eq!(traits.first_name(), Some("Ada"));
    assert_eq!(traits.last_name(), Some("Lovelace"));
    assert_eq!(traits.name(), None);
    assert_eq!(traits.full_name().as_deref(), Some("Ada Lovelace"));
    assert_eq!(traits.age(), Some(Decimal::from(36)));
    assert_eq!(
        traits.birthday().map(|t| t.to_string()).as_deref(),
        Some("1815-12-10T00:00:00.000Z")
    );
    assert_eq!(
        traits.created_at(),
        Some(Timestamp::parse("2020-01-01T00:00:00Z").expect("valid"))
    );
    let address = traits.address().expect("address");
    assert_eq!(
        (
            address.street(),
            address.city(),
            address.state(),
            address.postal_code(),
            address.country()
        ),
        (
            Some("1 Main"),
            Some("London"),
            Some("LDN"),
            Some("N1"),
            Some("UK")
        )
    );
    let company = traits.company().expect("company");
    assert_eq!(company.name(), Some("Engines"));
    assert_eq!(company.id(), Some("42"));
    assert_eq!(company.industry(), Some("Computing"));
    assert_eq!(company.employee_count(), Some(Decimal::from(3)));
    assert_eq!(company.plan(), Some("pro"));
    assert_eq!(
        (
            traits.phone(),
            traits.title(),
            traits.username(),
            traits.website()
        ),
        (Some("+44"), Some("Countess"), Some("ada"), Some("w"))
    );
    assert_eq!(
        (
            traits.avatar(),
            traits.gender(),
            traits.description(),
            traits.id()
        ),
        (Some("a"), Some("f"), Some("d"), Some("u"))
    );
    let custom: Vec<&str> = traits.custom().map(|(k, _)| k).collect();
    assert_eq!(custom, ["favoriteColor"]);

    let snake = msg(
        r#"{"type":"identify","userId":"u","traits":{"first_name":"Grace","last_name":"Hopper","created_at":"1990-05-17","address":{"postal_code":"10001"},"company":{"employeeCount":"7"}}}"#,
    );
    let traits = IdentifyTraits::of(&snake).expect("traits");
    assert_eq!(traits.first_name(), Some("Grace"));
    assert_eq!(traits.full_name().as_deref(), Some("Grace Hopper"));
    assert_eq!(
        traits.created_at().map(|t| t.to_string()).as_deref(),
        Some("1990-05-17T00:00:00.000Z")
    );
    assert_eq!(
        traits.address().and_then(|a| a.postal_code()),
        Some("10001")
    );
    assert_eq!(
        traits.company().and_then(|c| c.employee_count()),
        Some(Decimal::from(7))
    );
}

#[test]
fn wrong_types_read_as_absent() {
    let message = msg(
        r#"{"type":"identify","userId":"u","traits":{"email":5,"age":"old","address":"x","name":null}}"#,
    );
    let traits = IdentifyTraits::of(&message).expect("traits");
    assert_eq!(
        (traits.email(), traits.age(), traits.name()),
        (None, None, None)
    );
    assert!(traits.address().is_none());
}

#[test]
fn group_traits() {
    let message = msg(
        r#"{"type":"group","userId":"u","groupId":"g","traits":{"name":"Acme","employees":120,"plan":"enterprise","industry":"Tools","created_at":"2021-06-01T00:00:00Z","address":{"city":"Paris"},"tier":"gold"}}"#,
    );
    let traits = GroupTraits::of(&message).expect("traits");
    assert_eq!(traits.name(), Some("Acme"));
    assert_eq!(traits.employees(), Some("120"));
    assert_eq!(traits.plan(), Some("enterprise"));
    assert_eq!(traits.industry(), Some("Tools"));
    assert!(traits.created_at().is_some());
    assert_eq!(traits.address().and_then(|a| a.city()), Some("Paris"));
    assert_eq!(
        traits.custom().map(|(k, _)| k).collect::<Vec<_>>(),
        ["tier"]
    );
}

#[test]
fn track_properties_are_exact() {
    let message = msg(
        r#"{"type":"track","userId":"u","event":"Order Completed","properties":{"revenue":19.99,"currency":"USD","value":"0.10","order_id":"o1"}}"#,
    );
    let props = TrackProperties::of(&message).expect("properties");
    assert_eq!(
        props.revenue().map(|d| d.to_string()).as_deref(),
        Some("19.99")
    );
    assert_eq!(props.currency(), Some("USD"));
    assert_eq!(
        props.value().map(|d| d.to_string()).as_deref(),
        Some("0.10")
    );
    assert_eq!(
        props.custom().map(|(k, _)| k).collect::<Vec<_>>(),
        ["order_id"]
    );
}

#[test]
fn page_and_screen_properties() {
    let page = msg(
        r#"{"type":"page","userId":"u","name":"Pricing","properties":{"path":"/pricing","referrer":"https://google.com","search":"?a=1","title":"Pricing","url":"https://x/pricing","keywords":["a",1,"b"]}}"#,
    );
    let props = PageProperties::of(&page).expect("properties");
    assert_eq!(
        (
            props.path(),
            props.referrer(),
            props.search(),
            props.title(),
            props.url(),
            props.name()
        ),
        (
            Some("/pricing"),
            Some("https://google.com"),
            Some("?a=1"),
            Some("Pricing"),
            Some("https://x/pricing"),
            None
        )
    );
    assert_eq!(props.keywords().collect::<Vec<_>>(), ["a", "b"]);
    let screen =
        msg(r#"{"type":"screen","userId":"u","name":"Home","properties":{"name":"Home"}}"#);
    assert_eq!(
        ScreenProperties::of(&screen).and_then(|p| p.name()),
        Some("Home")
    );
}

#[test]
fn context_fields() {
    let message = msg(
        r#"{"type":"track","userId":"u","event":"E","context":{"ip":"203.0.113.9","library":{"name":"analytics-node","version":"3.1.0"},"page":{"path":"/","url":"https://x/"},"userAgent":"Mozilla","locale":"fr-FR","timezone":"Europe/Paris","active":false,"direct":true,"groupId":"acct","channel":"browser","traits":{"email":"a@b"},"app":{"name":"A"},"device":{"type":"ios"},"os":{"name":"iOS"},"screen":{"width":390},"network":{"wifi":true},"campaign":{"source":"news"},"referrer":{"type":"link"},"location":{"city":"Lyon"},"userAgentData":{"mobile":true}}}"#,
    );
    let context = Context::of(&message).expect("context");
    assert_eq!(context.ip(), Some("203.0.113.9"));
    let library = context.library().expect("library");
    assert_eq!(
        (library.name(), library.version()),
        (Some("analytics-node"), Some("3.1.0"))
    );
    let page = context.page().expect("page");
    assert_eq!(
        (page.path(), page.url(), page.title()),
        (Some("/"), Some("https://x/"), None)
    );
    assert_eq!(
        (
            context.user_agent(),
            context.locale(),
            context.timezone(),
            context.group_id(),
            context.channel()
        ),
        (
            Some("Mozilla"),
            Some("fr-FR"),
            Some("Europe/Paris"),
            Some("acct"),
            Some("browser")
        )
    );
    assert_eq!(
        (context.active(), context.direct()),
        (Some(false), Some(true))
    );
    assert_eq!(context.traits().and_then(|t| t.email()), Some("a@b"));
    for (name, object) in [
        ("app", context.app()),
        ("device", context.device()),
        ("os", context.os()),
        ("screen", context.screen()),
        ("network", context.network()),
        ("campaign", context.campaign()),
        ("referrer", context.referrer()),
        ("location", context.location()),
        ("userAgentData", context.user_agent_data()),
    ] {
        assert!(object.is_some_and(|o| !o.is_empty()), "{name}");
    }
}

#[test]
fn tables_are_consistent() {
    let tables = [
        reserved::IDENTIFY_TRAITS,
        reserved::GROUP_TRAITS,
        reserved::ADDRESS_FIELDS,
        reserved::COMPANY_FIELDS,
        reserved::TRACK_PROPERTIES,
        reserved::PAGE_PROPERTIES,
        reserved::SCREEN_PROPERTIES,
        reserved::CONTEXT_FIELDS,
    ];
    for table in tables {
        for field in table {
            assert_eq!(
                spoor_spec::naming::snake_case(field.name),
                spoor_spec::naming::snake_case(field.snake),
                "{field:?}"
            );
            assert_eq!(reserved::lookup(table, field.name), Some(field));
        }
    }
    assert_eq!(reserved::IDENTIFY_TRAITS.len(), 17);
    assert_eq!(reserved::GROUP_TRAITS.len(), 12);
    assert_eq!(reserved::CONTEXT_FIELDS.len(), 20);
    let company = reserved::lookup(reserved::IDENTIFY_TRAITS, "company").expect("company");
    assert_eq!(
        reserved::nested(reserved::IDENTIFY_TRAITS, company),
        Some(reserved::COMPANY_FIELDS)
    );
    let id = reserved::lookup(reserved::COMPANY_FIELDS, "id").expect("id");
    assert_eq!(id.kind, FieldKind::StringOrNumber);
    assert_eq!(
        FieldKind::Date.describe(),
        "an ISO 8601 date or timestamp string"
    );
}
