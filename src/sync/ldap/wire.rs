//! Search entries and RFC 4533 messages, decoded without panicking.
//!
//! ldap3 0.12 ships decoders for these (`SearchEntry::construct`, `parse_syncinfo`,
//! `SyncState::parse`, `SyncDone::parse`) that panic on malformed input; a
//! directory — or anything between it and us — could stop the synchroniser with
//! one bad message. These return an error instead: a bad entry is skipped and
//! reported, a bad protocol message restarts the session.

use std::collections::HashMap;

use ldap3::asn1::{PL, StructureTag, TagClass, Types, parse_tag};
use ldap3::controls::Control;
use ldap3::{ResultEntry, SearchEntry};

pub(crate) const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
pub(crate) const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
pub(crate) const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";

/// A message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed RFC 4533 message: {}", self.0)
    }
}

/// The Sync State control's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryState {
    Present,
    Add,
    Modify,
    Delete,
}

/// The Sync State control of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncState {
    pub(crate) state: EntryState,
    pub(crate) uuid: String,
    pub(crate) cookie: Option<Vec<u8>>,
}

/// The Sync Info intermediate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyncInfo {
    NewCookie(Vec<u8>),
    RefreshDelete {
        cookie: Option<Vec<u8>>,
        done: bool,
    },
    RefreshPresent {
        cookie: Option<Vec<u8>>,
        done: bool,
    },
    IdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<String>,
    },
}

/// The Sync Done control of a refresh-only search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncDone {
    pub(crate) cookie: Option<Vec<u8>>,
    pub(crate) refresh_deletes: bool,
}

/// The value of the control with this OID among `controls`.
pub(crate) fn control_value<'c>(controls: &'c [Control], oid: &str) -> Option<&'c [u8]> {
    controls
        .iter()
        .find(|c| c.1.ctype == oid)
        .map(|c| c.1.val.as_deref().unwrap_or(&[]))
}

/// The deepest nesting of constructed BER elements a sync control value may have
/// (RFC 4533's deepest, a syncIdSet, is 3 levels deep): lber's `parse_tag`
/// recurses once per level, so a value of thousands of nested SEQUENCEs would
/// overflow the stack.
pub(crate) const MAX_BER_DEPTH: usize = 8;

/// The most BER elements one sync control value may hold (a syncIdSet of 100,000
/// UUIDs; slapd sends them in sets of at most a few hundred).
pub(crate) const MAX_BER_ELEMENTS: usize = 100_002;

/// Walks `bytes` as BER without recursing or allocating, checking the nesting
/// depth and element count against [`MAX_BER_DEPTH`] and [`MAX_BER_ELEMENTS`]
/// before lber's recursive parser sees them. Definite lengths only (RFC 4511,
/// section 5.1).
pub(crate) fn check_ber_shape(bytes: &[u8]) -> Result<(), Malformed> {
    // The end offsets of the open constructed elements.
    let mut open: [usize; MAX_BER_DEPTH] = [0; MAX_BER_DEPTH];
    let mut depth = 0;
    let mut elements = 0usize;
    let mut at = 0;
    loop {
        while depth > 0 && at == open[depth - 1] {
            depth -= 1;
        }
        let limit = if depth > 0 { open[depth - 1] } else { bytes.len() };
        if at == limit {
            return Ok(());
        }
        elements += 1;
        if elements > MAX_BER_ELEMENTS {
            return Err(Malformed("too many BER elements"));
        }
        let identifier = bytes[at];
        at += 1;
        if identifier & 0x1f == 0x1f {
            // High tag number: base-128 digits, the last without bit 8.
            let mut digits = 0;
            loop {
                let digit = *bytes
                    .get(at)
                    .filter(|_| at < limit)
                    .ok_or(Malformed("truncated tag"))?;
                at += 1;
                digits += 1;
                if digits > 8 {
                    return Err(Malformed("tag number too large"));
                }
                if digit & 0x80 == 0 {
                    break;
                }
            }
        }
        let first = *bytes
            .get(at)
            .filter(|_| at < limit)
            .ok_or(Malformed("truncated length"))?;
        at += 1;
        let length = match first {
            0x80 => return Err(Malformed("indefinite BER length")),
            n if n < 0x80 => usize::from(n),
            n => {
                let count = usize::from(n & 0x7f);
                if count > 8 || at + count > limit {
                    return Err(Malformed("bad BER length"));
                }
                let mut length: u64 = 0;
                for &b in &bytes[at..at + count] {
                    length = (length << 8) | u64::from(b);
                }
                at += count;
                usize::try_from(length).map_err(|_| Malformed("bad BER length"))?
            }
        };
        let end = at
            .checked_add(length)
            .filter(|end| *end <= limit)
            .ok_or(Malformed("BER element longer than its container"))?;
        if identifier & 0x20 != 0 {
            if depth == MAX_BER_DEPTH {
                return Err(Malformed("BER nested too deeply"));
            }
            open[depth] = end;
            depth += 1;
        } else {
            at = end;
        }
    }
}

