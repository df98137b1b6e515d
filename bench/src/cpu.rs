//! Where the machine's CPU went during a scenario, read from `/proc`: the server
//! process, PostgreSQL, Redis, this load generator, and the whole machine. With every
//! part on the same cores, a decision's cost is the CPU it takes from all of them.
//!
//! PostgreSQL forks a process per connection; a connection closed during the window
//! takes its time along, except that the postmaster collects its children's times
//! when it reaps them (`cutime`, `cstime`), so PostgreSQL's share counts those too.

use std::time::Instant;

/// Linux reports process and machine times in USER_HZ ticks, 100 per second on every
/// architecture's ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks used so far, per part.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    server: u64,
    postgres: u64,
    redis: u64,
    generator: u64,
    busy: u64,
    /// The cores `busy` is summed over.
    cores: u64,
}

/// CPU seconds used by each part between two samples.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub server: f64,
    pub postgres: f64,
    pub redis: f64,
    pub generator: f64,
    /// Every process and the kernel: the machine's non-idle time.
    pub machine: f64,
    /// The share of the machine's cores that was busy.
    pub busy_share: f64,
}

/// The ticks used so far by `server` (when running), PostgreSQL, Redis, this process
/// and the whole machine.
pub fn sample(server: Option<u32>) -> Sample {
    let me = std::process::id();
    let (busy, cores) = machine_busy();
    let mut sample =
        Sample { at: Instant::now(), server: 0, postgres: 0, redis: 0, generator: 0, busy, cores };
    let Ok(entries) = std::fs::read_dir("/proc") else { return sample };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Some((comm, own, children)) = process_ticks(pid) else { continue };
        if Some(pid) == server {
            sample.server += own;
        } else if pid == me {
            sample.generator += own;
        } else if comm == "postgres" {
            sample.postgres += own + children;
        } else if comm == "redis-server" {
            sample.redis += own;
        }
    }
    sample
}

/// Runs `work` and returns its output with what each part used meanwhile.
pub async fn measured<T>(server: Option<u32>, work: impl Future<Output = T>) -> (T, Usage) {
    let started = sample(server);
    let output = work.await;
    (output, sample(server).since(&started))
}

impl Sample {
    /// What each part used from `earlier` to this sample.
    pub fn since(&self, earlier: &Sample) -> Usage {
        let seconds = |later: u64, before: u64| later.saturating_sub(before) as f64 / TICKS_PER_SECOND;
        let cores = self.cores.max(1) as f64;
        let elapsed = self.at.duration_since(earlier.at).as_secs_f64().max(f64::EPSILON);
        let machine = seconds(self.busy, earlier.busy);
        Usage {
            server: seconds(self.server, earlier.server),
            postgres: seconds(self.postgres, earlier.postgres),
            redis: seconds(self.redis, earlier.redis),
            generator: seconds(self.generator, earlier.generator),
            machine,
            busy_share: machine / (elapsed * cores),
        }
    }
}

/// A process's command name, its own ticks (user + system) and its reaped
/// children's, from `/proc/<pid>/stat`.
pub(crate) fn process_ticks(pid: u32) -> Option<(String, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so the fields
    // are counted from the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<u64> =
        stat.get(close + 2..)?.split_whitespace().skip(11).take(4).filter_map(|f| f.parse().ok()).collect();
    match fields.as_slice() {
        [utime, stime, cutime, cstime] => Some((comm, utime + stime, cutime + cstime)),
        _ => None,
    }
}

/// The machine's busy ticks over all its cores (user, nice, system, irq, softirq,
/// steal), and how many cores that is: the `cpuN` lines of the same file.
fn machine_busy() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
    let cores = stat
        .lines()
        .filter(|line| {
            line.strip_prefix("cpu").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count() as u64;
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else { return (0, cores) };
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|tick| tick.parse().ok()).collect();
    ([0, 1, 2, 5, 6, 7].iter().filter_map(|&index| ticks.get(index)).sum(), cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_under_its_executable_name() {
        let (comm, _, _) = process_ticks(std::process::id()).expect("own stat");
        let exe = std::env::current_exe().expect("executable");
        let name = exe.file_name().and_then(|name| name.to_str()).expect("name");
        // The kernel keeps the first 15 bytes of the name.
        assert_eq!(comm, name.chars().take(15).collect::<String>());
    }

    #[test]
    fn the_machine_has_as_many_cores_as_the_scheduler_offers_or_more() {
        let (_, cores) = machine_busy();
        let offered = std::thread::available_parallelism().map_or(1, |cores| cores.get()) as u64;
        assert!(cores >= offered, "{cores} cores in /proc/stat, {offered} offered");
    }

    #[test]
    fn cpu_spent_spinning_shows_as_the_load_generator_and_the_machine() {
        let before = sample(None);
        let started = Instant::now();
        let mut spin = 0u64;
        let usage = loop {
            for _ in 0..1_000_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
            let usage = sample(None).since(&before);
            if usage.generator >= 0.2 {
                break usage;
            }
            assert!(started.elapsed().as_secs() < 60, "spinning never showed: {usage:?}");
        };
        assert!(usage.machine >= usage.generator * 0.5, "{usage:?}");
        assert!(usage.busy_share > 0.0, "{usage:?}");
    }
}
