//! Entry points for the fuzz targets in `fuzz/` that reach private decoders.
//!
//! Compiled only under `--cfg fuzzing` (which cargo-fuzz sets) and in this crate's
//! own unit tests, which run every checked-in seed and reproducer of these targets
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`). Not an API: nothing
//! here is stable. Every other fuzz target goes through the public API (see
//! `fuzz/src/targets.rs`).

/// The RFC 4533 and DirSync decoders of the directory synchroniser, on raw bytes.
#[cfg(feature = "sync")]
pub mod sync {
    use ldap3::ResultEntry;
    use ldap3::asn1::parse_tag;

    use crate::sync::ldap::wire;

    /// A Sync State control value (`syncStateValue`). `true` if it decodes.
    pub fn sync_state(data: &[u8]) -> bool {
        wire::sync_state(data).is_ok()
    }

    /// A Sync Done control value (`syncDoneValue`). `true` if it decodes.
    pub fn sync_done(data: &[u8]) -> bool {
        wire::sync_done(data).is_ok()
    }

    /// An intermediate response message (the BER `ldap3` hands over, read with its
    /// tag parser), decoded as a Sync Info message. `true` if it decodes as one.
    pub fn sync_info(data: &[u8]) -> bool {
        match parse_tag(data) {
            Ok((_, tag)) => matches!(wire::sync_info(&ResultEntry::new(tag)), Ok(Some(_))),
            Err(_) => false,
        }
    }

    /// An Active Directory DirSync response control value. `true` if it decodes.
    pub fn dirsync_response(data: &[u8]) -> bool {
        crate::sync::ad::wire::dirsync_response(data).is_ok()
    }

    /// A search result entry (the BER `ldap3` hands over, read with its tag
    /// parser). `true` if it decodes.
    pub fn search_entry(data: &[u8]) -> bool {
        match parse_tag(data) {
            Ok((_, tag)) => wire::search_entry(&ResultEntry::new(tag)).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(all(test, feature = "sync"))]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every file of `fuzz/corpus/<target>/` (which must exist and hold at least
    /// one file) and of `fuzz/regressions/<target>/` (if there is one).
    fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut found = Vec::new();
        for (dir, required) in [("corpus", true), ("regressions", false)] {
            let dir = fuzz.join(dir).join(target);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", dir.display()),
            };
            for entry in entries {
                let path = entry.expect("directory entry").path();
                if path.is_file() {
                    let bytes = std::fs::read(&path).expect("read an input");
                    found.push((path, bytes));
                }
            }
        }
        assert!(
            found.iter().any(|(p, _)| p.starts_with(fuzz.join("corpus"))),
            "fuzz/corpus/{target}/ holds no seed"
        );
        found
    }

    fn run(target: &str, entry: fn(&[u8]) -> bool) -> usize {
        let inputs = inputs(target);
        let mut decoded = 0;
        for (_, bytes) in &inputs {
            if entry(bytes) {
                decoded += 1;
            }
        }
        assert!(decoded > 0, "no seed of {target} decodes: the corpus is stale");
        inputs.len()
    }

    /// Seeds and reproducers of the RFC 4533 and DirSync targets run without a
    /// panic, and each corpus holds at least one input that decodes.
    #[test]
    fn rfc4533_fuzz_corpora() {
        use super::sync::*;
        for (target, entry) in [
            ("sync_state", sync_state as fn(&[u8]) -> bool),
            ("sync_done", sync_done),
            ("sync_dirsync", dirsync_response),
            ("sync_info", sync_info),
            ("search_entry", search_entry),
        ] {
            assert!(run(target, entry) > 0);
        }
    }
}
