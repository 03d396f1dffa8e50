//! Small serde helpers shared by the object types.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, Visitor};

/// `skip_serializing_if` for sub-objects: an all-default value is left out, as Kubernetes'
/// `omitempty` does.
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

pub(crate) fn is_false(value: &bool) -> bool {
    !*value
}

/// Resource quantities (`cpu: 4`, `memory: 8Gi`). Kubernetes accepts a number as well as a
/// string in YAML; both are kept as the string Kubernetes would print.
pub(crate) fn quantity_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Quantity(String);

    impl<'de> de::Deserialize<'de> for Quantity {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct QuantityVisitor;
            impl Visitor<'_> for QuantityVisitor {
                type Value = Quantity;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a quantity (string or number)")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                    Ok(Quantity(v.to_string()))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                    Ok(Quantity(v.to_string()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                    Ok(Quantity(v.to_string()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                    Ok(Quantity(v.to_string()))
                }
            }
            deserializer.deserialize_any(QuantityVisitor)
        }
    }

    let map: BTreeMap<String, Quantity> = de::Deserialize::deserialize(deserializer)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Render a string for an error message the way it was written: JSON-quoted.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}
