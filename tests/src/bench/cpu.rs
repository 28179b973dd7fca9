//! CPU time that server processes spent during a run, from `/proc/<pid>/stat` (Linux only).

use serde::Serialize;

use super::record::round3;

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// utime and stime, the 14th and 15th fields of `/proc/<pid>/stat`, in clock ticks. Fields are
/// counted after the command name, which is in parentheses and may hold spaces and parentheses
/// itself: the 3rd field (the state) is the first one after the last `)`.
pub fn parse_stat(stat: &str) -> Result<u64, String> {
    let close = stat.rfind(')').ok_or("no `)` after the command name")?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64, String> {
        let text = fields.get(n - 3).ok_or(format!("field {n} is missing"))?;
        text.parse()
            .map_err(|_| format!("field {n} is {text:?}, not a tick count"))
    };
    Ok(field(14)? + field(15)?)
}

/// The CPU ticks `pids` have used so far, summed.
pub fn ticks(pids: &[u32]) -> Result<u64, String> {
    pids.iter().try_fold(0, |sum, pid| {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        parse_stat(&stat).map(|t| sum + t).map_err(|e| format!("{path}: {e}"))
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// CPU used by the server processes between two samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerCpu {
    pub pids: Vec<u32>,
    pub seconds: f64,
    /// CPU milliseconds per completed operation (for watch: per event delivered).
    pub ms_per_op: Option<f64>,
    pub ticks_per_second: u64,
}

impl ServerCpu {
    pub fn new(pids: &[u32], before: u64, after: u64, ticks_per_second: u64, ops: u64) -> Self {
        let seconds = after.saturating_sub(before) as f64 / ticks_per_second.max(1) as f64;
        Self {
            pids: pids.to_vec(),
            seconds: round3(seconds),
            ms_per_op: (ops > 0).then(|| round6(seconds * 1000.0 / ops as f64)),
            ticks_per_second,
        }
    }
}

/// Samples the servers' CPU before a run; [`CpuMeter::stop`] gives the difference.
pub struct CpuMeter {
    pids: Vec<u32>,
    before: Result<u64, String>,
}

impl CpuMeter {
    pub fn start(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            before: ticks(pids),
        }
    }

    /// `None` when no pids were given; an error when a process could not be read (it exited).
    pub fn stop(self, ops: u64) -> Option<Result<ServerCpu, String>> {
        if self.pids.is_empty() {
            return None;
        }
        let result = self.before.and_then(|before| {
            let after = ticks(&self.pids)?;
            Ok(ServerCpu::new(&self.pids, before, after, ticks_per_second(), ops))
        });
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line from an etcd process, with a command name made awkward on purpose.
    const STAT: &str = "4242 (etcd (a) b) S 1 4242 4242 0 -1 4194560 25014 0 0 0 1234 567 0 0 20 0 \
                        12 0 98765 11627536384 12345 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 \
                        0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";

    #[test]
    fn reads_utime_plus_stime() {
        assert_eq!(parse_stat(STAT), Ok(1234 + 567));
        assert_eq!(parse_stat("7 (cairn) R 1 7 7 0 -1 0 0 0 0 0 10 5 0 0"), Ok(15));
    }

    #[test]
    fn rejects_truncated_or_garbled_lines() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("7 (cairn) R 1 7 7").is_err());
        assert!(parse_stat("7 (cairn) R 1 7 7 0 -1 0 0 0 0 0 x 5").is_err());
    }

    #[test]
    fn delta_in_seconds_and_ms_per_op() {
        let cpu = ServerCpu::new(&[1, 2, 3], 1000, 1250, 100, 5000);
        assert_eq!(cpu.seconds, 2.5);
        assert_eq!(cpu.ms_per_op, Some(0.5));
        assert_eq!(ServerCpu::new(&[1], 10, 10, 100, 0).ms_per_op, None, "no ops, no ratio");
    }

    #[test]
    fn measures_this_process() {
        let me = std::process::id();
        let meter = CpuMeter::start(&[me]);
        let before = ticks(&[me]).expect("own stat is readable");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while ticks(&[me]).expect("own stat is readable") < before + 3 && std::time::Instant::now() < deadline {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let cpu = meter.stop(1).expect("pids were given").expect("own stat is readable");
        assert!(cpu.seconds >= 0.03, "busy work shows as CPU time: {cpu:?}");
        assert_eq!(cpu.pids, [me]);
        assert!(CpuMeter::start(&[]).stop(1).is_none());
        assert!(CpuMeter::start(&[u32::MAX]).stop(1).expect("pids were given").is_err());
        assert_eq!(ticks_per_second(), 100);
    }
}