fn whole(bytes: &[u8]) -> Result<StructureTag, Malformed> {
    check_ber_shape(bytes)?;
    match parse_tag(bytes) {
        Ok(([], tag)) => Ok(tag),
        Ok(_) => Err(Malformed("trailing bytes")),
        Err(_) => Err(Malformed("not BER")),
    }
}

fn children(tag: StructureTag, what: &'static str) -> Result<Vec<StructureTag>, Malformed> {
    match tag.payload {
        PL::C(items) => Ok(items),
        PL::P(_) => Err(Malformed(what)),
    }
}

fn bytes(tag: StructureTag, what: &'static str) -> Result<Vec<u8>, Malformed> {
    match tag.payload {
        PL::P(bytes) => Ok(bytes),
        PL::C(_) => Err(Malformed(what)),
    }
}

fn is_universal(tag: &StructureTag, kind: Types) -> bool {
    tag.class == TagClass::Universal && tag.id == kind as u64
}

fn boolean(tag: StructureTag) -> Result<bool, Malformed> {
    match bytes(tag, "boolean")?.as_slice() {
        [b] => Ok(*b != 0),
        _ => Err(Malformed("boolean of the wrong length")),
    }
}

/// A syncUUID (exactly 16 octets) in its text form, as entryUUID shows it.
fn uuid(raw: &[u8]) -> Result<String, Malformed> {
    if raw.len() != 16 {
        return Err(Malformed("syncUUID is not 16 octets"));
    }
    let hex = crate::modules::ldap::template::hex(raw);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// `syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID syncUUID, cookie syncCookie OPTIONAL }`
pub(crate) fn sync_state(value: &[u8]) -> Result<SyncState, Malformed> {
    let tag = whole(value)?;
    if !is_universal(&tag, Types::Sequence) {
        return Err(Malformed("syncStateValue is not a SEQUENCE"));
    }
    let mut items = children(tag, "syncStateValue")?.into_iter();
    let state = items.next().ok_or(Malformed("syncStateValue without state"))?;
    if !is_universal(&state, Types::Enumerated) {
        return Err(Malformed("sync state is not ENUMERATED"));
    }
    let state = match bytes(state, "sync state")?.as_slice() {
        [0] => EntryState::Present,
        [1] => EntryState::Add,
        [2] => EntryState::Modify,
        [3] => EntryState::Delete,
        _ => return Err(Malformed("unknown sync state")),
    };
    let id = items
        .next()
        .ok_or(Malformed("syncStateValue without entryUUID"))?;
    if !is_universal(&id, Types::OctetString) {
        return Err(Malformed("entryUUID is not an OCTET STRING"));
    }
    let uuid = uuid(&bytes(id, "entryUUID")?)?;
    let cookie = match items.next() {
        None => None,
        Some(tag) if is_universal(&tag, Types::OctetString) => Some(bytes(tag, "cookie")?),
        Some(_) => return Err(Malformed("cookie is not an OCTET STRING")),
    };
    if items.next().is_some() {
        return Err(Malformed("syncStateValue has extra elements"));
    }
    Ok(SyncState { state, uuid, cookie })
}

/// `syncDoneValue ::= SEQUENCE { cookie syncCookie OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE }`
pub(crate) fn sync_done(value: &[u8]) -> Result<SyncDone, Malformed> {
    let tag = whole(value)?;
    if !is_universal(&tag, Types::Sequence) {
        return Err(Malformed("syncDoneValue is not a SEQUENCE"));
    }
    let (cookie, refresh_deletes) = cookie_and_flag(children(tag, "syncDoneValue")?, false)?;
    Ok(SyncDone {
        cookie,
        refresh_deletes,
    })
}

/// `SEQUENCE { cookie OPTIONAL, flag BOOLEAN DEFAULT default }` (and nothing else).
fn cookie_and_flag(items: Vec<StructureTag>, default: bool) -> Result<(Option<Vec<u8>>, bool), Malformed> {
    let mut items = items.into_iter().peekable();
    let cookie = match items.next_if(|tag| is_universal(tag, Types::OctetString)) {
        Some(tag) => Some(bytes(tag, "cookie")?),
        None => None,
    };
    let flag = match items.next() {
        None => default,
        Some(tag) if is_universal(&tag, Types::Boolean) => boolean(tag)?,
        Some(_) => return Err(Malformed("unexpected element")),
    };
    if items.next().is_some() {
        return Err(Malformed("extra elements"));
    }
    Ok((cookie, flag))
}

/// The Sync Info message carried by an intermediate response, `None` if the
/// intermediate response is something else.
pub(crate) fn sync_info(entry: &ResultEntry) -> Result<Option<SyncInfo>, Malformed> {
    let PL::C(parts) = &entry.0.payload else {
        return Err(Malformed("intermediate response is not constructed"));
    };
    let mut name = None;
    let mut value = None;
    for part in parts {
        match (part.class, part.id, &part.payload) {
            (TagClass::Context, 0, PL::P(oid)) => name = Some(oid.as_slice()),
            (TagClass::Context, 1, PL::P(v)) => value = Some(v.as_slice()),
            _ => return Err(Malformed("unexpected element in an intermediate response")),
        }
    }
    if name != Some(SYNC_INFO_OID.as_bytes()) {
        return Ok(None);
    }
    let tag = whole(value.ok_or(Malformed("syncInfo without a value"))?)?;
    if tag.class != TagClass::Context {
        return Err(Malformed("syncInfoValue is not context-tagged"));
    }
    Ok(Some(match tag.id {
        0 => SyncInfo::NewCookie(bytes(tag, "newcookie")?),
        1 => {
            let (cookie, done) = cookie_and_flag(children(tag, "refreshDelete")?, true)?;
            SyncInfo::RefreshDelete { cookie, done }
        }
        2 => {
            let (cookie, done) = cookie_and_flag(children(tag, "refreshPresent")?, true)?;
            SyncInfo::RefreshPresent { cookie, done }
        }
        3 => {
            let mut items = children(tag, "syncIdSet")?;
            let set = items.pop().ok_or(Malformed("syncIdSet without syncUUIDs"))?;
            if !is_universal(&set, Types::Set) {
                return Err(Malformed("syncUUIDs is not a SET"));
            }
            let uuids = children(set, "syncUUIDs")?
                .into_iter()
                .map(|u| {
                    if !is_universal(&u, Types::OctetString) {
                        return Err(Malformed("syncUUID is not an OCTET STRING"));
                    }
                    uuid(&bytes(u, "syncUUID")?)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (cookie, refresh_deletes) = cookie_and_flag(items, false)?;
            SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                uuids,
            }
        }
        _ => return Err(Malformed("unknown syncInfoValue choice")),
    }))
}

/// A search result entry (`SearchResultEntry ::= [APPLICATION 4] SEQUENCE { objectName,
/// attributes }`) as ldap3's `SearchEntry`; values that are not UTF-8 land in
/// `bin_attrs`, as ldap3 does it.
pub(crate) fn search_entry(entry: &ResultEntry) -> Result<SearchEntry, Malformed> {
    let tag = &entry.0;
    if tag.class != TagClass::Application || tag.id != 4 {
        return Err(Malformed("not a search result entry"));
    }
    let PL::C(parts) = &tag.payload else {
        return Err(Malformed("search result entry is not constructed"));
    };
    let [dn, attributes] = parts.as_slice() else {
        return Err(Malformed("search result entry needs a DN and attributes"));
    };
    let dn = match &dn.payload {
        PL::P(dn) => String::from_utf8(dn.clone()).map_err(|_| Malformed("DN is not UTF-8"))?,
        PL::C(_) => return Err(Malformed("DN is not an OCTET STRING")),
    };
    let PL::C(attributes) = &attributes.payload else {
        return Err(Malformed("attributes are not a SEQUENCE"));
    };
    let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
    let mut bin_attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for attribute in attributes {
        let PL::C(pair) = &attribute.payload else {
            return Err(Malformed("attribute is not a SEQUENCE"));
        };
        let [name, values] = pair.as_slice() else {
            return Err(Malformed("attribute needs a type and values"));
        };
        let (PL::P(name), PL::C(values)) = (&name.payload, &values.payload) else {
            return Err(Malformed("attribute type or values of the wrong shape"));
        };
        let name = String::from_utf8(name.clone()).map_err(|_| Malformed("attribute type is not UTF-8"))?;
        for value in values {
            let PL::P(value) = &value.payload else {
                return Err(Malformed("attribute value is not an OCTET STRING"));
            };
            match String::from_utf8(value.clone()) {
                Ok(text) => attrs.entry(name.clone()).or_default().push(text),
                Err(raw) => bin_attrs.entry(name.clone()).or_default().push(raw.into_bytes()),
            }
        }
    }
    Ok(SearchEntry { dn, attrs, bin_attrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
    ];

    fn seq(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut out = vec![tag, body.len() as u8];
        out.extend(body);
        out
    }

    fn octets(bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![0x04, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    /// `depth` nested SEQUENCEs around an empty one (the reproducer is
    /// 10,000 levels, about 40 KB).
    fn nested(depth: usize) -> Vec<u8> {
        let mut value = vec![0x30, 0x00];
        for _ in 0..depth {
            let len = value.len();
            let mut outer = vec![0x30];
            if len < 0x80 {
                outer.push(len as u8);
            } else if len < 0x100 {
                outer.extend([0x81, len as u8]);
            } else if len < 0x1_0000 {
                outer.extend([0x82, (len >> 8) as u8, len as u8]);
            } else {
                outer.extend([0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
            }
            outer.extend(value);
            value = outer;
        }
        value
    }

    #[test]
    fn deeply_nested_ber_is_refused_on_a_small_stack() {
        let value = nested(10_000);
        assert!(value.len() > 30_000 && value.len() < 60_000);
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let oid = SYNC_INFO_OID.as_bytes();
                (
                    sync_state(&value),
                    sync_done(&value),
                    sync_info(&intermediate(oid, &value)),
                    check_ber_shape(&value),
                )
            })
            .unwrap();
        let (state, done, info, shape) = handle.join().expect("the decoder thread survives");
        let deep = Malformed("BER nested too deeply");
        assert_eq!(state, Err(deep.clone()));
        assert_eq!(done, Err(deep.clone()));
        assert_eq!(info, Err(deep.clone()));
        assert_eq!(shape, Err(deep));
        // At the limit still decodes as BER (and is then refused for its shape).
        assert_eq!(check_ber_shape(&nested(MAX_BER_DEPTH - 1)), Ok(()));
        assert_eq!(
            check_ber_shape(&nested(MAX_BER_DEPTH)),
            Err(Malformed("BER nested too deeply"))
        );
    }

    #[test]
    fn ber_element_count_and_lengths_are_bounded() {
        // MAX_BER_ELEMENTS + 1 empty OCTET STRINGs in one SET.
        let body: Vec<u8> = [0x04u8, 0x00].repeat(MAX_BER_ELEMENTS);
        let mut set = vec![
            0x31,
            0x83,
            (body.len() >> 16) as u8,
            (body.len() >> 8) as u8,
            body.len() as u8,
        ];
        set.extend(&body);
        assert_eq!(check_ber_shape(&set), Err(Malformed("too many BER elements")));
        for bad in [
            &[0x30, 0x80, 0x00, 0x00][..],
            &[0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            &[0x30, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x04, 0x05, 0x00],
            &[
                0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00,
            ],
            &[0x30],
        ] {
            assert!(check_ber_shape(bad).is_err(), "{bad:02x?}");
        }
        assert_eq!(check_ber_shape(&[0x5f, 0x81, 0x01, 0x00]), Ok(()));
    }

    #[test]
    fn decodes_a_sync_state() {
        let value = seq(0x30, &[&[0x0a, 1, 1], &octets(&UUID), &octets(b"rid=001,csn=x")]);
        let state = sync_state(&value).unwrap();
        assert_eq!(state.state, EntryState::Add);
        assert_eq!(state.uuid, "12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(state.cookie.as_deref(), Some(&b"rid=001,csn=x"[..]));
    }

    #[test]
    fn rejects_malformed_sync_states() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x30],
            vec![0x30, 0x05, 0x0a],
            seq(0x30, &[]),
            seq(0x30, &[&[0x0a, 1, 9], &octets(&UUID)]),
            seq(0x30, &[&[0x0a, 1, 1], &octets(&UUID[..15])]),
            seq(0x30, &[&[0x0a, 1, 1]]),
            seq(0x30, &[&[0x02, 1, 1], &octets(&UUID)]),
            seq(0x31, &[&[0x0a, 1, 1], &octets(&UUID)]),
            seq(
                0x30,
                &[&[0x0a, 1, 1], &octets(&UUID), &octets(b"c"), &octets(b"d")],
            ),
            [seq(0x30, &[&[0x0a, 1, 1], &octets(&UUID)]), vec![0]].concat(),
        ];
        for case in cases {
            assert!(sync_state(&case).is_err(), "{case:02x?} should not decode");
        }
    }

    fn prim(class: TagClass, id: u64, bytes: &[u8]) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn cons(class: TagClass, id: u64, items: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(items),
        }
    }

    #[test]
    fn decodes_entries_and_rejects_malformed_ones() {
        let u = TagClass::Universal;
        let attribute = |name: &[u8], values: &[&[u8]]| {
            cons(
                u,
                16,
                vec![
                    prim(u, 4, name),
                    cons(u, 17, values.iter().map(|v| prim(u, 4, v)).collect()),
                ],
            )
        };
        let entry = |parts: Vec<StructureTag>| ResultEntry::new(cons(TagClass::Application, 4, parts));
        let good = entry(vec![
            prim(u, 4, b"uid=a,dc=x"),
            cons(
                u,
                16,
                vec![
                    attribute(b"uid", &[b"a", b"b"]),
                    attribute(b"objectGUID", &[&[0xff, 0xfe]]),
                ],
            ),
        ]);
        let decoded = search_entry(&good).unwrap();
        assert_eq!(decoded.dn, "uid=a,dc=x");
        assert_eq!(decoded.attrs["uid"], vec!["a", "b"]);
        assert_eq!(decoded.bin_attrs["objectGUID"], vec![vec![0xff, 0xfe]]);

        let bad = [
            entry(vec![prim(u, 4, b"uid=a")]),
            entry(vec![prim(u, 4, &[0xff]), cons(u, 16, vec![])]),
            entry(vec![cons(u, 16, vec![]), cons(u, 16, vec![])]),
            entry(vec![prim(u, 4, b"uid=a"), prim(u, 16, b"")]),
            entry(vec![prim(u, 4, b"uid=a"), cons(u, 16, vec![prim(u, 4, b"uid")])]),
            entry(vec![
                prim(u, 4, b"uid=a"),
                cons(u, 16, vec![cons(u, 16, vec![prim(u, 4, b"uid")])]),
            ]),
            ResultEntry::new(prim(TagClass::Application, 4, b"")),
            ResultEntry::new(cons(TagClass::Application, 5, vec![])),
        ];
        for case in &bad {
            assert!(search_entry(case).is_err(), "{case:?} should not decode");
        }
    }

    #[test]
    fn decodes_sync_done() {
        let done = sync_done(&seq(0x30, &[&octets(b"k"), &[0x01, 1, 0xff]])).unwrap();
        assert_eq!(done.cookie.as_deref(), Some(&b"k"[..]));
        assert!(done.refresh_deletes);
        let done = sync_done(&seq(0x30, &[])).unwrap();
        assert_eq!(
            done,
            SyncDone {
                cookie: None,
                refresh_deletes: false
            }
        );
        assert!(sync_done(&seq(0x30, &[&[0x01, 2, 0, 0]])).is_err());
        assert!(sync_done(&seq(0x30, &[&[0x02, 1, 0]])).is_err());
    }

    fn intermediate(oid: &[u8], value: &[u8]) -> ResultEntry {
        let mut parts = vec![StructureTag {
            class: TagClass::Context,
            id: 0,
            payload: PL::P(oid.to_vec()),
        }];
        parts.push(StructureTag {
            class: TagClass::Context,
            id: 1,
            payload: PL::P(value.to_vec()),
        });
        ResultEntry::new(StructureTag {
            class: TagClass::Application,
            id: 25,
            payload: PL::C(parts),
        })
    }

    #[test]
    fn decodes_sync_info_choices() {
        let oid = SYNC_INFO_OID.as_bytes();
        let new_cookie = intermediate(oid, &[0x80, 2, b'a', b'b']);
        assert_eq!(
            sync_info(&new_cookie).unwrap(),
            Some(SyncInfo::NewCookie(b"ab".to_vec()))
        );
        let present = intermediate(oid, &seq(0xa2, &[&octets(b"c")]));
        assert_eq!(
            sync_info(&present).unwrap(),
            Some(SyncInfo::RefreshPresent {
                cookie: Some(b"c".to_vec()),
                done: true
            })
        );
        let delete = intermediate(oid, &seq(0xa1, &[&[0x01, 1, 0]]));
        assert_eq!(
            sync_info(&delete).unwrap(),
            Some(SyncInfo::RefreshDelete {
                cookie: None,
                done: false
            })
        );
        let set = seq(0x31, &[&octets(&UUID)]);
        let ids = intermediate(oid, &seq(0xa3, &[&octets(b"c"), &[0x01, 1, 1], &set]));
        assert_eq!(
            sync_info(&ids).unwrap(),
            Some(SyncInfo::IdSet {
                cookie: Some(b"c".to_vec()),
                refresh_deletes: true,
                uuids: vec!["12345678-9abc-def0-0123-456789abcdef".into()],
            })
        );
        assert_eq!(sync_info(&intermediate(b"1.2.3", b"")).unwrap(), None);
    }

    #[test]
    fn rejects_malformed_sync_info() {
        let oid = SYNC_INFO_OID.as_bytes();
        let cases = [
            intermediate(oid, &[]),
            intermediate(oid, &[0x84, 0]),
            intermediate(oid, &seq(0x30, &[])),
            intermediate(oid, &seq(0xa3, &[&octets(b"c")])),
            intermediate(oid, &seq(0xa3, &[&seq(0x31, &[&octets(&UUID[..3])])])),
            intermediate(oid, &seq(0xa3, &[&seq(0x31, &[&[0x02, 1, 1]])])),
            intermediate(oid, &seq(0xa2, &[&[0x01, 1, 1], &[0x01, 1, 1]])),
            intermediate(oid, &[0xa2, 0x10, 0x04]),
        ];
        for case in &cases {
            assert!(sync_info(case).is_err(), "{case:?} should not decode");
        }
        let no_value = ResultEntry::new(StructureTag {
            class: TagClass::Application,
            id: 25,
            payload: PL::C(vec![StructureTag {
                class: TagClass::Context,
                id: 0,
                payload: PL::P(oid.to_vec()),
            }]),
        });
        assert!(sync_info(&no_value).is_err());
    }
}
