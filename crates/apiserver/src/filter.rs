//! `?labelSelector=` and `?fieldSelector=` filtering of lists and watches.

use serde_json::Value;
use weft_api::selector::LabelSelector;

use crate::error::ApiError;

/// A parsed `fieldSelector`: `a.b=v`, `a.b==v`, `a.b!=v`, comma-separated, all must hold.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    terms: Vec<(Vec<String>, bool, String)>,
}

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = raw.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = raw.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = raw.split_once('=') {
                (p, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "fieldSelector: invalid term {raw:?}: expected field=value or field!=value"
                )));
            };
            let path: Vec<String> = path.trim().split('.').map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(ApiError::BadRequest(format!(
                    "fieldSelector: invalid field path in {raw:?}"
                )));
            }
            terms.push((path, equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(path, equal, expected)| {
            let mut cursor = object;
            let mut found = true;
            for part in path {
                match cursor.get(part) {
                    Some(next) => cursor = next,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            let actual = match (found, cursor) {
                (false, _) | (true, Value::Null) => String::new(),
                (true, Value::String(s)) => s.clone(),
                (true, other) => other.to_string(),
            };
            (actual == *expected) == *equal
        })
    }
}

/// Label and field selectors of one request.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub labels: Option<LabelSelector>,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn parse(
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = match label_selector.map(str::trim).filter(|s| !s.is_empty()) {
            Some(text) => Some(
                LabelSelector::parse(text)
                    .map_err(|e| ApiError::BadRequest(format!("labelSelector: {e}")))?,
            ),
            None => None,
        };
        let fields = FieldSelector::parse(field_selector.unwrap_or(""))?;
        Ok(Filter { labels, fields })
    }

    /// True when the filter selects everything: objects can then be served from their
    /// stored bytes without decoding them.
    pub fn is_everything(&self) -> bool {
        self.labels.as_ref().is_none_or(|l| l.is_empty()) && self.fields.terms.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        if let Some(selector) = &self.labels {
            let labels = object
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            if !selector.matches(&labels) {
                return false;
            }
        }
        self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selector_terms() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        assert!(FieldSelector::parse("spec.nodeName=n1")
            .unwrap()
            .matches(&pod));
        assert!(!FieldSelector::parse("spec.nodeName!=n1")
            .unwrap()
            .matches(&pod));
        assert!(
            FieldSelector::parse("metadata.name==a,metadata.namespace=ns")
                .unwrap()
                .matches(&pod)
        );
        // An absent field compares as the empty string, as in Kubernetes (`spec.nodeName=`).
        assert!(FieldSelector::parse("status.phase=").unwrap().matches(&pod));
        assert!(FieldSelector::parse("nonsense").is_err());
        assert!(FieldSelector::parse("a..b=c").is_err());
    }
}
