//! Label selectors: the structured form (`matchLabels` + `matchExpressions`) objects carry,
//! the query-string form of `?labelSelector=`, and Services' plain map selectors.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::util::quote;
use crate::validation::names;
use crate::validation::FieldError;

mod parse;

pub use parse::SelectorParseError;

/// A structured selector. All of `matchLabels` and all of `matchExpressions` must match;
/// an empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(
        default,
        rename = "matchLabels",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_labels: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "matchExpressions",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    #[serde(default)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`. A string, so an unknown operator decodes
    /// and validation can name it.
    #[serde(default)]
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Operator> {
        match s {
            "In" => Some(Operator::In),
            "NotIn" => Some(Operator::NotIn),
            "Exists" => Some(Operator::Exists),
            "DoesNotExist" => Some(Operator::DoesNotExist),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        }
    }
}

impl LabelSelectorRequirement {
    pub fn new(key: &str, operator: Operator, values: &[&str]) -> Self {
        LabelSelectorRequirement {
            key: key.to_string(),
            operator: operator.as_str().to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// An unknown operator matches nothing, as Kubernetes treats an invalid selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match Operator::parse(&self.operator) {
            Some(Operator::In) => value.is_some_and(|v| self.values.contains(v)),
            Some(Operator::NotIn) => value.is_none_or(|v| !self.values.contains(v)),
            Some(Operator::Exists) => value.is_some(),
            Some(Operator::DoesNotExist) => value.is_none(),
            None => false,
        }
    }
}

impl LabelSelector {
    /// Matches everything.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        LabelSelector {
            match_labels: labels.clone(),
            match_expressions: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        map_matches(&self.match_labels, labels)
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// Syntax checks as Kubernetes does them; `path` is where the selector sits
    /// (`spec.podSelector`).
    pub fn validate(&self, path: &str) -> Vec<FieldError> {
        let mut errs = Vec::new();
        crate::validation::check_labels(
            &mut errs,
            &format!("{path}.matchLabels"),
            &self.match_labels,
        );
        for (i, req) in self.match_expressions.iter().enumerate() {
            let p = format!("{path}.matchExpressions[{i}]");
            if !names::is_qualified_name(&req.key) {
                errs.push(FieldError::new(
                    format!("{p}.key"),
                    quote(&req.key),
                    names::QUALIFIED_NAME_MSG,
                ));
            }
            match Operator::parse(&req.operator) {
                Some(Operator::In | Operator::NotIn) => {
                    if req.values.is_empty() {
                        errs.push(FieldError::new(
                            format!("{p}.values"),
                            "",
                            format!("must be non-empty when operator is {}", req.operator),
                        ));
                    }
                    for (j, v) in req.values.iter().enumerate() {
                        if !names::is_label_value(v) {
                            errs.push(FieldError::new(
                                format!("{p}.values[{j}]"),
                                quote(v),
                                names::LABEL_VALUE_MSG,
                            ));
                        }
                    }
                }
                Some(Operator::Exists | Operator::DoesNotExist) => {
                    if !req.values.is_empty() {
                        errs.push(FieldError::new(
                            format!("{p}.values"),
                            "",
                            format!("must be empty when operator is {}", req.operator),
                        ));
                    }
                }
                None => errs.push(FieldError::new(
                    format!("{p}.operator"),
                    quote(&req.operator),
                    "must be one of In, NotIn, Exists, DoesNotExist",
                )),
            }
        }
        errs
    }

    /// Parses the query-string form: `app=web,tier!=db,env in (a,b),env notin (c),foo,!bar`.
    pub fn parse(input: &str) -> Result<LabelSelector, SelectorParseError> {
        parse::parse(input)
    }
}

