//! Finds where a configuration key (`modules.corp.role_mapping.rules[2].role`)
//! stands in the TOML text, so errors found after parsing still name a line.

use toml::de::{DeTable, DeValue};

use crate::error::Location;

/// One step of a key path: a table key or an array index.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` → `a`, `b`, `[2]`, `c`. Quoted keys with dots are not split
/// correctly; such keys only lose their location, never their error.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some(close) = rest.find(']') {
            match rest[1..close].parse() {
                Ok(index) => steps.push(Step::Index(index)),
                Err(_) => return steps,
            }
            rest = &rest[close + 1..];
        }
    }
    steps
}

/// Line and column (1-based, in characters) of byte `offset` in `text`.
fn location(text: &str, offset: usize) -> Location {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// Where `path` stands in `text`: the key itself, or for a key that is absent
/// (a missing field) the deepest table on its path that is present. `None` when
/// the text does not parse or the path's first key is absent.
pub(crate) fn locate(text: &str, path: &str) -> Option<Location> {
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut found = None;
    let mut steps = steps(path).into_iter().peekable();
    while let Some(step) = steps.next() {
        let Step::Key(name) = step else { break };
        let Some((key, value)) = table.get_key_value(name) else {
            break;
        };
        found = Some(key.span().start);
        let mut value: &DeValue<'_> = value.get_ref();
        // Array indexes after the key: `rules[2]`.
        while let Some(Step::Index(i)) = steps.peek() {
            let DeValue::Array(items) = value else { break };
            let Some(item) = items.get(*i) else { break };
            found = Some(item.span().start);
            value = item.get_ref();
            steps.next();
        }
        match value {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found.map(|offset| location(text, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "chain = [\"a\"]\n\n[modules.a]\ntype = \"local\"\n\n[[modules.a.role_mapping.rules]]\nrole = \"x\"\n\n[[modules.a.role_mapping.rules]]\n  role = 5\n";

    #[test]
    fn steps_split_keys_and_indexes() {
        assert_eq!(
            steps("modules.a.rules[1].role"),
            vec![
                Step::Key("modules"),
                Step::Key("a"),
                Step::Key("rules"),
                Step::Index(1),
                Step::Key("role")
            ]
        );
    }

    #[test]
    fn finds_keys_inside_arrays_of_tables() {
        let at = locate(TEXT, "modules.a.role_mapping.rules[1].role").unwrap();
        assert_eq!((at.line, at.column), (10, 3));
        assert_eq!(locate(TEXT, "modules.a.type").unwrap().line, 4);
        assert_eq!(locate(TEXT, "chain").unwrap().line, 1);
    }

    #[test]
    fn an_absent_key_points_at_its_table() {
        assert_eq!(locate(TEXT, "modules.a.missing").unwrap().line, 3);
        assert_eq!(locate(TEXT, "nothing"), None);
    }
}
