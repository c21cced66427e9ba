//! cgroup usage and interface counters → CRI stats.

use k8s_cri::v1 as cri;

use super::*;
use crate::pod::ContainerInfo;

fn u64v(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

pub fn cpu(s: &crate::linux::cgroup::stats::Stats, ts: i64) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: ts,
        usage_core_nano_seconds: u64v(s.cpu.usage.total),
        usage_nano_cores: None,
    }
}

pub fn memory(s: &crate::linux::cgroup::stats::Stats, ts: i64) -> cri::MemoryUsage {
    let m = &s.memory;
    let raw = |k: &str| m.raw.get(k).copied();
    // the working set as kubelet and cAdvisor count it: usage minus inactive file pages
    let inactive = raw("total_inactive_file")
        .or(raw("inactive_file"))
        .unwrap_or(0);
    let rss = raw("total_rss").or(raw("rss")).or(raw("anon")).unwrap_or(0);
    let available = (m.usage.limit != u64::MAX && m.usage.limit > 0 && m.usage.limit < 1 << 62)
        .then(|| {
            m.usage
                .limit
                .saturating_sub(m.usage.usage.saturating_sub(inactive))
        });
    cri::MemoryUsage {
        timestamp: ts,
        working_set_bytes: u64v(m.usage.usage.saturating_sub(inactive)),
        available_bytes: available.and_then(u64v),
        usage_bytes: u64v(m.usage.usage),
        rss_bytes: u64v(rss),
        page_faults: raw("total_pgfault").or(raw("pgfault")).and_then(u64v),
        major_page_faults: raw("total_pgmajfault").or(raw("pgmajfault")).and_then(u64v),
    }
}

pub fn container_stats(
    c: &ContainerInfo,
    s: &crate::linux::cgroup::stats::Stats,
) -> cri::ContainerStats {
    let ts = now_nanos();
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: c.record.id.clone(),
            metadata: Some(container_metadata(c)),
            labels: map(&c.record.config.labels),
            annotations: map(&c.record.config.annotations),
        }),
        cpu: Some(cpu(s, ts)),
        memory: Some(memory(s, ts)),
        writable_layer: None,
        swap: None,
    }
}

/// Interface counters of `/proc/<pid>/net/dev` (a process in the pod's network namespace).
pub fn network(pid: i32) -> Option<cri::NetworkUsage> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let mut ifs = Vec::new();
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let n: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if n.len() < 16 {
            continue;
        }
        ifs.push(cri::NetworkInterfaceUsage {
            name: name.to_string(),
            rx_bytes: u64v(n[0]),
            rx_errors: u64v(n[2]),
            tx_bytes: u64v(n[8]),
            tx_errors: u64v(n[10]),
        });
    }
    Some(cri::NetworkUsage {
        timestamp: now_nanos(),
        default_interface: ifs
            .iter()
            .find(|i| i.name == "eth0")
            .or(ifs.first())
            .cloned(),
        interfaces: ifs,
    })
}
