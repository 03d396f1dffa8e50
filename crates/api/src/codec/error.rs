use std::fmt;

/// Why a manifest or request body did not decode, and where: the file, the document in it
/// (1-based, like line and column), the line and column, and the field path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeError {
    pub source: Option<String>,
    pub document: Option<usize>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub path: Option<String>,
    pub message: String,
}

impl DecodeError {
    pub fn new(message: impl Into<String>) -> Self {
        DecodeError {
            message: message.into(),
            ..Default::default()
        }
    }

    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        DecodeError {
            path: Some(path.into()),
            message: message.into(),
            ..Default::default()
        }
    }
}

/// `file.yaml:12:3: spec.ports[0]: message`, leaving out what is unknown. Without a line,
/// the document number stands in for it (`file.yaml (document 2): ...`); without a source,
/// the position is spelled out (`line 12, column 3: ...`).
impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prefix = self.source.clone().unwrap_or_default();
        match (self.line, self.column, self.document) {
            (Some(line), Some(column), _) if !prefix.is_empty() => {
                prefix.push_str(&format!(":{line}:{column}"))
            }
            (Some(line), None, _) if !prefix.is_empty() => prefix.push_str(&format!(":{line}")),
            (Some(line), Some(column), _) => prefix = format!("line {line}, column {column}"),
            (Some(line), None, _) => prefix = format!("line {line}"),
            (None, _, Some(doc)) if !prefix.is_empty() => {
                prefix.push_str(&format!(" (document {doc})"))
            }
            (None, _, Some(doc)) => prefix = format!("document {doc}"),
            _ => {}
        }
        if !prefix.is_empty() {
            write!(f, "{prefix}: ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leaves_out_unknown_parts() {
        let mut e = DecodeError::at("spec.ports[0]", "bad");
        assert_eq!(e.to_string(), "spec.ports[0]: bad");
        e.source = Some("file.yaml".into());
        e.document = Some(2);
        assert_eq!(e.to_string(), "file.yaml (document 2): spec.ports[0]: bad");
        e.line = Some(12);
        e.column = Some(3);
        assert_eq!(e.to_string(), "file.yaml:12:3: spec.ports[0]: bad");
        e.path = None;
        assert_eq!(e.to_string(), "file.yaml:12:3: bad");
        assert_eq!(DecodeError::new("oops").to_string(), "oops");
        e.source = None;
        assert_eq!(e.to_string(), "line 12, column 3: bad");
        e.line = None;
        assert_eq!(e.to_string(), "document 2: bad");
    }
}
