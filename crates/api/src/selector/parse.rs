//! The query-string form of a selector, as `?labelSelector=` carries it:
//! `app=web,tier!=db,env in (a,b),env notin (c),foo,!bar`.

use std::collections::btree_map::Entry;

use super::{LabelSelector, LabelSelectorRequirement, Operator};
use crate::util::quote;
use crate::validation::names;

pub(super) fn parse(input: &str) -> Result<LabelSelector, SelectorParseError> {
    Parser::new(input).parse()
}

/// A `?labelSelector=` string that does not parse. `token` is the offending token as
/// written (empty at the end of the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {}: {message}", quote(input))]
pub struct SelectorParseError {
    pub input: String,
    pub token: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// `=` or `==`.
    Equals,
    NotEquals,
    Bang,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => quote(s),
            Token::Equals => "\"=\"".into(),
            Token::NotEquals => "\"!=\"".into(),
            Token::Bang => "\"!\"".into(),
            Token::Open => "\"(\"".into(),
            Token::Close => "\")\"".into(),
            Token::Comma => "\",\"".into(),
            Token::End => "end of input".into(),
        }
    }

    fn text(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Equals => "=".into(),
            Token::NotEquals => "!=".into(),
            Token::Bang => "!".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::End => String::new(),
        }
    }
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')' | '<' | '>')
}

