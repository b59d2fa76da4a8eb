//! Progress: indicatif bars on a terminal (overall and per provider, with rate
//! and ETA), one plain line per finished credential otherwise.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::Observer;
use crate::report::Outcome;

pub struct Progress {
    view: View,
    /// Credentials that reached an outcome in this sitting.
    finished: AtomicUsize,
}

enum View {
    Bars { multi: MultiProgress, overall: Mutex<Option<ProgressBar>>, per: Mutex<BTreeMap<String, ProgressBar>> },
    Lines { total: AtomicUsize, done: AtomicUsize, quiet: bool },
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise (logs, CI, cron).
    pub fn new(quiet: bool) -> Progress {
        let view = if std::io::stderr().is_terminal() && !quiet {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            View::Bars { multi, overall: Mutex::new(None), per: Mutex::new(BTreeMap::new()) }
        } else {
            View::Lines { total: AtomicUsize::new(0), done: AtomicUsize::new(0), quiet }
        };
        Progress { view, finished: AtomicUsize::new(0) }
    }

    /// How many credentials reached an outcome in this sitting (a resume
    /// counts only what it finished).
    pub fn finished_now(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
}

fn style(overall: bool) -> ProgressStyle {
    let t = if overall {
        "{prefix:>14.bold} [{bar:40.green/white}] {pos}/{len} {rate:>8} ETA {eta:>4} {msg}"
    } else {
        "{prefix:>14} [{bar:40.cyan/white}] {pos}/{len} {rate:>8} {msg}"
    };
    ProgressStyle::with_template(t)
        .expect("static template")
        .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", s.per_sec());
        })
        .progress_chars("=> ")
}

impl Observer for Progress {
    fn begin(&self, per_provider: &BTreeMap<String, usize>, already: &BTreeMap<String, usize>) {
        let total: usize = per_provider.values().sum();
        let done: usize = already.values().sum();
        match &self.view {
            View::Bars { multi, overall, per } => {
                let o = multi.add(ProgressBar::new(total as u64));
                o.set_style(style(true));
                o.set_prefix("all");
                o.set_position(done as u64);
                o.reset_eta();
                *overall.lock().unwrap() = Some(o);
                let mut per = per.lock().unwrap();
                for (name, n) in per_provider {
                    let b = multi.add(ProgressBar::new(*n as u64));
                    b.set_style(style(false));
                    b.set_prefix(name.clone());
                    b.set_position(already.get(name).copied().unwrap_or(0) as u64);
                    per.insert(name.clone(), b);
                }
            }
            View::Lines { total: t, done: d, quiet } => {
                t.store(total, Ordering::SeqCst);
                d.store(done, Ordering::SeqCst);
                if !quiet {
                    eprintln!("keysweep: {total} credential(s) selected, {done} already finished");
                }
            }
        }
    }

    fn finished(&self, provider: &str, id: &str, outcome: &Outcome) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        match &self.view {
            View::Bars { overall, per, .. } => {
                if let Some(o) = overall.lock().unwrap().as_ref() {
                    o.inc(1);
                    if !outcome.is_verified() {
                        o.set_message(format!("last gap: {id} {}", outcome.name()));
                    }
                }
                if let Some(b) = per.lock().unwrap().get(provider) {
                    b.inc(1);
                }
            }
            View::Lines { total, done, quiet } => {
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if !*quiet || !outcome.is_verified() {
                    let detail = crate::secret::redact(outcome.detail());
                    eprintln!("keysweep: [{n}/{}] {id}: {} {detail}", total.load(Ordering::SeqCst), outcome.name());
                }
            }
        }
    }

    fn end(&self) {
        if let View::Bars { overall, per, .. } = &self.view {
            for b in per.lock().unwrap().values() {
                b.finish();
            }
            if let Some(o) = overall.lock().unwrap().as_ref() {
                o.finish();
            }
        }
    }
}
