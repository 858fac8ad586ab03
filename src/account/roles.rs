//! External groups → local roles, per provider.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::ConfigError;
use crate::dn::first_rdn_value;

/// One rule: members of `group` get `role`. A rule marked `default_for_unmapped`
/// grants its role to users whom no rule matched (its `group` may be left out).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    /// The external group: a name (`admins`) or a DN (`cn=admins,ou=groups,...`).
    #[serde(default)]
    pub group: Option<String>,
    /// The local role granted.
    pub role: String,
    /// Grant `role` to users whom no other rule matched.
    #[serde(default)]
    pub default_for_unmapped: bool,
}

/// A provider's role mapping: the union of every matching rule's role,
/// de-duplicated; the default role when nothing matched.
///
/// Lookups are hash lookups: mapping cost grows with the user's groups, not with
/// the number of rules.
#[derive(Debug, Clone, Default)]
pub struct RoleMapping {
    /// Role names, sorted, so that results come out in order; shared with the
    /// principals that hold them.
    roles: Vec<Arc<str>>,
    by_group: HashMap<String, Vec<usize>, FxBuildHasher>,
    defaults: Vec<usize>,
    case_insensitive: bool,
    match_dn: bool,
    /// Whether some rule is written as a DN (then whole DNs are looked up too).
    has_dn_rules: bool,
}

/// Builds a [`RoleMapping`].
#[derive(Debug, Clone, Default)]
pub struct RoleMappingBuilder {
    rules: Vec<RoleRule>,
    case_insensitive: bool,
    match_dn: bool,
}

impl RoleMappingBuilder {
    /// Members of `group` get `role`.
    pub fn rule(mut self, group: impl Into<String>, role: impl Into<String>) -> Self {
        self.rules.push(RoleRule {
            group: Some(group.into()),
            role: role.into(),
            default_for_unmapped: false,
        });
        self
    }

    /// Users whom no rule matched get `role`.
    pub fn default_for_unmapped(mut self, role: impl Into<String>) -> Self {
        self.rules.push(RoleRule {
            group: None,
            role: role.into(),
            default_for_unmapped: true,
        });
        self
    }

    /// Adds rules as written in configuration.
    pub fn rules(mut self, rules: impl IntoIterator<Item = RoleRule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Compare group names case-insensitively.
    pub fn case_insensitive(mut self, yes: bool) -> Self {
        self.case_insensitive = yes;
        self
    }

    /// Let a group DN (`cn=admins,ou=groups,dc=example,dc=org`) also match a rule
    /// written with the value of its first RDN (`admins`).
    pub fn match_dn(mut self, yes: bool) -> Self {
        self.match_dn = yes;
        self
    }

    /// Checks the rules and builds the mapping.
    pub fn build(self) -> Result<RoleMapping, ConfigError> {
        for (i, rule) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("role_mapping.rules[{i}].{field}");
            if rule.role.trim().is_empty() {
                return Err(ConfigError::invalid(key("role"), "role must not be empty"));
            }
            match &rule.group {
                Some(group) if group.trim().is_empty() => {
                    return Err(ConfigError::invalid(key("group"), "group must not be empty"));
                }
                None if !rule.default_for_unmapped => {
                    return Err(ConfigError::invalid(
                        key("group"),
                        "a rule needs a group unless it is marked default_for_unmapped",
                    ));
                }
                _ => {}
            }
        }
        let roles: Vec<Arc<str>> = self
            .rules
            .iter()
            .map(|r| r.role.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(Arc::from)
            .collect();
        let index = |role: &str| roles.binary_search_by(|r| (**r).cmp(role)).unwrap_or_default();
        let mut mapping = RoleMapping {
            case_insensitive: self.case_insensitive,
            match_dn: self.match_dn,
            ..RoleMapping::default()
        };
        let mut folded = String::new();
        for rule in &self.rules {
            let role = index(&rule.role);
            if rule.default_for_unmapped && !mapping.defaults.contains(&role) {
                mapping.defaults.push(role);
            }
            if let Some(group) = &rule.group {
                mapping.has_dn_rules |= group.contains('=');
                let key = mapping.fold(group, &mut folded).to_owned();
                let granted = mapping.by_group.entry(key).or_default();
                if !granted.contains(&role) {
                    granted.push(role);
                }
            }
        }
        mapping.roles = roles;
        Ok(mapping)
    }
}

impl RoleMapping {
    /// Starts a mapping.
    pub fn builder() -> RoleMappingBuilder {
        RoleMappingBuilder::default()
    }

    /// Whether the mapping has no rules (then logins leave mapped roles alone).
    /// Whether group names are compared case-insensitively, and DNs by their first
    /// RDN (access rules match groups the same way).
    pub(crate) fn matching(&self) -> (bool, bool) {
        (self.case_insensitive, self.match_dn)
    }