/// Tokenizes on demand; whitespace separates tokens and is otherwise ignored.
struct Parser<'a> {
    input: &'a str,
    rest: &'a str,
    peeked: Option<Token>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
            rest: input,
            peeked: None,
        }
    }

    fn error(&self, token: &Token, message: String) -> SelectorParseError {
        SelectorParseError {
            input: self.input.to_string(),
            token: token.text(),
            message,
        }
    }

    fn lex(&mut self) -> Result<Token, SelectorParseError> {
        self.rest = self.rest.trim_start();
        let mut chars = self.rest.chars();
        let Some(c) = chars.next() else {
            return Ok(Token::End);
        };
        let (token, len) = match c {
            ',' => (Token::Comma, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '=' if chars.next() == Some('=') => (Token::Equals, 2),
            '=' => (Token::Equals, 1),
            '!' if chars.next() == Some('=') => (Token::NotEquals, 2),
            '!' => (Token::Bang, 1),
            '<' | '>' => {
                let token = Token::Ident(c.to_string());
                return Err(self.error(
                    &token,
                    format!("unsupported operator \"{c}\": label selectors support =, ==, !=, in, notin, exists and !"),
                ));
            }
            _ => {
                let len = self.rest.find(is_special).unwrap_or(self.rest.len());
                (Token::Ident(self.rest[..len].to_string()), len)
            }
        };
        self.rest = &self.rest[len..];
        Ok(token)
    }

    fn next(&mut self) -> Result<Token, SelectorParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn peek(&mut self) -> Result<&Token, SelectorParseError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex()?);
        }
        Ok(self.peeked.as_ref().unwrap_or(&Token::End))
    }

    fn parse(mut self) -> Result<LabelSelector, SelectorParseError> {
        let mut selector = LabelSelector::default();
        if self.peek()? == &Token::End {
            return Ok(selector);
        }
        loop {
            self.requirement(&mut selector)?;
            match self.next()? {
                Token::End => return Ok(selector),
                Token::Comma => {}
                other => {
                    return Err(self.error(
                        &other,
                        format!(
                            "unexpected {}, expected \",\" or end of input",
                            other.describe()
                        ),
                    ))
                }
            }
        }
    }

    fn key(&mut self) -> Result<String, SelectorParseError> {
        match self.next()? {
            Token::Ident(key) if names::is_qualified_name(&key) => Ok(key),
            Token::Ident(key) => {
                let token = Token::Ident(key);
                Err(self.error(
                    &token,
                    format!("{} {}", token.describe(), names::QUALIFIED_NAME_MSG),
                ))
            }
            other => Err(self.error(
                &other,
                format!("expected a label key, found {}", other.describe()),
            )),
        }
    }

    /// A value after `=`/`!=` or inside `( )`; may be empty (`app=`).
    fn value(&mut self) -> Result<String, SelectorParseError> {
        if !matches!(self.peek()?, Token::Ident(_)) {
            return Ok(String::new());
        }
        match self.next()? {
            Token::Ident(v) if names::is_label_value(&v) => Ok(v),
            other => Err(self.error(
                &other,
                format!("{} {}", other.describe(), names::LABEL_VALUE_MSG),
            )),
        }
    }

    fn requirement(&mut self, selector: &mut LabelSelector) -> Result<(), SelectorParseError> {
        if self.peek()? == &Token::Bang {
            self.next()?;
            let key = self.key()?;
            selector
                .match_expressions
                .push(LabelSelectorRequirement::new(
                    &key,
                    Operator::DoesNotExist,
                    &[],
                ));
            return Ok(());
        }
        let key = self.key()?;
        match self.peek()?.clone() {
            Token::End | Token::Comma => {
                selector
                    .match_expressions
                    .push(LabelSelectorRequirement::new(&key, Operator::Exists, &[]));
            }
            Token::Equals => {
                self.next()?;
                let value = self.value()?;
                // A repeated key must stay an AND of both requirements, so only the first
                // goes into the map.
                match selector.match_labels.entry(key) {
                    Entry::Occupied(e) => {
                        selector.match_expressions.push(LabelSelectorRequirement {
                            key: e.key().clone(),
                            operator: "In".into(),
                            values: vec![value],
                        })
                    }
                    Entry::Vacant(e) => {
                        e.insert(value);
                    }
                }
            }
            Token::NotEquals => {
                self.next()?;
                let value = self.value()?;
                selector.match_expressions.push(LabelSelectorRequirement {
                    key,
                    operator: "NotIn".into(),
                    values: vec![value],
                });
            }
            Token::Ident(word) if word == "in" || word == "notin" => {
                self.next()?;
                let values = self.set()?;
                let operator = if word == "in" { "In" } else { "NotIn" };
                selector.match_expressions.push(LabelSelectorRequirement {
                    key,
                    operator: operator.into(),
                    values,
                });
            }
            other => {
                return Err(self.error(
                    &other,
                    format!(
                        "unexpected {} after key {}, expected \"=\", \"==\", \"!=\", \"in\", \"notin\", \",\" or end of input",
                        other.describe(),
                        quote(&key)
                    ),
                ))
            }
        }
        Ok(())
    }

    /// `( v1, v2 )`: at least one value, no empty ones.
    fn set(&mut self) -> Result<Vec<String>, SelectorParseError> {
        match self.next()? {
            Token::Open => {}
            other => {
                return Err(self.error(
                    &other,
                    format!("expected \"(\" after in/notin, found {}", other.describe()),
                ))
            }
        }
        let mut values = Vec::new();
        loop {
            if !matches!(self.peek()?, Token::Ident(_)) {
                let token = self.peek()?.clone();
                return Err(self.error(
                    &token,
                    format!("expected a value in the set, found {}", token.describe()),
                ));
            }
            values.push(self.value()?);
            match self.next()? {
                Token::Comma => {}
                Token::Close => return Ok(values),
                other => {
                    return Err(self.error(
                        &other,
                        format!(
                            "unexpected {} in value set, expected \",\" or \")\"",
                            other.describe()
                        ),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_form() {
        let sel =
            LabelSelector::parse("app=web,tier!=db,env in (a, b),env notin (c),foo,!bar,x==y")
                .expect("parses");
        assert_eq!(sel.match_labels, labels(&[("app", "web"), ("x", "y")]));
        assert_eq!(
            sel.match_expressions,
            vec![
                LabelSelectorRequirement::new("tier", Operator::NotIn, &["db"]),
                LabelSelectorRequirement::new("env", Operator::In, &["a", "b"]),
                LabelSelectorRequirement::new("env", Operator::NotIn, &["c"]),
                LabelSelectorRequirement::new("foo", Operator::Exists, &[]),
                LabelSelectorRequirement::new("bar", Operator::DoesNotExist, &[]),
            ]
        );
        let ok = labels(&[("app", "web"), ("env", "a"), ("foo", ""), ("x", "y")]);
        assert!(sel.matches(&ok));
        let mut bad = ok.clone();
        bad.insert("bar".into(), "1".into());
        assert!(!sel.matches(&bad));
    }

    #[test]
    fn parses_edge_cases() {
        assert_eq!(LabelSelector::parse(""), Ok(LabelSelector::default()));
        assert_eq!(LabelSelector::parse("   "), Ok(LabelSelector::default()));
        let sel = LabelSelector::parse("app=").expect("empty value");
        assert_eq!(sel.match_labels, labels(&[("app", "")]));
        let sel = LabelSelector::parse("app.kubernetes.io/name = web").expect("prefixed key");
        assert_eq!(
            sel.match_labels,
            labels(&[("app.kubernetes.io/name", "web")])
        );
        // A repeated key is an AND of both, which no pod satisfies.
        let sel = LabelSelector::parse("a=1,a=2").expect("parses");
        assert!(!sel.matches(&labels(&[("a", "1")])));
        assert!(!sel.matches(&labels(&[("a", "2")])));
    }

    fn parse_err(input: &str) -> SelectorParseError {
        match LabelSelector::parse(input) {
            Ok(sel) => panic!("{input:?} parsed as {sel:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parse_errors_name_the_bad_token() {
        let e = parse_err("app=we b");
        assert_eq!(e.token, "b");
        assert_eq!(
            e.to_string(),
            "invalid label selector \"app=we b\": unexpected \"b\", expected \",\" or end of input"
        );
        let e = parse_err("env in a,b");
        assert_eq!(e.token, "a");
        assert!(
            e.message.starts_with("expected \"(\" after in/notin"),
            "{e}"
        );
        let e = parse_err("env in (a b)");
        assert_eq!(e.token, "b");
        let e = parse_err("env notin ()");
        assert_eq!(e.token, ")");
        let e = parse_err("env in (a,");
        assert_eq!(
            (e.token.as_str(), e.message.as_str()),
            ("", "expected a value in the set, found end of input")
        );
        let e = parse_err("app=web,");
        assert_eq!(e.message, "expected a label key, found end of input");
        let e = parse_err("Bad Key=1");
        assert_eq!(e.token, "Key");
        assert_eq!(e.message, "unexpected \"Key\" after key \"Bad\", expected \"=\", \"==\", \"!=\", \"in\", \"notin\", \",\" or end of input");
        let e = parse_err("_bad=1");
        assert_eq!(e.token, "_bad");
        assert!(e.message.contains("is not a valid key"), "{e}");
        let e = parse_err("app=bad/value");
        assert_eq!(e.token, "bad/value");
        assert!(e.message.contains("is not a valid label value"), "{e}");
        let e = parse_err("replicas>3");
        assert_eq!(e.token, ">");
        let e = parse_err("!=x");
        assert_eq!(e.token, "!=");
        let e = parse_err("!app=web");
        assert_eq!(e.token, "=");
        let e = parse_err("é=1");
        assert_eq!(e.token, "é");
        let e = parse_err("a=ü,b");
        assert_eq!(e.token, "ü");
    }

    #[test]
    fn display_round_trips_through_parse() {
        let text = "app=web,x=y,tier!=db,env in (a,b),env notin (c,d),foo,!bar";
        let sel = LabelSelector::parse(text).expect("parses");
        assert_eq!(sel.to_string(), text);
        assert_eq!(LabelSelector::parse(&sel.to_string()), Ok(sel));
    }
}
