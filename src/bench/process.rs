//! What a process has used so far, from Linux's /proc: CPU seconds (user + system, every
//! thread) and resident memory. Read for this process or another (the receiving process).

use super::BenchError;

/// Clock ticks a second of /proc's CPU times (Linux's USER_HZ, 100 on every architecture
/// Linux ships on).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process's CPU time and resident memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    /// User + system CPU seconds since the process started, all threads.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

impl ProcessUsage {
    /// This process's usage.
    pub fn of_self() -> Result<ProcessUsage, BenchError> {
        Self::read("self")
    }

    /// Process `pid`'s usage.
    pub fn of(pid: u32) -> Result<ProcessUsage, BenchError> {
        Self::read(&pid.to_string())
    }

    fn read(pid: &str) -> Result<ProcessUsage, BenchError> {
        let file = |name: &str| {
            let path = format!("/proc/{pid}/{name}");
            std::fs::read_to_string(&path).map_err(BenchError::io(format!("reading {path}")))
        };
        let format = |name: &str| BenchError::Io {
            what: format!("/proc/{pid}/{name}"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected format"),
        };
        let cpu_seconds = cpu_seconds(&file("stat")?).ok_or_else(|| format("stat"))?;
        let rss_bytes = rss_bytes(&file("status")?).ok_or_else(|| format("status"))?;
        Ok(ProcessUsage {
            cpu_seconds,
            rss_bytes,
        })
    }
}

/// User + system CPU seconds from a /proc/PID/stat line (fields 14 and 15; the command
/// name before them is in parentheses and may hold spaces).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// VmRSS from /proc/PID/status, bytes.
fn rss_bytes(status: &str) -> Option<u64> {
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_memory() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_seconds(stat), Some(3.25));
        assert_eq!(cpu_seconds("garbage"), None);
        let status = "Name:\tx\nVmPeak:\t  2000 kB\nVmRSS:\t    1536 kB\n";
        assert_eq!(rss_bytes(status), Some(1536 * 1024));
        assert_eq!(rss_bytes("Name: x\n"), None);
        let me = ProcessUsage::of_self().unwrap();
        assert!(me.rss_bytes > 0);
        assert!(ProcessUsage::of(std::process::id()).unwrap().rss_bytes > 0);
    }
}
