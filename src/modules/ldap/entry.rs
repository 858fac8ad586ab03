//! Directory entries → identities: attribute lookup, subjects, group lists. The
//! directory synchroniser (`crate::sync`) maps its entries with the same helpers.

use std::collections::BTreeMap;

use ldap3::SearchEntry;
use tracing::{error, warn};

use super::{GroupNames, Groups, Inner, LdapError, template};
use crate::audit::AUDIT_TARGET;
use crate::identity::keep_first_of_each;
use crate::{AuthError, Identity};

/// Attribute names of user entries (see [`LdapModule::user_attributes`](super::LdapModule::user_attributes)).
#[cfg(feature = "sync")]
pub(crate) struct UserAttributes<'m> {
    pub(crate) subject: &'m str,
    pub(crate) login: &'m str,
    pub(crate) email: &'m str,
    pub(crate) display_name: &'m str,
}

impl Inner {
    /// The groups a group search found. A missing `group_search_base` is an outage
    /// (logged as a configuration error), not "no groups": a user must not silently
    /// lose roles to a typo.
    pub(super) fn group_list(
        &self,
        (found, rc): (Vec<SearchEntry>, u32),
        base: &str,
        name_attribute: &str,
    ) -> Result<Vec<String>, AuthError> {
        if rc == 32 {
            error!(target: AUDIT_TARGET, module = %self.id, base = %base, "group_search_base does not exist");
            return Err(self.unavailable(LdapError::NoSuchBase {
                setting: "group_search_base",
                base: base.to_owned(),
            }));
        }
        if rc == 4 {
            warn!(module = %self.id, "group search hit a size limit: the group list is incomplete");
        }
        let mut groups = Vec::with_capacity(found.len());
        for entry in found {
            let name = match self.group_names {
                GroupNames::Dn => Some(entry.dn.clone()),
                GroupNames::Name => first_value(&entry, name_attribute)
                    .map(str::to_owned)
                    .or_else(|| template::first_rdn_value(&entry.dn).map(|v| v.into_owned())),
            };
            groups.extend(name);
        }
        // De-duplicated with the memberOf groups, in `identity`.
        Ok(groups)
    }

    pub(super) fn identity(
        &self,
        entry: SearchEntry,
        typed_login: &str,
        mut groups: Vec<String>,
    ) -> Identity {
        let subject = subject(&entry, &self.subject_attribute).unwrap_or_else(|| entry.dn.clone());
        let login = values(&entry, &self.login_attribute)
            .and_then(|vals| {
                vals.iter()
                    .find(|v| v.eq_ignore_ascii_case(typed_login))
                    .or_else(|| vals.first())
            })
            .cloned()
            .unwrap_or_else(|| typed_login.to_owned());
        if let Groups::MemberOf { attribute } = &self.groups {
            for dn in values(&entry, attribute).into_iter().flatten() {
                let name = match self.group_names {
                    GroupNames::Dn => dn.clone(),
                    GroupNames::Name => {
                        template::first_rdn_value(dn).map_or_else(|| dn.clone(), |v| v.into_owned())
                    }
                };
                groups.push(name);
            }
        }
        keep_first_of_each(&mut groups);
        let mut identity = Identity::new(self.id.clone(), subject, login);
        identity.email = first_value(&entry, &self.email_attribute).map(str::to_owned);
        identity.display_name = first_value(&entry, &self.display_name_attribute).map(str::to_owned);
        identity.groups = groups.into();
        let mut attributes = BTreeMap::new();
        attributes.insert("dn".to_owned(), vec![entry.dn.clone()]);
        for name in &self.extra_attributes {
            if let Some(vals) = values(&entry, name) {
                attributes.insert(name.clone(), vals.clone());
            } else if let Some(bin) = bin_values(&entry, name) {
                attributes.insert(name.clone(), bin.iter().map(|v| template::hex(v)).collect());
            }
        }
        identity.attributes = attributes;
        identity
    }
}

/// Attribute names without repeats (compared ignoring ASCII case), first kept.
pub(crate) fn dedup_attribute_names(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(n.to_ascii_lowercase()))
        .collect()
}

/// The values of attribute `name` (case-insensitive; options such as `;lang-en` ignored).
pub(crate) fn values<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e Vec<String>> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn bin_values<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e Vec<Vec<u8>>> {
    entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

pub(crate) fn first_value<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e str> {
    values(entry, name).and_then(|v| v.first()).map(String::as_str)
}

/// The subject: text values as they are; `objectGUID` (binary, sometimes valid UTF-8
/// by chance) in its GUID text form; other binary values in hex.
pub(crate) fn subject(entry: &SearchEntry, name: &str) -> Option<String> {
    let guid = name.eq_ignore_ascii_case("objectGUID");
    if let Some(value) = first_value(entry, name) {
        if guid && let Some(text) = template::format_guid(value.as_bytes()) {
            return Some(text);
        }
        return Some(value.to_owned());
    }
    let bytes = bin_values(entry, name)?.first()?;
    if guid {
        template::format_guid(bytes)
    } else {
        Some(template::hex(bytes))
    }
}