    /// Whether the mapping has no rule.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    /// Every role this mapping can grant: the roles it manages.
    pub fn managed_roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|role| &**role)
    }

    /// The roles for a user in `groups`.
    pub fn map<S: AsRef<str>>(&self, groups: impl IntoIterator<Item = S>) -> BTreeSet<String> {
        self.names(&self.granted(groups)).map(str::to_owned).collect()
    }

    /// The role names of `granted`, in order.
    pub(crate) fn names<'a>(&'a self, granted: &'a Granted) -> impl Iterator<Item = &'a str> + Clone + 'a {
        self.shared_names(granted).map(|role| &**role)
    }

    /// The role names of `granted`, in order, as the mapping's shared names.
    pub(crate) fn shared_names<'a>(
        &'a self,
        granted: &'a Granted,
    ) -> impl Iterator<Item = &'a Arc<str>> + Clone + 'a {
        self.roles
            .iter()
            .enumerate()
            .filter(|(i, _)| granted.contains(*i))
            .map(|(_, role)| role)
    }

    /// The roles for a user in `groups`, as a set of indices into the mapping's
    /// role names (no role name copied: the chain copies only what it keeps).
    pub(crate) fn granted<S: AsRef<str>>(&self, groups: impl IntoIterator<Item = S>) -> Granted {
        let mut granted = Granted::new(self.roles.len());
        let mut any = false;
        let mut folded = String::new();
        for group in groups {
            let group = group.as_ref();
            let short_name = if self.match_dn {
                first_rdn_value(group)
            } else {
                None
            };
            if short_name.is_none() || self.has_dn_rules {
                any |= self.grant(group, &mut folded, &mut granted);
            }
            if let Some(name) = short_name {
                any |= self.grant(&name, &mut folded, &mut granted);
            }
        }
        if !any {
            for &i in &self.defaults {
                granted.insert(i);
            }
        }
        granted
    }

    fn grant(&self, group: &str, folded: &mut String, granted: &mut Granted) -> bool {
        match self.by_group.get(self.fold(group, folded)) {
            Some(roles) => {
                for &i in roles {
                    granted.insert(i);
                }
                true
            }
            None => false,
        }
    }

    /// The comparison form of a group name, lower-cased into `buffer` (reused
    /// across a user's groups) when names are case-insensitive.
    fn fold<'a>(&self, text: &'a str, buffer: &'a mut String) -> &'a str {
        // One pass for the usual case: ASCII already in lower case.
        if !self.case_insensitive || is_lower_case_ascii(text) {
            return text;
        }
        let upper = if text.is_ascii() {
            text.bytes().any(|b| b.is_ascii_uppercase())
        } else {
            text.chars().any(char::is_uppercase)
        };
        if !upper {
            return text;
        }
        buffer.clear();
        if text.is_ascii() {
            buffer.push_str(text);
            buffer.make_ascii_lowercase();
        } else {
            buffer.extend(text.chars().flat_map(char::to_lowercase));
        }
        buffer
    }
}

/// Whether `text` is ASCII without an upper-case letter: eight bytes at a time,
/// as every group of every login is checked.
fn is_lower_case_ascii(text: &str) -> bool {
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Added to an ASCII byte, these set its high bit when it is at least `A`, and
    // when it is past `Z` (no carry leaves a byte below 0x80).
    const FROM_A: u64 = u64::from_ne_bytes([0x80 - b'A'; 8]);
    const PAST_Z: u64 = u64::from_ne_bytes([0x80 - b'Z' - 1; 8]);
    let (words, tail) = text.as_bytes().as_chunks::<8>();
    let words_pass = words.iter().all(|word| {
        let word = u64::from_ne_bytes(*word);
        word & HIGH == 0 && (word + FROM_A) & !(word + PAST_Z) & HIGH == 0
    });
    words_pass && tail.iter().all(|b| b.is_ascii() && !b.is_ascii_uppercase())
}

/// A set of role indices of one [`RoleMapping`]: inline bits for up to 128 roles
/// (no allocation), words on the heap beyond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Granted {
    Inline(u128),
    Words(Vec<u64>),
}

impl Granted {
    fn new(roles: usize) -> Self {
        if roles <= 128 {
            Granted::Inline(0)
        } else {
            Granted::Words(vec![0; roles.div_ceil(64)])
        }
    }

    fn insert(&mut self, i: usize) {
        match self {
            Granted::Inline(bits) => *bits |= 1 << i,
            Granted::Words(words) => words[i / 64] |= 1 << (i % 64),
        }
    }

    fn contains(&self, i: usize) -> bool {
        match self {
            Granted::Inline(bits) => i < 128 && bits & (1 << i) != 0,
            Granted::Words(words) => words.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_lower_case_ascii;

    #[test]
    fn lower_case_ascii_check_agrees_with_the_byte_by_byte_one() {
        let scalar = |text: &str| text.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase());
        // Every ASCII byte, and a non-ASCII letter, at every position of texts
        // shorter than, as long as and longer than a word.
        let mut probes: Vec<String> = (0u8..128).map(|b| char::from(b).to_string()).collect();
        probes.push("é".into());
        for length in [1, 7, 8, 9, 16, 17] {
            for at in 0..length {
                for probe in &probes {
                    let mut text = "a".repeat(at);
                    text.push_str(probe);
                    text.push_str(&"z".repeat(length - at - 1));
                    assert_eq!(is_lower_case_ascii(&text), scalar(&text), "{text:?}");
                }
            }
        }
        assert!(is_lower_case_ascii(""));
    }
}