/// A plain `key: value` selector (a Service's `spec.selector`, a pod's `nodeSelector`):
/// every pair must be present. An empty map matches everything; callers that give an empty
/// selector another meaning (Services) check for it first.
pub fn map_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The query-string form, which [`LabelSelector::parse`] reads back.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            parts.push(match Operator::parse(&r.operator) {
                Some(Operator::In) => format!("{} in ({})", r.key, r.values.join(",")),
                Some(Operator::NotIn) if r.values.len() == 1 => {
                    format!("{}!={}", r.key, r.values[0])
                }
                Some(Operator::NotIn) => format!("{} notin ({})", r.key, r.values.join(",")),
                Some(Operator::Exists) => r.key.clone(),
                Some(Operator::DoesNotExist) => format!("!{}", r.key),
                // Not parseable back, on purpose: an invalid selector must not widen.
                None => format!("{} {} ({})", r.key, r.operator, r.values.join(",")),
            });
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: Operator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement::new(key, op, values)],
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::everything().matches(&labels(&[])));
        assert!(LabelSelector::everything().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels() {
        let sel = LabelSelector::from_labels(&labels(&[("app", "web"), ("tier", "fe")]));
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "fe"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "be")])));
    }

    #[test]
    fn every_operator() {
        let web = labels(&[("env", "prod")]);
        let dev = labels(&[("env", "dev")]);
        let none = labels(&[]);

        let sel = expr("env", Operator::In, &["prod", "staging"]);
        assert_eq!(
            (sel.matches(&web), sel.matches(&dev), sel.matches(&none)),
            (true, false, false)
        );
        let sel = expr("env", Operator::NotIn, &["prod"]);
        assert_eq!(
            (sel.matches(&web), sel.matches(&dev), sel.matches(&none)),
            (false, true, true)
        );
        let sel = expr("env", Operator::Exists, &[]);
        assert_eq!(
            (sel.matches(&web), sel.matches(&dev), sel.matches(&none)),
            (true, true, false)
        );
        let sel = expr("env", Operator::DoesNotExist, &[]);
        assert_eq!(
            (sel.matches(&web), sel.matches(&dev), sel.matches(&none)),
            (false, false, true)
        );
    }

    #[test]
    fn unknown_operator_matches_nothing() {
        let mut sel = expr("env", Operator::Exists, &[]);
        sel.match_expressions[0].operator = "Gt".into();
        assert!(!sel.matches(&labels(&[("env", "1")])));
        assert!(!sel.matches(&labels(&[])));
    }

    #[test]
    fn validation() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "bad value!")]),
            match_expressions: vec![
                LabelSelectorRequirement::new("a", Operator::In, &[]),
                LabelSelectorRequirement::new("b", Operator::Exists, &["x"]),
                LabelSelectorRequirement {
                    key: "c".into(),
                    operator: "Equals".into(),
                    values: vec![],
                },
                LabelSelectorRequirement::new("bad key", Operator::NotIn, &["ok"]),
            ],
        };
        let errs: Vec<String> = sel
            .validate("spec.selector")
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            vec![
                format!("spec.selector.matchLabels.app: \"bad value!\" {}", names::LABEL_VALUE_MSG),
                "spec.selector.matchExpressions[0].values: must be non-empty when operator is In".into(),
                "spec.selector.matchExpressions[1].values: must be empty when operator is Exists".into(),
                "spec.selector.matchExpressions[2].operator: \"Equals\" must be one of In, NotIn, Exists, DoesNotExist".into(),
                format!("spec.selector.matchExpressions[3].key: \"bad key\" {}", names::QUALIFIED_NAME_MSG),
            ]
        );
        assert!(expr("env", Operator::In, &["a"]).validate("s").is_empty());
    }

    #[test]
    fn map_selectors() {
        let selector = labels(&[("app", "web")]);
        assert!(map_matches(
            &selector,
            &labels(&[("app", "web"), ("v", "1")])
        ));
        assert!(!map_matches(&selector, &labels(&[("app", "db")])));
        assert!(map_matches(&labels(&[]), &labels(&[("app", "db")])));

        let mut svc = crate::core::Service::default();
        assert!(
            !svc.selects(&labels(&[("app", "web")])),
            "no selector selects nothing"
        );
        svc.spec.selector = selector;
        assert!(svc.selects(&labels(&[("app", "web")])));
        assert!(!svc.selects(&labels(&[])));
    }
}
