//! One progress display for every long stage: an indicatif bar on a terminal, and in a log (when
//! stderr is no terminal, where indicatif shows nothing) a line at the start, one every
//! [`LOG_EVERY`] with counts, rate and the time left, and one at the end.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a stage writes a line to a log.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The progress of one stage of `len` steps.
pub struct Stage {
    bar: ProgressBar,
    log: Option<Mutex<Log>>,
}

struct Log {
    label: String,
    len: u64,
    pos: u64,
    /// Steps already done when the stage started (resumed from a cache): not counted in the rate.
    resumed: u64,
    message: String,
    start: Instant,
    last: Instant,
    every: Duration,
    sink: Box<dyn Write + Send>,
}

/// A stage of `len` steps labelled `label`: a bar on a terminal, lines in a log. A stage of no
/// steps shows nothing (a log of a guard's batches would otherwise fill with empty stages).
pub fn stage_bar(label: &str, len: u64) -> Stage {
    if len == 0 {
        return Stage::hidden();
    }
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template("{prefix:28} {bar:30} {pos}/{len} {elapsed}<{eta} {msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_string());
        Stage { bar, log: None }
    } else {
        Stage::logged(label, len, LOG_EVERY, Box::new(std::io::stderr()))
    }
}

impl Stage {
    /// A stage that shows nothing: work too small or too frequent to report (a guard's batch).
    pub fn hidden() -> Stage {
        Stage { bar: ProgressBar::hidden(), log: None }
    }

    /// A stage that writes its lines to `sink` every `every`.
    pub fn logged(label: &str, len: u64, every: Duration, sink: Box<dyn Write + Send>) -> Stage {
        let now = Instant::now();
        let mut log = Log {
            label: label.to_string(),
            len,
            pos: 0,
            resumed: 0,
            message: String::new(),
            start: now,
            last: now,
            every,
            sink,
        };
        log.line(&format!("started, {len} steps"));
        Stage { bar: ProgressBar::hidden(), log: Some(Mutex::new(log)) }
    }

    /// Marks `n` steps as done before this run (taken from a cache).
    pub fn resume(&self, n: u64) {
        self.bar.inc(n);
        if n == 0 {
            return;
        }
        if let Some(mut log) = self.log() {
            log.pos += n;
            log.resumed += n;
            let line = format!("{n} of {} steps from the cache", log.len);
            log.line(&line);
        }
    }

    /// `n` more steps done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(mut log) = self.log() {
            log.pos += n;
            if log.last.elapsed() >= log.every {
                let line = log.status();
                log.line(&line);
            }
        }
    }

    /// What the stage is doing now, shown beside the count.
    pub fn set_message(&self, message: String) {
        if let Some(mut log) = self.log() {
            log.message = message.clone();
        }
        self.bar.set_message(message);
    }

    /// The stage is over: the bar goes, the log gets its last line.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        if let Some(mut log) = self.log() {
            let elapsed = log.start.elapsed().as_secs_f64();
            let line = format!("done, {}/{} in {elapsed:.1} s ({})", log.pos, log.len, log.rate());
            log.line(&line);
        }
    }

    fn log(&self) -> Option<std::sync::MutexGuard<'_, Log>> {
        self.log.as_ref().map(|l| l.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Log {
    fn rate(&self) -> String {
        let elapsed = self.start.elapsed().as_secs_f64();
        format!("{:.1}/s", (self.pos - self.resumed) as f64 / elapsed.max(1e-9))
    }

    fn status(&self) -> String {
        let elapsed = self.start.elapsed().as_secs_f64();
        let done = (self.pos - self.resumed) as f64;
        let left = self.len.saturating_sub(self.pos) as f64;
        let eta = if done > 0.0 { format!("~{:.0} s left", left * elapsed / done) } else { "time left unknown".into() };
        let share = 100.0 * self.pos as f64 / self.len.max(1) as f64;
        let message = if self.message.is_empty() { String::new() } else { format!(", {}", self.message) };
        format!("{}/{} ({share:.0}%), {}, {eta}{message}", self.pos, self.len, self.rate())
    }

    fn line(&mut self, text: &str) {
        self.last = Instant::now();
        // A log that cannot be written to must not stop the work it reports on.
        let _ = writeln!(self.sink, "[{}] {text}", self.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_logged_stage_writes_its_start_its_counts_with_the_time_left_and_its_end() {
        let sink = Shared::default();
        let stage = Stage::logged("index", 10, Duration::ZERO, Box::new(sink.clone()));
        stage.resume(2);
        stage.set_message("epoch 1".into());
        stage.inc(3);
        stage.finish_and_clear();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "[index] started, 10 steps");
        assert_eq!(lines[1], "[index] 2 of 10 steps from the cache");
        assert!(lines[2].starts_with("[index] 5/10 (50%), ") && lines[2].contains("s left, epoch 1"), "{}", lines[2]);
        assert!(lines[3].starts_with("[index] done, 5/10 in "), "{}", lines[3]);
    }

    #[test]
    fn a_logged_stage_stays_quiet_between_its_intervals() {
        let sink = Shared::default();
        let stage = Stage::logged("sweep", 100, Duration::from_secs(3600), Box::new(sink.clone()));
        for _ in 0..100 {
            stage.inc(1);
        }
        stage.finish_and_clear();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn a_stage_of_no_steps_shows_nothing() {
        assert!(stage_bar("localising", 0).log.is_none());
        assert!(Stage::hidden().log.is_none());
    }
}
