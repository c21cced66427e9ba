//! Resource usage read back from a container's cgroup, in runc's `events --stats` JSON shape.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::Dirs;

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

/// CFS throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// One memory counter set (bytes). `limit` is u64::MAX when unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    /// memory.stat, as the kernel names its fields.
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pids {
    pub current: u64,
    /// 0 when unlimited.
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// A container's resource usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
}

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file).map(|s| parse_limit(&s)).unwrap_or(0)
}

/// A cgroup number; `max` (v2) is u64::MAX.
pub fn parse_limit(s: &str) -> u64 {
    let s = s.trim();
    if s == "max" {
        u64::MAX
    } else {
        s.parse().unwrap_or(0)
    }
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
pub fn parse_flat_keyed(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// v1 `blkio.*_recursive` lines: `8:0 Read 4096`.
pub fn parse_blkio_v1(s: &str) -> Vec<BlkioEntry> {
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: f.get(1)?.to_string(),
                value: f.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// v2 `io.stat` lines: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` → (bytes, ios) entries.
pub fn parse_io_stat_v2(s: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for l in s.lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    (bytes, ios)
}

/// Read the usage of the cgroup `dirs`.
pub fn read_stats(dirs: &Dirs) -> Stats {
    match dirs {
        Dirs::V2(d) => stats_v2(d),
        Dirs::V1(_) => stats_v1(dirs),
    }
}

fn stats_v2(d: &Path) -> Stats {
    let mut s = Stats::default();
    let cpu = read(d, "cpu.stat")
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    s.cpu.usage = CpuUsage {
        total: us("usage_usec"),
        percpu: Vec::new(),
        kernel: us("system_usec"),
        user: us("user_usec"),
    };
    s.cpu.throttling = Throttling {
        periods: cpu.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: us("throttled_usec"),
    };
    let events = read(d, "memory.events")
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    s.memory.usage = MemoryEntry {
        limit: num(d, "memory.max"),
        usage: num(d, "memory.current"),
        max: num(d, "memory.peak"),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    s.memory.swap = MemoryEntry {
        limit: num(d, "memory.swap.max"),
        usage: num(d, "memory.swap.current"),
        max: num(d, "memory.swap.peak"),
        failcnt: 0,
    };
    s.memory.raw = read(d, "memory.stat")
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    s.pids = Pids {
        current: num(d, "pids.current"),
        limit: match num(d, "pids.max") {
            u64::MAX => 0,
            n => n,
        },
    };
    let (bytes, ios) = read(d, "io.stat")
        .map(|t| parse_io_stat_v2(&t))
        .unwrap_or_default();
    s.blkio = Blkio {
        io_service_bytes_recursive: bytes,
        io_serviced_recursive: ios,
    };
    s
}

fn stats_v1(dirs: &Dirs) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = dirs.v1_dir("cpuacct") {
        let ticks = crate::linux::sys::clock_ticks();
        let st = read(d, "cpuacct.stat")
            .map(|t| parse_flat_keyed(&t))
            .unwrap_or_default();
        let ns = |k: &str| st.get(k).copied().unwrap_or(0) * 1_000_000_000 / ticks;
        s.cpu.usage = CpuUsage {
            total: num(d, "cpuacct.usage"),
            percpu: read(d, "cpuacct.usage_percpu")
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            kernel: ns("system"),
            user: ns("user"),
        };
    }
    if let Some(d) = dirs.v1_dir("cpu") {
        let st = read(d, "cpu.stat")
            .map(|t| parse_flat_keyed(&t))
            .unwrap_or_default();
        s.cpu.throttling = Throttling {
            periods: st.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: st.get("throttled_time").copied().unwrap_or(0),
        };
    }
    if let Some(d) = dirs.v1_dir("memory") {
        let entry = |prefix: &str| MemoryEntry {
            limit: num(d, &format!("{prefix}.limit_in_bytes")),
            usage: num(d, &format!("{prefix}.usage_in_bytes")),
            max: num(d, &format!("{prefix}.max_usage_in_bytes")),
            failcnt: num(d, &format!("{prefix}.failcnt")),
        };
        s.memory.usage = entry("memory");
        s.memory.swap = entry("memory.memsw");
        s.memory.raw = read(d, "memory.stat")
            .map(|t| parse_flat_keyed(&t))
            .unwrap_or_default();
        s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
    }
    if let Some(d) = dirs.v1_dir("pids") {
        s.pids = Pids {
            current: num(d, "pids.current"),
            limit: match num(d, "pids.max") {
                u64::MAX => 0,
                n => n,
            },
        };
    }
    if let Some(d) = dirs.v1_dir("blkio") {
        s.blkio = Blkio {
            io_service_bytes_recursive: read(d, "blkio.throttle.io_service_bytes_recursive")
                .map(|t| parse_blkio_v1(&t))
                .unwrap_or_default(),
            io_serviced_recursive: read(d, "blkio.throttle.io_serviced_recursive")
                .map(|t| parse_blkio_v1(&t))
                .unwrap_or_default(),
        };
    }
    s
}

/// The OOM-kill counter of the cgroup (for `events` to notice new OOM kills).
pub fn oom_kills(dirs: &Dirs) -> u64 {
    let (dir, file, key) = match dirs {
        Dirs::V2(d) => (Some(d.as_path()), "memory.events", "oom_kill"),
        Dirs::V1(_) => (dirs.v1_dir("memory"), "memory.oom_control", "oom_kill"),
    };
    dir.and_then(|d| read(d, file))
        .map(|t| parse_flat_keyed(&t))
        .and_then(|m| m.get(key).copied())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_limit("max\n"), u64::MAX);
        assert_eq!(parse_limit("42\n"), 42);
        let m = parse_flat_keyed("usage_usec 10\nuser_usec 7\nbad\n");
        assert_eq!(m["usage_usec"], 10);
        assert_eq!(m.len(), 2);
        let b = parse_blkio_v1("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].major, b[0].minor, b[0].op.as_str(), b[0].value),
            (8, 0, "Read", 4096)
        );
        let (bytes, ios) = parse_io_stat_v2("254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0\n");
        assert_eq!(
            bytes.iter().map(|e| e.value).collect::<Vec<_>>(),
            vec![10, 20]
        );
        assert_eq!(ios[1].op, "Write");
    }
}
