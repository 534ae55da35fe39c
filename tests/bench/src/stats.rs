//! Latency percentiles, and the CPU time and peak memory of processes read from `/proc`.

use std::time::Instant;

/// Latencies in microseconds, sorted once. Every sample is kept (a 20-second run at 100k
/// requests/s is 8 MB), so percentiles are exact rather than bucketed.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn new(mut us: Vec<u32>) -> Self {
        us.sort_unstable();
        Self(us)
    }

    /// The `p` quantile (0.0–1.0) in milliseconds; NaN when there are no samples.
    pub fn ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.0[i]) / 1000.0
    }

    /// The `p` quantile in microseconds.
    pub fn us(&self, p: f64) -> f64 {
        self.ms(p) * 1000.0
    }

    pub fn mean_us(&self) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.iter().map(|&v| f64::from(v)).sum::<f64>() / self.0.len() as f64
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User and system CPU seconds of every thread of `pid` so far.
fn cpu_user_system(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime as f64 / clock_ticks(), stime as f64 / clock_ticks()))
}

/// User plus system CPU seconds of every thread of `pid` so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_user_system(pid).map(|(u, s)| u + s)
}

/// A line of `/proc/<pid>/status` in kB (`VmHWM`, `VmRSS`).
fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak-RSS mark (`VmHWM`) of `pid`, so the next read is the peak of what came
/// after (Linux ≥ 4.0, writing 5 to `clear_refs`). False when not allowed.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU and peak memory of one process over a measurement window.
pub struct ProcWindow {
    pid: u32,
    cpu_at_start: Option<(f64, f64)>,
    started: Instant,
    /// Whether the peak mark was reset at the start (else the peak is since process start).
    peak_is_windowed: bool,
}

/// What a [`ProcWindow`] saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcUsage {
    /// CPU seconds used during the window (user plus system).
    pub cpu_s: f64,
    /// Of which in the kernel (system calls: network, fsync, futexes).
    pub system_s: f64,
    /// Average cores busy (CPU seconds / wall seconds).
    pub cores: f64,
    /// Peak resident memory in MB (of the window when it could be reset, else since start).
    pub peak_rss_mb: f64,
    pub peak_is_windowed: bool,
}

impl ProcWindow {
    pub fn start(pid: u32) -> Self {
        let peak_is_windowed = reset_peak(pid);
        Self {
            pid,
            cpu_at_start: cpu_user_system(pid),
            started: Instant::now(),
            peak_is_windowed,
        }
    }

    pub fn finish(&self) -> Option<ProcUsage> {
        let (u0, s0) = self.cpu_at_start?;
        let (u1, s1) = cpu_user_system(self.pid)?;
        let cpu_s = (u1 - u0) + (s1 - s0);
        let wall = self.started.elapsed().as_secs_f64();
        Some(ProcUsage {
            cpu_s,
            system_s: s1 - s0,
            cores: cpu_s / wall,
            peak_rss_mb: status_kb(self.pid, "VmHWM")? as f64 / 1024.0,
            peak_is_windowed: self.peak_is_windowed,
        })
    }
}
