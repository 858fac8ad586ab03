//! Starts a real OpenLDAP server (tests/peers/slapd.sh) for the LDAP tests.
//!
//! A missing `slapd` makes the tests fail (never skip): install `slapd` and
//! `ldap-utils` (tests/peers/apt-packages.txt).
#![allow(dead_code)] // shared with benches/ldap.rs, which uses part of it

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The seeded directory (see the header of tests/peers/slapd.sh).
pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";

/// One running slapd. Dropping it stops the server (by PID) and removes its files.
pub struct Slapd {
    dir: PathBuf,
    pub ldap_url: String,
    pub ldaps_url: String,
    pub ca_file: PathBuf,
    pub wrong_ca_file: PathBuf,
    pub service_dn: String,
    pub service_password: String,
    pub admin_dn: String,
    pub admin_password: String,
    pub pid: std::sync::atomic::AtomicU32,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/slapd.sh")
}

impl Slapd {
    /// Starts a fresh server with the seeded users and groups.
    pub fn start() -> Slapd {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("slapd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the slapd directory");
        let mut last = String::new();
        // A port picked as free may be taken by the time slapd binds it: retry.
        for _ in 0..3 {
            let out = Command::new("bash")
                .arg(script())
                .arg("start")
                .arg(&dir)
                .arg("--owner-pid")
                .arg(std::process::id().to_string())
                .output()
                .expect("run tests/peers/slapd.sh");
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout);
                let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
                let get = |k: &str| {
                    vars.get(k)
                        .unwrap_or_else(|| panic!("slapd.sh did not print {k}"))
                        .to_string()
                };
                return Slapd {
                    dir: dir.clone(),
                    ldap_url: get("LDAP_URL"),
                    ldaps_url: get("LDAPS_URL"),
                    ca_file: get("LDAP_CA_FILE").into(),
                    wrong_ca_file: get("LDAP_WRONG_CA_FILE").into(),
                    service_dn: get("LDAP_SERVICE_DN"),
                    service_password: get("LDAP_SERVICE_PASSWORD"),
                    admin_dn: get("LDAP_ADMIN_DN"),
                    admin_password: get("LDAP_ADMIN_PASSWORD"),
                    pid: get("SLAPD_PID").parse::<u32>().expect("SLAPD_PID").into(),
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the slapd directory");
        }
        panic!("could not start slapd (install slapd and ldap-utils): {last}");
    }

    /// The server most tests share, started once per test binary and stopped when
    /// the binary exits (the script's watcher stops it by PID).
    pub fn shared() -> &'static Slapd {
        static SHARED: OnceLock<Slapd> = OnceLock::new();
        SHARED.get_or_init(Slapd::start)
    }

    /// Kills the server hard (SIGKILL), as a crash would.
    pub fn kill(&self) {
        self.run("kill");
    }

    /// Starts the server again on the same ports with the same data.
    pub fn resume(&self) {
        let out = Command::new("bash")
            .arg(script())
            .arg("resume")
            .arg(&self.dir)
            .output()
            .expect("run tests/peers/slapd.sh resume");
        assert!(
            out.status.success(),
            "slapd.sh resume failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .trim()
            .strip_prefix("SLAPD_PID=")
            .and_then(|p| p.parse().ok())
            .expect("SLAPD_PID");
        self.pid.store(pid, Ordering::Relaxed);
    }

    fn run(&self, command: &str) {
        let status = Command::new("bash")
            .arg(script())
            .arg(command)
            .arg(&self.dir)
            .status()
            .expect("run tests/peers/slapd.sh");
        assert!(status.success(), "slapd.sh {command} failed");
    }

    /// Stops the server now.
    pub fn stop(&self) {
        self.run("stop");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
