//! Directory entries → [`DirectoryUser`] / [`DirectoryGroup`].

use std::collections::BTreeSet;

use ldap3::SearchEntry;
use serde::Deserialize;

use crate::modules::ldap::entry::{dedup_attribute_names, first_value, subject, values};
use crate::modules::ldap::template::first_rdn_value;
use crate::sync::{DirectoryChange, DirectoryGroup, DirectoryUser};

/// Longest login name accepted from the directory, in bytes.
pub(crate) const MAX_LOGIN_BYTES: usize = 256;

/// When a directory entry counts as disabled.
///
/// ```toml
/// disabled = { attribute = "nsAccountLock", values = ["true"] }        # FreeIPA, 389-ds
/// disabled = { attribute = "userAccountControl", bitmask = 2 }          # Active Directory
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DisabledRule {
    /// The attribute to read.
    pub attribute: String,
    /// Disabled when any value equals one of these (ignoring ASCII case).
    #[serde(default)]
    pub values: Vec<String>,
    /// Disabled when the (integer) value has any of these bits set.
    pub bitmask: Option<u64>,
}

impl DisabledRule {
    /// Disabled when `attribute` holds one of `values` (ignoring ASCII case).
    pub fn values<I, S>(attribute: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        DisabledRule {
            attribute: attribute.into(),
            values: values.into_iter().map(Into::into).collect(),
            bitmask: None,
        }
    }

    /// Disabled when the integer in `attribute` has a bit of `mask` set.
    pub fn bitmask(attribute: impl Into<String>, mask: u64) -> Self {
        DisabledRule {
            attribute: attribute.into(),
            values: Vec::new(),
            bitmask: Some(mask),
        }
    }

    /// `nsAccountLock: TRUE` (FreeIPA, 389-ds, and OpenLDAP with that schema).
    pub fn ns_account_lock() -> Self {
        DisabledRule::values("nsAccountLock", ["true"])
    }

    /// Active Directory's `userAccountControl` bit 2 (ACCOUNTDISABLE).
    pub fn active_directory() -> Self {
        DisabledRule::bitmask("userAccountControl", 2)
    }

    /// `Err` names what is wrong.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.attribute.trim().is_empty() {
            return Err("the attribute must not be empty".into());
        }
        match (self.values.is_empty(), self.bitmask) {
            (true, None) => Err("give `values` or `bitmask`".into()),
            (false, Some(_)) => Err("give `values` or `bitmask`, not both".into()),
            (_, Some(0)) => Err("a bitmask of 0 never matches".into()),
            _ => Ok(()),
        }
    }

    fn disables(&self, entry: &SearchEntry) -> bool {
        let Some(found) = values(entry, &self.attribute) else {
            return false;
        };
        match self.bitmask {
            // A value that is not a number is not a flag we understand: treated as
            // set, so a garbled entry cannot enable an account.
            Some(mask) => found.iter().any(|v| {
                let v = v.trim();
                let parsed = v
                    .parse::<u64>()
                    .ok()
                    .or_else(|| v.parse::<i64>().ok().map(|n| n as u64));
                parsed.is_none_or(|n| n & mask != 0)
            }),
            None => found
                .iter()
                .any(|v| self.values.iter().any(|d| d.eq_ignore_ascii_case(v.trim()))),
        }
    }
}

/// Which attributes make a user.
#[derive(Debug, Clone)]
pub(crate) struct UserMapping {
    pub(crate) stable_id: String,
    pub(crate) login: String,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) disabled: Option<DisabledRule>,
}

impl UserMapping {
    /// The attributes to request.
    pub(crate) fn attributes(&self) -> Vec<String> {
        let mut names = vec![
            self.stable_id.clone(),
            self.login.clone(),
            self.email.clone(),
            self.display_name.clone(),
        ];
        names.extend(self.disabled.as_ref().map(|d| d.attribute.clone()));
        dedup_attribute_names(names)
    }

    pub(crate) fn change(&self, sync_id: String, entry: &SearchEntry) -> DirectoryChange {
        let skip = |reason: String| DirectoryChange::Skipped {
            sync_id: Some(sync_id.clone()),
            dn: Some(entry.dn.clone()),
            reason,
        };
        let Some(stable_id) = subject(entry, &self.stable_id) else {
            return skip(format!("no `{}` attribute", self.stable_id));
        };
        let Some(login) = first_value(entry, &self.login) else {
            return skip(format!("no `{}` (login) attribute", self.login));
        };
        if let Err(why) = check_login(login) {
            return skip(why);
        }
        let mut user = DirectoryUser::new(sync_id.clone(), stable_id, entry.dn.clone(), login);
        user.email = first_value(entry, &self.email).map(str::to_owned);
        user.display_name = first_value(entry, &self.display_name).map(str::to_owned);
        user.enabled = !self.disabled.as_ref().is_some_and(|rule| rule.disables(entry));
        DirectoryChange::UserUpserted(user)
    }
}

fn check_login(login: &str) -> Result<(), String> {
    if login.trim().is_empty() {
        return Err("the login name is empty".into());
    }
    if login.len() > MAX_LOGIN_BYTES {
        return Err(format!("the login name is longer than {MAX_LOGIN_BYTES} bytes"));
    }
    if login.chars().any(char::is_control) {
        return Err("the login name contains control characters".into());
    }
    Ok(())
}

