//! Directory sync against a real slapd into a real SQLite file, measured from
//! outside the synchroniser:
//! * the initial load of 10,000 users and 50 groups (unit: entries/s), and
//! * the change-to-store latency: from one LDAP modify returning until a
//!   *separate process*, polling the SQLite file through its own connection,
//!   reads the new value (unit: ms per change, median and p99, printed at the end;
//!   criterion's time is the mean).
//!
//! `cargo bench --bench sync --features sync,sqlite`
//!
//! With `AUTHCHAIN_BENCH_SYNC_LOADS=N` it only seeds slapd and runs N initial loads
//! (for `valgrind --tool=callgrind`: where the synchroniser's instructions go).

#[path = "../tests/sync/harness.rs"]
mod harness;
#[path = "../tests/common/peer.rs"]
mod peer;
#[path = "../tests/ldap/slapd.rs"]
mod slapd;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use authchain::StoreError;
use authchain::account::SqliteStore;
use authchain::sync::{
    DirectoryChange, DirectoryTarget, EntryKind, SyncBatch, SyncMode, SyncReport, SyncScope, Synchronizer,
};
use criterion::{Criterion, Throughput, criterion_group};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use harness::{Directory, scope, seed_bulk, start, synchronizer, user_dn};
use slapd::Slapd;

const USERS: usize = 10_000;
/// The bulk users, the 50 groups, and the four users and three groups of the seed.
const ENTRIES: u64 = USERS as u64 + 50 + 4 + 3;
/// Set in the watcher process to the SQLite file it reads.
const WATCH: &str = "AUTHCHAIN_BENCH_WATCH_SQLITE";
/// How long the watcher sleeps between two reads (its resolution).
const POLL_EVERY: Duration = Duration::from_micros(50);

fn initial_load(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slapd = Slapd::start();
    seed_bulk(&slapd, USERS);
    let rates = Mutex::new(Vec::new());
    let mut group = c.benchmark_group("sync");
    group.sample_size(10).measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(ENTRIES));
    group.bench_function("initial load of 10,057 entries into SQLite (entries/s)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (store, path) = harness::store().await;
                    let started = Instant::now();
                    let mut running = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
                    running.live().await;
                    let took = started.elapsed();
                    total += took;
                    rates.lock().unwrap().push(ENTRIES as f64 / took.as_secs_f64());
                    running.stop().await;
                    assert_eq!(store.account_count().await.unwrap(), USERS as u64 + 4);
                    harness::discard(store, &path).await;
                }
                total
            })
        })
    });
    group.finish();
    harness::print_median_rate("initial load", rates.into_inner().unwrap());
}

/// The store, noting when each batch holding a user change has committed: the
/// latency splits into the synchroniser's part and the reader's.
struct Timed {
    store: SqliteStore,
    committed: Mutex<Option<Instant>>,
}

#[async_trait::async_trait]
impl DirectoryTarget for Timed {
    async fn sync_cookie(&self, source: &str, kind: EntryKind) -> Result<Option<Vec<u8>>, StoreError> {
        DirectoryTarget::sync_cookie(&self.store, source, kind).await
    }

    async fn apply(&self, scope: &SyncScope, batch: &SyncBatch) -> Result<SyncReport, StoreError> {
        let report = DirectoryTarget::apply(&self.store, scope, batch).await;
        if batch
            .changes
            .iter()
            .any(|change| matches!(change, DirectoryChange::UserUpserted(_)))
        {
            *self.committed.lock().unwrap() = Some(Instant::now());
        }
        report
    }
}

/// This benchmark run again as a child process that reads the SQLite file.
struct Watcher {
    child: Child,
    ask: ChildStdin,
    answers: BufReader<ChildStdout>,
}

