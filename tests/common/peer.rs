//! A real server started by one of the tests/peers/ scripts: `SCRIPT start DIR
//! --owner-pid PID` prints KEY=VALUE lines and records the server's PID in DIR;
//! `SCRIPT stop DIR` kills that PID. Each server gets its own DIR under the target
//! directory; the owner-pid watcher stops it when the test binary exits.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Peer {
    script: PathBuf,
    dir: PathBuf,
    vars: HashMap<String, String>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Peer {
    /// Runs `tests/peers/<name>.sh start`, `attempts` times at most (a port picked
    /// as free can be taken before the server binds it). Fails the test, saying
    /// `needs` and the script's error, when the server does not start.
    pub fn start(name: &str, attempts: usize, needs: &str) -> Peer {
        Peer::start_with_env(name, attempts, needs, &[])
    }

    /// [`Peer::start`] with these environment variables set for the script.
    pub fn start_with_env(name: &str, attempts: usize, needs: &str, env: &[(&str, &str)]) -> Peer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/peers/{name}.sh"));
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}-{n}", std::process::id()));
        let mut last = String::new();
        for _ in 0..attempts.max(1) {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the server directory");
            let out = Command::new("bash")
                .arg(&script)
                .arg("start")
                .arg(&dir)
                .arg("--owner-pid")
                .arg(std::process::id().to_string())
                .envs(env.iter().copied())
                .output()
                .unwrap_or_else(|e| panic!("run {} (needs bash): {e}", script.display()));
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout);
                let vars = text
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                return Peer { script, dir, vars };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("could not start {name} ({needs}): {last}");
    }

    /// A value the script printed.
    pub fn var(&self, key: &str) -> String {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("{} did not print {key}", self.script.display()))
            .clone()
    }

    /// Runs `SCRIPT <command> DIR` (a script's own verbs, such as slapd.sh's `kill`
    /// and `resume`) and returns what it printed; fails the test if it fails.
    pub fn command(&self, command: &str) -> String {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(command)
            .arg(&self.dir)
            .output()
            .expect("run the peer script");
        assert!(
            out.status.success(),
            "{} {command} failed: {}",
            self.script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server now (by its recorded PID).
    pub fn stop(&self) {
        let status = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status()
            .expect("run the peer script's stop");
        assert!(status.success(), "{} stop failed", self.script.display());
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
