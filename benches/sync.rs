//! Directory sync against a real slapd into a real SQLite file:
//! * the initial load of 10,000 users and 50 groups (entries per second), and
//! * the change-to-store latency: one LDAP modify until the batch holding it is
//!   committed (median from criterion; the p99 is printed at the end).
//!
//! `cargo bench --bench sync --features sync,sqlite`

#[path = "../tests/sync/harness.rs"]
mod harness;
#[path = "../tests/common/peer.rs"]
mod peer;
#[path = "../tests/ldap/slapd.rs"]
mod slapd;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use authchain::sync::SyncMode;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use harness::{Directory, scope, seed_bulk, start, synchronizer, user_dn};
use slapd::Slapd;

const USERS: usize = 10_000;
/// The bulk users, the 50 groups, and the four users and three groups of the seed.
const ENTRIES: u64 = USERS as u64 + 50 + 4 + 3;

fn initial_load(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slapd = Slapd::start();
    seed_bulk(&slapd, USERS);
    let mut group = c.benchmark_group("sync");
    group.sample_size(10).measurement_time(Duration::from_secs(60));
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
                    total += started.elapsed();
                    running.stop().await;
                    assert_eq!(store.account_count().await.unwrap(), USERS as u64 + 4);
                    store.close().await;
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                    }
                }
                total
            })
        })
    });
    group.finish();
}

fn change_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slapd = Slapd::start();
    seed_bulk(&slapd, 1_000);
    let (store, _path) = rt.block_on(harness::store());
    // `start` spawns the synchroniser on this runtime.
    let _runtime = rt.enter();
    let mut running = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
    rt.block_on(running.live());
    let mut dir = rt.block_on(Directory::connect(&slapd));
    let samples = Mutex::new(Vec::new());
    let mut n = 0u64;
    let mut group = c.benchmark_group("sync");
    group.bench_function("change-to-store latency (one LDAP modify → committed)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let batches = running.status.borrow_and_update().batches;
                    let started = Instant::now();
                    dir.replace(&user_dn("u0042"), "mail", &[&format!("u0042-{n}@example.org")])
                        .await;
                    running
                        .wait_for("the change to be applied", |s| s.batches > batches)
                        .await;
                    let took = started.elapsed();
                    samples.lock().unwrap().push(took);
                    total += took;
                }
                total
            })
        })
    });
    group.finish();
    let mut all = samples.into_inner().unwrap();
    all.sort();
    if !all.is_empty() {
        let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
        println!(
            "change-to-store latency over {} changes: median {:.2} ms, p99 {:.2} ms",
            all.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3
        );
    }
    rt.block_on(running.stop());
}

criterion_group!(benches, initial_load, change_latency);
criterion_main!(benches);
