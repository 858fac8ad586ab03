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
    let config = Config::from_file_with_env(&path).map_err(|e| e.to_string())?;
    let Some(store @ StoreConfig::Sqlite { .. }) = config.store() else {
        return Err(format!(
            "{}: directory sync writes into a `[store] type = \"sqlite\"` store",
            path.display()
        ));
    };
    let target = Arc::new(store.open_sqlite().await.map_err(|e| e.to_string())?);
    let synchronizer = config
        .synchronizer(target)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: no [sync] table", path.display()))?;
    let mut status = synchronizer.status();
    let progress = tokio::spawn(show_progress(
        synchronizer.status(),
        every.unwrap_or(LOG_INTERVAL),
    ));
    let shutdown = async move {
        if once {
            let _ = status
                .wait_for(|s| matches!(s.phase, SyncPhase::Live | SyncPhase::Waiting))
                .await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    let report = synchronizer.run(shutdown).await.map_err(|e| e.to_string())?;
    // The synchroniser is gone: its status channel closes and the progress task ends.
    let _ = progress.await;
    println!("sync stopped: {report}");
    Ok(())
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
