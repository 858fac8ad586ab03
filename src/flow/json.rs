//! Reading claims out of provider JSON by dotted path (`realm_access.roles`).

use serde_json::{Map, Value};

use crate::identity::keep_first_of_each;

/// Most groups taken from one claim.
pub(crate) const MAX_GROUPS: usize = 4096;
/// Longest accepted claim value used as a login, email, name or group.
pub(crate) const MAX_CLAIM_BYTES: usize = 1024;

/// The value at a dotted path. An exact key wins over a nested path, so claims
/// named with dots (`https://example.org/groups`) still work.
pub(crate) fn lookup<'v>(claims: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A scalar claim as text: strings as they are, numbers and booleans printed;
/// empty, over-long or control-character values are ignored.
pub(crate) fn text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    let ok = !text.is_empty() && text.len() <= MAX_CLAIM_BYTES && !text.chars().any(char::is_control);
    ok.then_some(text)
}

/// The text at a path.
pub(crate) fn text_at(claims: &Map<String, Value>, path: &str) -> Option<String> {
    lookup(claims, path).and_then(text)
}

/// Groups at a path: an array of scalars, or one string (split on commas when `split`).
/// Objects with a `name` key (GitLab / Gitea teams) contribute that name.
pub(crate) fn groups_at(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    let mut push = |value: &Value| {
        let value = match value {
            Value::Object(map) => map
                .get("name")
                .or_else(|| map.get("slug"))
                .unwrap_or(&Value::Null),
            other => other,
        };
        groups.extend(text(value));
    };
    match lookup(claims, path) {
        Some(Value::Array(items)) => items.iter().for_each(&mut push),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .for_each(|g| push(&Value::String(g.to_owned()))),
        Some(other) => push(other),
        None => {}
    }
    keep_first_of_each(&mut groups);
    groups.truncate(MAX_GROUPS);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths() {
        let v: Value = serde_json::json!({
            "realm_access": {"roles": ["a", "b", "a"]},
            "https://x.test/groups": ["c"],
            "sub": 42,
            "teams": [{"name": "t1"}, {"slug": "t2"}],
        });
        let m = v.as_object().unwrap();
        assert_eq!(groups_at(m, "realm_access.roles"), ["a", "b"]);
        assert_eq!(groups_at(m, "https://x.test/groups"), ["c"]);
        assert_eq!(groups_at(m, "teams"), ["t1", "t2"]);
        assert_eq!(text_at(m, "sub").as_deref(), Some("42"));
        assert_eq!(text_at(m, "missing.path"), None);
    }

    #[test]
    fn many_groups_keep_the_first_of_each_up_to_the_cap() {
        let distinct: Vec<String> = (0..MAX_GROUPS + 10).map(|i| format!("g{i}")).collect();
        // Each group twice, the second copy right after the first.
        let doubled: Vec<&String> = distinct.iter().flat_map(|g| [g, g]).collect();
        let v = serde_json::json!({ "groups": doubled });
        assert_eq!(
            groups_at(v.as_object().unwrap(), "groups"),
            distinct[..MAX_GROUPS]
        );
    }
}
