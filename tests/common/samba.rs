//! A real Active Directory domain controller (Debian's Samba AD DC, started by
//! tests/peers/samba.sh) for the tests: one per test binary, shared, stopped when the
//! binary exits. Only one DC can run on the machine (its ports are fixed), so the
//! script waits for an exclusive lock while another test binary holds its DC.
//!
//! A missing Samba makes the tests fail (never skip): install `samba-ad-dc` and
//! `samba-ad-provision` (tests/peers/apt-packages.txt); it needs root.
//!
//! Include it with `#[path = "common/samba.rs"] mod samba;`. The seeded users and
//! groups are listed in the header of tests/peers/samba.sh and as constants here.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "peer.rs"]
mod peer;

use peer::Peer;

/// The domain's base DN.
pub const BASE_DN: &str = "DC=example,DC=test";
/// Where the seeded users and groups live.
pub const USERS_DN: &str = "CN=Users,DC=example,DC=test";
/// The NetBIOS domain name, for `DOMAIN\user` binds.
pub const DOMAIN: &str = "EXAMPLE";
/// The UPN suffix, for `user@suffix` binds.
pub const UPN_SUFFIX: &str = "example.test";

/// A user in the good standing: member of `staff`, so (nested) of `engineers`.
pub const ALICE: &str = "alice";
/// A direct member of `engineers`.
pub const BOB: &str = "bob";
/// Disabled (`userAccountControl` ACCOUNTDISABLE): binds answer `data 533`.
pub const DISABLED: &str = "carol";
/// `accountExpires` in the past: binds answer `data 701`.
pub const EXPIRED: &str = "dave";
/// Must change the password at next logon (`pwdLastSet` 0): binds answer `data 773`.
pub const MUST_CHANGE: &str = "erin";
/// Locked out (its own PSO, threshold 2, was exceeded at start): `data 775`.
pub const LOCKED: &str = "frank";
/// `logonHours` all zero, no hour of the week allowed: binds answer `data 530`.
pub const LOGON_HOURS: &str = "gina";
/// Groups: `staff` is a member of `engineers`.
pub const STAFF: &str = "staff";
/// The group that holds `staff` and `bob`.
pub const ENGINEERS: &str = "engineers";

/// The password of a seeded user (`<name>-password`).
pub fn password(user: &str) -> String {
    format!("{user}-password")
}

/// The DN of a seeded user or group (`CN=<name>,CN=Users,...`).
pub fn dn(name: &str) -> String {
    format!("CN={name},{USERS_DN}")
}

/// A user's UPN (`name@example.test`).
pub fn upn(user: &str) -> String {
    format!("{user}@{UPN_SUFFIX}")
}

/// A user's down-level logon name (`EXAMPLE\name`).
pub fn down_level(user: &str) -> String {
    format!("{DOMAIN}\\{user}")
}

/// One running DC. Dropping it stops the DC (by PID) and releases the machine lock.
pub struct Samba {
    peer: Peer,
    /// `ldap://127.0.0.1:389` (StartTLS offered).
    pub ldap_url: String,
    /// `ldaps://127.0.0.1:636`.
    pub ldaps_url: String,
    /// The machine's host name, also in the certificate's SAN.
    pub hostname: String,
    /// The CA that signed the DC's certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing the DC presents.
    pub wrong_ca_file: PathBuf,
    /// `CN=Administrator,CN=Users,...` (DirSync needs its rights).
    pub admin_dn: String,
    /// The administrator's password.
    pub admin_password: String,
    /// A plain user for search-then-bind.
    pub service_dn: String,
    /// Its password.
    pub service_password: String,
    /// The DC's smb.conf, for `samba-tool ... -s <smb_conf>`.
    pub smb_conf: PathBuf,
}

impl Samba {
    /// Provisions and starts a fresh DC with the seeded users and groups (waits for
    /// the machine lock first). Fails the test if the DC cannot start.
    pub fn start() -> Samba {
        let peer = Peer::start(
            "samba",
            2,
            "Samba AD DC, as root: apt-get install samba-ad-dc samba-ad-provision ldap-utils",
        );
        Samba {
            ldap_url: peer.var("AD_LDAP_URL"),
            ldaps_url: peer.var("AD_LDAPS_URL"),
            hostname: peer.var("AD_HOSTNAME"),
            ca_file: peer.var("AD_CA_FILE").into(),
            wrong_ca_file: peer.var("AD_WRONG_CA_FILE").into(),
            admin_dn: peer.var("AD_ADMIN_DN"),
            admin_password: peer.var("AD_ADMIN_PASSWORD"),
            service_dn: peer.var("AD_SERVICE_DN"),
            service_password: peer.var("AD_SERVICE_PASSWORD"),
            smb_conf: peer.var("AD_SMB_CONF").into(),
            peer,
        }
    }

    /// The DC the binary's tests share, started on first use and stopped when the
    /// binary exits (the script's watcher stops it by PID and releases the lock).
    pub fn shared() -> &'static Samba {
        static SHARED: OnceLock<Samba> = OnceLock::new();
        SHARED.get_or_init(Samba::start)
    }

    /// Stops the DC (by PID) but keeps its data and the machine lock; see [`Samba::resume`].
    pub fn halt(&self) {
        self.peer.command("halt");
    }

    /// Kills the DC hard (SIGKILL), as a crash would; data and lock are kept.
    pub fn kill(&self) {
        self.peer.command("kill");
    }

    /// Starts the DC again on the same data (after [`Samba::halt`] or [`Samba::kill`]).
    pub fn resume(&self) {
        self.peer.command("resume");
    }

    /// Runs `samba-tool ARGS -s <smb.conf>` against the DC's database and returns its
    /// output; fails the test if it fails.
    pub fn tool(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("samba-tool")
            .args(args)
            .arg("-s")
            .arg(&self.smb_conf)
            .output()
            .expect("run samba-tool");
        assert!(
            out.status.success(),
            "samba-tool {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
