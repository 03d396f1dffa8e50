//! Path matching on segment boundaries and the DNS object's prefix stripping.
//!
//! Paths are compared as sent (not percent-decoded) and case-sensitively, as Kubernetes
//! defines Ingress paths.

/// The key a prefix is stored under: trailing slashes removed, so `/wear/` and `/wear` are
/// one prefix and `/` is the empty key that matches every path.
pub fn prefix_key(prefix: &str) -> &str {
    prefix.trim_end_matches('/')
}

/// The keys a request path can match as a prefix, longest first: the path itself (when it
/// does not end in `/`), then the path cut before each `/`, ending with `""` (the root).
/// `/a/b` gives `/a/b`, `/a`, `""`; `/a/b/` gives `/a/b`, `/a`, `""`.
pub fn prefix_candidates(path: &str) -> impl Iterator<Item = &str> {
    let whole = (!path.ends_with('/')).then_some(path);
    whole
        .into_iter()
        .chain(path.rmatch_indices('/').map(move |(i, _)| &path[..i]))
}

/// True when `key` (a [`prefix_key`]) matches `path` on a segment boundary:
/// `/wear` matches `/wear`, `/wear/` and `/wear/x`, never `/wearable`.
pub fn prefix_matches(key: &str, path: &str) -> bool {
    match path.strip_prefix(key) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path (and query) a DNS-object route forwards: the matched prefix removed, the rest
/// kept with its leading `/`, and `/` when nothing is left. `/wear/a?q=1` under `/wear`
/// → `/a?q=1`; `/wear` → `/`; `/wear?q=1` → `/?q=1`. Never introduces a double slash.
pub fn strip_prefix(key: &str, path: &str, query: Option<&str>) -> String {
    let rest = path.strip_prefix(key).unwrap_or(path);
    let rest = if rest.is_empty() { "/" } else { rest };
    match query {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_segment_prefixes_longest_first() {
        let c: Vec<&str> = prefix_candidates("/a/b").collect();
        assert_eq!(c, ["/a/b", "/a", ""]);
        let c: Vec<&str> = prefix_candidates("/a/b/").collect();
        assert_eq!(c, ["/a/b", "/a", ""]);
        let c: Vec<&str> = prefix_candidates("/").collect();
        assert_eq!(c, [""]);
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        assert!(prefix_matches("/wear", "/wear"));
        assert!(prefix_matches("/wear", "/wear/"));
        assert!(prefix_matches("/wear", "/wear/x"));
        assert!(!prefix_matches("/wear", "/wearable"));
        assert!(prefix_matches("", "/anything"));
        assert_eq!(prefix_key("/wear/"), "/wear");
        assert_eq!(prefix_key("/"), "");
    }

    #[test]
    fn stripping_keeps_one_leading_slash_and_the_query() {
        assert_eq!(strip_prefix("/wear", "/wear/a", Some("q=1")), "/a?q=1");
        assert_eq!(strip_prefix("/wear", "/wear", None), "/");
        assert_eq!(strip_prefix("/wear", "/wear/", None), "/");
        assert_eq!(strip_prefix("/wear", "/wear", Some("q=1")), "/?q=1");
        assert_eq!(strip_prefix("/a/b", "/a/b/c/d", None), "/c/d");
        assert_eq!(strip_prefix("", "/x/y", None), "/x/y");
    }
}
