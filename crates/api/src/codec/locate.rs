//! Finds the line and column of a field path in YAML text.
//!
//! Manifests are parsed into `serde_json::Value`, which forgets positions. To place an
//! error, the document is read again with a visitor that walks down the path and fails on
//! purpose at the target: serde_yaml stamps every error with the position of the node it
//! was reading, and that position is the answer.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Segment;

const FOUND: &str = "weft: located";

/// 1-based line and column of `path` in document `document` (0-based) of `text`. A path
/// that does not exist (a missing field) resolves to the closest enclosing node.
pub(crate) fn locate(text: &str, document: usize, path: &[Segment]) -> Option<(usize, usize)> {
    let doc = serde_yaml::Deserializer::from_str(text).nth(document)?;
    let err = Locator { path }.deserialize(doc).err()?;
    let loc = err.location()?;
    Some((loc.line(), loc.column()))
}

struct Locator<'a> {
    path: &'a [Segment],
}

impl<'de> DeserializeSeed<'de> for Locator<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.path.first() {
            None => deserializer.deserialize_any(Here),
            Some(Segment::Key(_)) => deserializer.deserialize_map(self),
            Some(Segment::Index(_)) => deserializer.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Locator<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the node on the path")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(target), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        // The last key is reported at the key itself: that is where an unknown field is.
        while let Some(matched) = map.next_key_seed(Key {
            target,
            fail_on_match: rest.is_empty(),
        })? {
            if matched {
                return map.next_value_seed(Locator { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(FOUND))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(target), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        for _ in 0..*target {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(FOUND));
            }
        }
        match seq.next_element_seed(Locator { path: rest })? {
            Some(()) | None => Err(de::Error::custom(FOUND)),
        }
    }

    // Any other node where a map or list was expected: the path ends here.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
}

/// Fails at whatever node it is given.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

/// Reads a map key; true when it is the one on the path.
struct Key<'a> {
    target: &'a str,
    fail_on_match: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        let matched = v == self.target;
        if matched && self.fail_on_match {
            return Err(E::custom(FOUND));
        }
        Ok(matched)
    }

    // Non-string keys never match a path segment, but must not stop the search.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - name: http
    port: 80
  - name: dns
    prot: 53
---
kind: Pod
spec:
  containers: []
";

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn finds_keys_and_indices() {
        assert_eq!(locate(TEXT, 0, &[key("kind")]), Some((2, 1)));
        assert_eq!(
            locate(TEXT, 0, &[key("metadata"), key("name")]),
            Some((4, 3))
        );
        let path = [key("spec"), key("ports"), Segment::Index(1), key("prot")];
        assert_eq!(locate(TEXT, 0, &path), Some((10, 5)));
        let path = [key("spec"), key("ports"), Segment::Index(1)];
        assert_eq!(locate(TEXT, 0, &path), Some((9, 5)));
    }

    #[test]
    fn later_documents_use_absolute_lines() {
        assert_eq!(
            locate(TEXT, 1, &[key("spec"), key("containers")]),
            Some((14, 3))
        );
        assert_eq!(locate(TEXT, 2, &[key("spec")]), None);
    }

    #[test]
    fn missing_key_points_at_the_enclosing_node() {
        let path = [
            key("spec"),
            key("ports"),
            Segment::Index(0),
            key("targetPort"),
        ];
        assert_eq!(locate(TEXT, 0, &path), Some((7, 5)));
    }
}