/// Which attributes make a group, and which groups are mirrored.
#[derive(Debug, Clone)]
pub(crate) struct GroupMapping {
    pub(crate) name: String,
    pub(crate) member: String,
    /// Only these group names (lower-cased); `None`: every group the filter finds.
    pub(crate) only: Option<BTreeSet<String>>,
}

impl GroupMapping {
    pub(crate) fn attributes(&self) -> Vec<String> {
        dedup_attribute_names(vec![self.name.clone(), self.member.clone()])
    }

    pub(crate) fn change(&self, sync_id: String, entry: &SearchEntry) -> DirectoryChange {
        let name = first_value(entry, &self.name)
            .map(str::to_owned)
            .or_else(|| first_rdn_value(&entry.dn).map(|v| v.into_owned()));
        let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
            return DirectoryChange::Skipped {
                sync_id: Some(sync_id),
                dn: Some(entry.dn.clone()),
                reason: format!("no `{}` (group name) attribute", self.name),
            };
        };
        if let Some(only) = &self.only
            && !only.contains(&name.to_lowercase())
        {
            // Not (or no longer) mirrored: make sure it is gone locally.
            return DirectoryChange::GroupDeleted { sync_id };
        }
        let members = values(entry, &self.member)
            .map(|dns| dns.iter().filter(|dn| !dn.trim().is_empty()).cloned().collect())
            .unwrap_or_default();
        DirectoryChange::GroupUpserted(DirectoryGroup::new(sync_id, entry.dn.clone(), name, members))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn entry(attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: "uid=x,ou=people,dc=example,dc=org".into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            bin_attrs: HashMap::new(),
        }
    }

    fn users(disabled: Option<DisabledRule>) -> UserMapping {
        UserMapping {
            stable_id: "entryUUID".into(),
            login: "uid".into(),
            email: "mail".into(),
            display_name: "cn".into(),
            disabled,
        }
    }

    #[test]
    fn maps_a_user() {
        let e = entry(&[
            ("entryUUID", &["id-1"]),
            ("uid", &["x"]),
            ("mail", &["x@example.org"]),
        ]);
        let DirectoryChange::UserUpserted(user) = users(None).change("s-1".into(), &e) else {
            panic!("expected a user")
        };
        assert_eq!((user.stable_id.as_str(), user.login.as_str()), ("id-1", "x"));
        assert_eq!(user.email.as_deref(), Some("x@example.org"));
        assert!(user.enabled);
    }

    #[test]
    fn skips_users_without_a_usable_login() {
        let long = "a".repeat(MAX_LOGIN_BYTES + 1);
        for attrs in [
            vec![("entryUUID", &["id"][..])],
            vec![("entryUUID", &["id"][..]), ("uid", &[" "][..])],
            vec![("entryUUID", &["id"][..]), ("uid", &["a\u{0}b"][..])],
            vec![("entryUUID", &["id"][..]), ("uid", &[long.as_str()][..])],
            vec![("uid", &["x"][..])],
        ] {
            let change = users(None).change("s".into(), &entry(&attrs));
            assert!(
                matches!(change, DirectoryChange::Skipped { .. }),
                "{attrs:?}: {change:?}"
            );
        }
    }

    #[test]
    fn disabled_rules() {
        let lock = users(Some(DisabledRule::ns_account_lock()));
        let ad = users(Some(DisabledRule::active_directory()));
        let enabled = |m: &UserMapping, attrs: &[(&str, &[&str])]| {
            let mut all = vec![("entryUUID", &["id"][..]), ("uid", &["x"][..])];
            all.extend_from_slice(attrs);
            match m.change("s".into(), &entry(&all)) {
                DirectoryChange::UserUpserted(u) => u.enabled,
                other => panic!("{other:?}"),
            }
        };
        assert!(enabled(&lock, &[]));
        assert!(!enabled(&lock, &[("nsAccountLock", &["TRUE"])]));
        assert!(enabled(&lock, &[("nsAccountLock", &["false"])]));
        assert!(enabled(&ad, &[("userAccountControl", &["512"])]));
        assert!(!enabled(&ad, &[("userAccountControl", &["514"])]));
        assert!(!enabled(&ad, &[("userAccountControl", &["garbage"])]));
        assert!(DisabledRule::bitmask("x", 0).check().is_err());
        assert!(DisabledRule::values("x", Vec::<String>::new()).check().is_err());
        assert!(DisabledRule::ns_account_lock().check().is_ok());
    }

    #[test]
    fn maps_groups_and_filters_unmirrored_ones() {
        let mapping = GroupMapping {
            name: "cn".into(),
            member: "member".into(),
            only: Some(["admins".to_string()].into()),
        };
        let admins = entry(&[("cn", &["Admins"]), ("member", &["uid=a,dc=x", ""])]);
        let DirectoryChange::GroupUpserted(group) = mapping.change("g".into(), &admins) else {
            panic!()
        };
        assert_eq!(group.members, vec!["uid=a,dc=x"]);
        let other = entry(&[("cn", &["other"])]);
        assert_eq!(
            mapping.change("g2".into(), &other),
            DirectoryChange::GroupDeleted { sync_id: "g2".into() }
        );
    }
}