impl Watcher {
    fn spawn(path: &std::path::Path) -> Watcher {
        let mut child = Command::new(std::env::current_exe().expect("the bench executable"))
            .env(WATCH, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the watcher process");
        let ask = child.stdin.take().expect("stdin");
        let mut answers = BufReader::new(child.stdout.take().expect("stdout"));
        let mut ready = String::new();
        answers.read_line(&mut ready).expect("the watcher starts");
        assert_eq!(ready.trim(), "ready", "the watcher failed to start");
        Watcher { child, ask, answers }
    }

    /// Blocks until the watcher has read `email` as `login`'s address in the store.
    fn until_visible(&mut self, login: &str, email: &str) {
        writeln!(self.ask, "{login}\t{email}").expect("ask the watcher");
        self.ask.flush().expect("ask the watcher");
        let mut seen = String::new();
        self.answers.read_line(&mut seen).expect("the watcher answers");
        assert_eq!(seen.trim(), "seen", "the watcher failed");
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The watcher process: for each `login<TAB>email` line on stdin, reads the store
/// through its own read-only connection until the account has that address, then
/// answers `seen`.
fn watch(path: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("open the store");
        println!("ready");
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let line = line.expect("read a request");
            let (login, email) = line.split_once('\t').expect("login<TAB>email");
            loop {
                let now: Option<Option<String>> =
                    sqlx::query_scalar("SELECT email FROM accounts WHERE login_key = ?1")
                        .bind(login)
                        .fetch_optional(&mut conn)
                        .await
                        .expect("read the store");
                if now.flatten().as_deref() == Some(email) {
                    break;
                }
                std::thread::sleep(POLL_EVERY);
            }
            println!("seen");
        }
    });
}

fn change_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slapd = Slapd::start();
    seed_bulk(&slapd, 1_000);
    let (store, path) = rt.block_on(harness::store());
    // `start` spawns the synchroniser on this runtime.
    let _runtime = rt.enter();
    let timed = std::sync::Arc::new(Timed {
        store: store.clone(),
        committed: Mutex::new(None),
    });
    let synchronizer = Synchronizer::new(
        std::sync::Arc::new(harness::source(&slapd, SyncMode::Persist)),
        timed.clone(),
        scope(),
    );
    let mut running = start(synchronizer);
    rt.block_on(running.live());
    let mut watcher = Watcher::spawn(&path);
    let mut committed_after = Vec::new();
    let mut dir = rt.block_on(Directory::connect(&slapd));
    let samples = Mutex::new(Vec::new());
    let mut n = 0u64;
    let mut group = c.benchmark_group("sync");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(
        "change-to-store latency (LDAP modify returned → read by another process)",
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let email = format!("u0042-{n}@example.org");
                    *timed.committed.lock().unwrap() = None;
                    rt.block_on(dir.replace(&user_dn("u0042"), "mail", &[&email]));
                    let started = Instant::now();
                    watcher.until_visible("u0042", &email);
                    let took = started.elapsed();
                    if let Some(at) = *timed.committed.lock().unwrap() {
                        committed_after.push(at.saturating_duration_since(started));
                    }
                    samples.lock().unwrap().push(took);
                    total += took;
                }
                total
            })
        },
    );
    group.finish();
    let mut all = samples.into_inner().unwrap();
    all.sort();
    if !all.is_empty() {
        let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
        println!(
            "change-to-store latency over {} changes, read by another process: median {:.2} ms, p99 {:.2} ms per change",
            all.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3
        );
    }
    // A commit can land before the modify's answer reaches the bench (then 0).
    committed_after.sort();
    if !committed_after.is_empty() {
        let at = |q: f64| committed_after[((committed_after.len() - 1) as f64 * q).round() as usize];
        println!(
            "  of which LDAP modify returned → synchroniser committed: median {:.2} ms, p99 {:.2} ms",
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3
        );
    }
    drop(watcher);
    rt.block_on(running.stop());
}

criterion_group!(benches, initial_load, change_latency);

/// N initial loads, nothing else.
fn loads(n: u32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slapd = Slapd::start();
    seed_bulk(&slapd, USERS);
    rt.block_on(async {
        for _ in 0..n {
            let (store, path) = harness::store().await;
            let started = Instant::now();
            let mut running = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
            running.live().await;
            println!(
                "{:.0} entries/s",
                ENTRIES as f64 / started.elapsed().as_secs_f64()
            );
            running.stop().await;
            store.close().await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    });
}

fn main() {
    if let Some(path) = std::env::var_os(WATCH) {
        watch(path.to_str().expect("a UTF-8 path"));
        return;
    }
    if let Ok(n) = std::env::var("AUTHCHAIN_BENCH_SYNC_LOADS") {
        loads(n.parse().expect("a number of loads"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
