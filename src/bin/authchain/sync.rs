//! `sync`: mirror the `[sync]` directory into the configured store, showing the
//! refresh's progress: a bar on a terminal, one line per interval in a log.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authchain::config::{Config, StoreConfig};
use authchain::sync::{SyncPhase, SyncStatus};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

/// How often a progress line is written when stderr is not a terminal (default).
const LOG_INTERVAL: Duration = Duration::from_secs(10);

pub async fn sync(path: PathBuf, once: bool, every: Option<Duration>) -> Result<(), String> {
    // Installed first: a SIGHUP that comes early must not end the process.
    let mut hangups = Hangups::new()?;
    let mut config = Config::from_file_with_env(&path).map_err(|e| e.to_string())?;
    let store = sync_store(&path, &config)?.clone();
    let target = store.open_sync_target().await.map_err(|e| e.to_string())?;
    loop {
        let synchronizer = synchronizer(&path, &config, target.clone())?;
        let mut status = synchronizer.status();
        let progress = tokio::spawn(show_progress(
            synchronizer.status(),
            every.unwrap_or(LOG_INTERVAL),
        ));
        let mut reloaded = None;
        let shutdown = async {
            if once {
                let _ = status
                    .wait_for(|s| matches!(s.phase, SyncPhase::Live | SyncPhase::Waiting))
                    .await;
                return;
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                config = next_config(&path, &store, target.clone(), &mut hangups) => reloaded = Some(config),
            }
        };
        let report = synchronizer.run(shutdown).await.map_err(|e| e.to_string())?;
        // The synchroniser is gone: its status channel closes and the progress task ends.
        let _ = progress.await;
        println!("sync stopped: {report}");
        match reloaded {
            Some(next) => {
                eprintln!("configuration reloaded: sync restarts");
                config = next;
            }
            None => return Ok(()),
        }
    }
}

/// The `[store]` of `config`, which must be SQLite or PostgreSQL.
fn sync_store<'a>(path: &std::path::Path, config: &'a Config) -> Result<&'a StoreConfig, String> {
    match config.store() {
        Some(store @ (StoreConfig::Sqlite { .. } | StoreConfig::Postgres { .. })) => Ok(store),
        _ => Err(format!(
            "{}: directory sync writes into a `[store] type = \"sqlite\"` or `\"postgres\"` store",
            path.display()
        )),
    }
}

fn synchronizer(
    path: &std::path::Path,
    config: &Config,
    target: Arc<dyn authchain::sync::DirectoryTarget>,
) -> Result<authchain::sync::Synchronizer, String> {
    config
        .synchronizer(target)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: no [sync] table", path.display()))
}

/// The configuration of the next SIGHUP that reads and builds; one that does
/// not is refused with its errors, and the running sync goes on.
async fn next_config(
    path: &std::path::Path,
    store: &StoreConfig,
    target: Arc<dyn authchain::sync::DirectoryTarget>,
    hangups: &mut Hangups,
) -> Config {
    loop {
        hangups.recv().await;
        let checked = Config::from_file_with_env(path)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                if sync_store(path, &config)? != store {
                    return Err("changing the [store] section takes a restart".into());
                }
                synchronizer(path, &config, target.clone())?;
                Ok(config)
            });
        match checked {
            Ok(config) => return config,
            Err(why) => eprintln!("reload refused, the running configuration stays: {why}"),
        }
    }
}

/// SIGHUP, where there is one.
struct Hangups(#[cfg(unix)] tokio::signal::unix::Signal);

impl Hangups {
    fn new() -> Result<Hangups, String> {
        #[cfg(unix)]
        {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map(Hangups)
                .map_err(|e| format!("cannot listen for SIGHUP: {e}"))
        }
        #[cfg(not(unix))]
        Ok(Hangups())
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.0.recv().await;
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    }
}

/// Where progress goes: a redrawn bar on a terminal, plain lines otherwise.
enum Display {
    Bar(ProgressBar),
    Lines { every: Duration, last: Instant },
}

impl Display {
    fn new(every: Duration) -> Display {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} refresh: {pos} changes ({per_sec}, {elapsed}) {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Display::Bar(bar)
        } else {
            Display::Lines {
                every,
                last: Instant::now(),
            }
        }
    }

    /// The refresh has received `changes` so far, `rate` per second.
    fn refreshing(&mut self, status: &SyncStatus, rate: f64) {
        match self {
            Display::Bar(bar) => {
                bar.set_position(status.refresh_changes);
                bar.set_message(status.report.to_string());
            }
            Display::Lines { every, last } if last.elapsed() >= *every => {
                *last = Instant::now();
                eprintln!(
                    "refresh: {} changes received ({rate:.0}/s), {}",
                    status.refresh_changes, status.report
                );
            }
            Display::Lines { .. } => {}
        }
    }

    /// A line of its own (the bar, if any, is cleared first and redrawn after).
    fn line(&self, text: &str) {
        match self {
            Display::Bar(bar) => bar.suspend(|| eprintln!("{text}")),
            Display::Lines { .. } => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Progress during the refresh, a summary when it is done (with its rate), one
/// line per lost connection, and one when the source starts polling.
async fn show_progress(mut status: watch::Receiver<SyncStatus>, every: Duration) {
    let mut display = Display::new(every);
    // A small directory may be refreshed before the first look: count from the start.
    let mut refreshing = true;
    let mut started = Instant::now();
    let mut polling = None;
    loop {
        let current = status.borrow_and_update().clone();
        if current.poll_interval != polling {
            if let Some(every) = current.poll_interval {
                display.line(&format!("polling the directory every {} s", every.as_secs_f64()));
            }
            polling = current.poll_interval;
        }
        match current.phase {
            SyncPhase::Refreshing => {
                if !refreshing {
                    started = Instant::now();
                    refreshing = true;
                }
                let rate = current.refresh_changes as f64 / started.elapsed().as_secs_f64().max(0.001);
                display.refreshing(&current, rate);
            }
            _ if current.refreshed && refreshing => {
                let took = started.elapsed();
                display.finish();
                display.line(&format!(
                    "refresh done ({}): {} changes in {:.1} s ({:.0}/s): {}",
                    if current.resumed {
                        "resumed from the stored cookie"
                    } else {
                        "full"
                    },
                    current.refresh_changes,
                    took.as_secs_f64(),
                    current.refresh_changes as f64 / took.as_secs_f64().max(0.001),
                    current.report
                ));
                refreshing = false;
            }
            SyncPhase::Connecting => {
                if let Some(error) = &current.last_error {
                    display.line(&format!("directory unavailable, retrying: {error}"));
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if status.changed().await.is_err() {
            display.finish();
            return;
        }
    }
}
