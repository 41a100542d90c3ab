//! Client quotas as DescribeClientQuotas and AlterClientQuotas see them: entities (`user`,
//! `client-id`, both, or `ip`), Kafka's quota keys per entity kind, and the describe filter.
//! Stored in the metadata image and described; Riffle does not throttle by them yet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One entity: (entity type, name; None is the default entity of that type), sorted by type.
pub type Entity = Vec<(String, Option<String>)>;

/// The quotas of one entity. Values are kept as text (f64 has no `Eq` for the image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaEntry {
    pub entity: Entity,
    pub values: BTreeMap<String, String>,
}

/// Quota keys of user and client-id entities; `whole` ones take whole numbers (Kafka's LONG).
const CLIENT_KEYS: &[(&str, bool)] = &[
    ("producer_byte_rate", true),
    ("consumer_byte_rate", true),
    ("request_percentage", false),
    ("controller_mutation_rate", false),
];
/// The quota key of ip entities (Kafka's INT).
const IP_KEYS: &[(&str, bool)] = &[("connection_creation_rate", true)];

/// Filter match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// Checks an entity and returns it sorted by type; the error is Kafka's INVALID_REQUEST text.
pub fn normalized(mut entity: Entity) -> Result<Entity, String> {
    entity.sort();
    for (i, (kind, _)) in entity.iter().enumerate() {
        if !["user", "client-id", "ip"].contains(&kind.as_str()) {
            return Err(format!("Unhandled client quota entity type: {kind}"));
        }
        if entity[..i].iter().any(|(k, _)| k == kind) {
            return Err(format!("Duplicate {kind} entity type"));
        }
    }
    let has_ip = entity.iter().any(|(k, _)| k == "ip");
    if entity.is_empty() || (has_ip && entity.len() > 1) {
        return Err("Invalid quota entity combination".into());
    }
    Ok(entity)
}

/// Checks one quota key and value for `entity`.
fn check_value(entity: &Entity, key: &str, value: f64) -> Result<(), String> {
    let keys = if entity.iter().any(|(k, _)| k == "ip") {
        IP_KEYS
    } else {
        CLIENT_KEYS
    };
    let (_, whole) = keys
        .iter()
        .find(|(k, _)| *k == key)
        .ok_or_else(|| format!("Invalid configuration key {key}"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!(
            "Illegal value {value} for {key}: it must be positive"
        ));
    }
    if *whole && value.fract() != 0.0 {
        return Err(format!(
            "Illegal value {value} for {key}: it must be a whole number"
        ));
    }
    Ok(())
}

/// Applies one AlterClientQuotas entry (key, value, remove) to `quotas`, all ops or none.
pub fn alter(
    quotas: &mut Vec<QuotaEntry>,
    entity: Entity,
    ops: &[(String, f64, bool)],
) -> Result<(), String> {
    let entity = normalized(entity)?;
    for (key, value, remove) in ops {
        if !remove {
            check_value(&entity, key, *value)?;
        } else {
            check_value(&entity, key, 1.0)?;
        }
    }
    let position = quotas.iter().position(|q| q.entity == entity);
    let mut entry = position.map_or_else(
        || QuotaEntry {
            entity: entity.clone(),
            values: BTreeMap::new(),
        },
        |i| quotas.remove(i),
    );
    for (key, value, remove) in ops {
        if *remove {
            entry.values.remove(key);
        } else {
            entry.values.insert(key.clone(), value.to_string());
        }
    }
    if !entry.values.is_empty() {
        quotas.push(entry);
    }
    Ok(())
}

/// One filter component: (entity type, match type, match).
pub type Component = (String, i8, Option<String>);

/// Checks a describe filter; the error is Kafka's INVALID_REQUEST text.
pub fn check_filter(components: &[Component]) -> Result<(), String> {
    for (i, (kind, match_type, name)) in components.iter().enumerate() {
        if components[..i].iter().any(|(k, ..)| k == kind) {
            return Err(format!("Duplicate {kind} filter component entity type"));
        }
        match (*match_type, name) {
            (MATCH_EXACT, None) => return Err(format!("Missing match for {kind}")),
            (MATCH_EXACT, Some(_)) | (MATCH_DEFAULT, _) | (MATCH_SPECIFIED, _) => {}
            (other, _) => return Err(format!("Unexpected match type {other}")),
        }
    }
    Ok(())
}

/// Whether an entry matches every component (and, when strict, has no other entity types).
pub fn matches(entry: &QuotaEntry, components: &[Component], strict: bool) -> bool {
    let each = components.iter().all(|(kind, match_type, name)| {
        let found = entry.entity.iter().find(|(k, _)| k == kind);
        match (*match_type, found) {
            (MATCH_EXACT, Some((_, n))) => n == name,
            (MATCH_DEFAULT, Some((_, n))) => n.is_none(),
            (MATCH_SPECIFIED, Some((_, n))) => n.is_some(),
            _ => false,
        }
    });
    each && (!strict || entry.entity.len() == components.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: Option<&str>) -> Entity {
        vec![("user".to_string(), name.map(String::from))]
    }

    #[test]
    fn quotas_are_validated_stored_and_removed() {
        let mut quotas = Vec::new();
        let set = |k: &str, v| (k.to_string(), v, false);
        alter(
            &mut quotas,
            user(Some("alice")),
            &[set("producer_byte_rate", 1024.0)],
        )
        .unwrap();
        alter(&mut quotas, user(None), &[set("request_percentage", 12.5)]).unwrap();
        assert_eq!(quotas.len(), 2);
        assert_eq!(quotas[0].values["producer_byte_rate"], "1024");
        for (entity, op) in [
            (user(Some("a")), set("connection_creation_rate", 5.0)),
            (user(Some("a")), set("producer_byte_rate", 1.5)),
            (user(Some("a")), set("producer_byte_rate", -1.0)),
            (
                vec![("ip".into(), None), ("user".into(), None)],
                set("producer_byte_rate", 1.0),
            ),
            (vec![("group".into(), None)], set("producer_byte_rate", 1.0)),
        ] {
            assert!(
                alter(&mut quotas, entity.clone(), &[op]).is_err(),
                "{entity:?}"
            );
        }
        let remove = ("producer_byte_rate".to_string(), 0.0, true);
        alter(&mut quotas, user(Some("alice")), &[remove]).unwrap();
        assert_eq!(quotas.len(), 1, "an entity without quotas is gone");
    }

    #[test]
    fn the_filter_matches_as_kafkas() {
        let entry = |entity| QuotaEntry {
            entity,
            values: BTreeMap::new(),
        };
        let alice = entry(user(Some("alice")));
        let default = entry(user(None));
        let both = entry(vec![
            ("client-id".into(), Some("c".into())),
            ("user".into(), Some("alice".into())),
        ]);
        let exact = vec![("user".to_string(), MATCH_EXACT, Some("alice".to_string()))];
        assert!(matches(&alice, &exact, true));
        assert!(!matches(&default, &exact, false));
        assert!(matches(&both, &exact, false));
        assert!(!matches(&both, &exact, true));
        let any = vec![("user".to_string(), MATCH_SPECIFIED, None)];
        assert!(matches(&alice, &any, false) && !matches(&default, &any, false));
        let dflt = vec![("user".to_string(), MATCH_DEFAULT, None)];
        assert!(matches(&default, &dflt, true));
        assert!(check_filter(&[("user".into(), MATCH_EXACT, None)]).is_err());
        assert!(check_filter(&[("user".into(), 7, None)]).is_err());
    }
}
