//! Starts a real OpenLDAP server (tests/peers/slapd.sh) for the LDAP tests.
//!
//! A missing `slapd` makes the tests fail (never skip): install `slapd` and
//! `ldap-utils` (tests/peers/apt-packages.txt).
#![allow(dead_code)] // shared with benches/ldap.rs, which uses part of it

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::peer::Peer;

/// The seeded directory (see the header of tests/peers/slapd.sh).
pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";

/// One running slapd. Dropping it stops the server (by PID) and removes its files.
pub struct Slapd {
    peer: Peer,
    pub ldap_url: String,
    pub ldaps_url: String,
    pub ca_file: PathBuf,
    pub wrong_ca_file: PathBuf,
    pub service_dn: String,
    pub service_password: String,
    pub admin_dn: String,
    pub admin_password: String,
}

impl Slapd {
    /// Starts a fresh server with the seeded users and groups.
    pub fn start() -> Slapd {
        let peer = Peer::start("slapd", 3, "install slapd and ldap-utils");
        Slapd {
            ldap_url: peer.var("LDAP_URL"),
            ldaps_url: peer.var("LDAPS_URL"),
            ca_file: peer.var("LDAP_CA_FILE").into(),
            wrong_ca_file: peer.var("LDAP_WRONG_CA_FILE").into(),
            service_dn: peer.var("LDAP_SERVICE_DN"),
            service_password: peer.var("LDAP_SERVICE_PASSWORD"),
            admin_dn: peer.var("LDAP_ADMIN_DN"),
            admin_password: peer.var("LDAP_ADMIN_PASSWORD"),
            peer,
        }
    }

    /// The server most tests share, started once per test binary and stopped when
    /// the binary exits (the script's watcher stops it by PID).
    pub fn shared() -> &'static Slapd {
        static SHARED: OnceLock<Slapd> = OnceLock::new();
        SHARED.get_or_init(Slapd::start)
    }

    /// Stops the server now.
    pub fn stop(&self) {
        self.peer.stop();
    }

    /// Kills the server hard (SIGKILL), as a crash would.
    pub fn kill(&self) {
        self.peer.command("kill");
    }

    /// Suspends the server (SIGSTOP): it keeps its port and accepts connections
    /// but answers nothing, like a hung server.
    pub fn freeze(&self) {
        self.peer.command("freeze");
    }

    /// Continues a frozen server.
    pub fn thaw(&self) {
        self.peer.command("thaw");
    }

    /// Starts the server again on the same ports with the same data.
    pub fn resume(&self) {
        self.peer.command("resume");
    }
}
