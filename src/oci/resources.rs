//! `linux.resources` → the cgroup file writes that carry them out, for v1 or v2.
//! Pure: unit-tested here, applied by `linux::cgroup::apply`.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::spec::SpecError;
use crate::linux::cgroup::Write;
use crate::linux::cgroup::devices::{Rule, access_bits};

const FIELD: &str = "linux.resources";

/// Devices every container may use even under a deny-all rule (runc's defaults).
const DEFAULT_ALLOWED: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",    // null
    "c 1:5 rwm",    // zero
    "c 1:7 rwm",    // full
    "c 1:8 rwm",    // random
    "c 1:9 rwm",    // urandom
    "c 5:0 rwm",    // tty
    "c 5:1 rwm",    // console
    "c 5:2 rwm",    // ptmx
    "c 136:* rwm",  // pts
    "c 10:200 rwm", // net/tun
];

/// The cgroup writes for `res` on a v1 (`v2 == false`) or v2 host. `extra_devices` are the
/// `linux.devices` nodes, which are allowed automatically as runc does.
pub fn writes(
    res: &LinuxResources,
    v2: bool,
    extra_devices: &[(char, i64, i64)],
) -> Result<Vec<Write>, SpecError> {
    let mut w = Vec::new();
    memory(res, v2, &mut w)?;
    cpu(res, v2, &mut w)?;
    if let Some(p) = res.pids() {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        w.push(if v2 {
            Write::v2("pids.max", v)
        } else {
            Write::v1("pids", "pids.max", v)
        });
    }
    if !v2 {
        w.extend(
            device_rules(res, extra_devices)?
                .iter()
                .map(|r| r.v1_write()),
        );
    }
    block_io(res, v2, &mut w)?;
    hugetlb(res, v2, &mut w)?;
    if let Some(u) = res.unified() {
        if !u.is_empty() {
            if !v2 {
                return Err(SpecError::new(
                    format!("{FIELD}.unified"),
                    "needs a cgroup v2 host",
                ));
            }
            let mut keys: Vec<_> = u.iter().collect();
            keys.sort();
            for (k, v) in keys {
                if k.contains('/') || k.starts_with('.') || !k.contains('.') {
                    return Err(SpecError::new(
                        format!("{FIELD}.unified.{k}"),
                        "not a cgroup file name",
                    ));
                }
                w.push(Write::v2(k, v));
            }
        }
    }
    Ok(w)
}

/// The device rules of `res` (none if it has none), followed by the devices every container may
/// use and the `linux.devices` nodes, as runc adds them. On v1 they become file writes, on v2
/// an eBPF program.
pub fn device_rules(
    res: &LinuxResources,
    extra_devices: &[(char, i64, i64)],
) -> Result<Vec<Rule>, SpecError> {
    let Some(devs) = res.devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut rules = Vec::new();
    for (i, d) in devs.iter().enumerate() {
        rules.push(device_rule(d).map_err(|m| SpecError::new(format!("{FIELD}.devices[{i}]"), m))?);
    }
    for text in DEFAULT_ALLOWED {
        rules.push(parse_rule(text));
    }
    for (t, major, minor) in extra_devices {
        rules.push(Rule {
            allow: true,
            kind: *t,
            major: Some(*major as u32),
            minor: Some(*minor as u32),
            access: 7,
        });
    }
    Ok(rules)
}

/// A rule written as v1 writes it (`c 1:3 rwm`), for the built-in list.
fn parse_rule(text: &str) -> Rule {
    let mut f = text.split_whitespace();
    let kind = f.next().and_then(|k| k.chars().next()).unwrap_or('a');
    let (maj, min) = f
        .next()
        .and_then(|d| d.split_once(':'))
        .unwrap_or(("*", "*"));
    Rule {
        allow: true,
        kind,
        major: maj.parse().ok(),
        minor: min.parse().ok(),
        access: access_bits(f.next().unwrap_or("rwm")),
    }
}

fn device_rule(d: &LinuxDeviceCgroup) -> Result<Rule, String> {
    let kind = match d.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::P) => return Err("type p is not a cgroup device type".into()),
    };
    let num = |n: Option<i64>| n.filter(|v| *v >= 0).map(|v| v as u32);
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!("access {access:?} must be made of r, w, m"));
    }
    Ok(Rule {
        allow: d.allow(),
        kind,
        major: num(d.major()),
        minor: num(d.minor()),
        access: access_bits(&access),
    })
}

fn memory(res: &LinuxResources, v2: bool, w: &mut Vec<Write>) -> Result<(), SpecError> {
    let Some(m) = res.memory() else { return Ok(()) };
    let f = |k: &str| format!("{FIELD}.memory.{k}");
    let check = |k: &str, v: i64| {
        if v < -1 || v == 0 && k == "limit" {
            Err(SpecError::new(
                f(k),
                format!("{v} is not a valid size (bytes, or -1 for unlimited)"),
            ))
        } else {
            Ok(v)
        }
    };
    let limit = m.limit().map(|v| check("limit", v)).transpose()?;
    let reservation = m
        .reservation()
        .map(|v| check("reservation", v))
        .transpose()?;
    let swap = m.swap().map(|v| check("swap", v)).transpose()?;
    let max = |v: i64| {
        if v == -1 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if v2 {
        if let Some(l) = limit {
            w.push(Write::v2("memory.max", max(l)));
        }
        if let Some(r) = reservation {
            w.push(Write::v2("memory.low", max(r)));
        }
        if let Some(s) = swap {
            // OCI swap is memory+swap; v2 limits swap alone
            let v = match (s, limit) {
                (-1, _) => "max".to_string(),
                (s, Some(l)) if l > 0 && s >= l => (s - l).to_string(),
                (_, Some(-1)) | (_, None) => {
                    return Err(SpecError::new(f("swap"), "needs memory.limit on cgroup v2"));
                }
                (s, Some(l)) => {
                    return Err(SpecError::new(
                        f("swap"),
                        format!("{s} is below memory.limit {l}"),
                    ));
                }
            };
            w.push(Write::v2("memory.swap.max", v));
        }
        if m.swappiness().is_some() {
            return Err(SpecError::new(
                f("swappiness"),
                "has no cgroup v2 equivalent",
            ));
        }
        if m.disable_oom_killer().unwrap_or(false) {
            return Err(SpecError::new(
                f("disableOOMKiller"),
                "has no cgroup v2 equivalent",
            ));
        }
    } else {
        if let Some(l) = limit {
            w.push(Write::v1("memory", "memory.limit_in_bytes", l));
        }
        if let Some(r) = reservation {
            w.push(Write::v1("memory", "memory.soft_limit_in_bytes", r));
        }
        if let Some(s) = swap {
            if let (Some(l), true) = (limit, s != -1) {
                if l != -1 && s < l {
                    return Err(SpecError::new(
                        f("swap"),
                        format!("{s} is below memory.limit {l}"),
                    ));
                }
            }
            w.push(Write::v1("memory", "memory.memsw.limit_in_bytes", s));
        }
        if let Some(sw) = m.swappiness() {
            if sw > 100 {
                return Err(SpecError::new(
                    f("swappiness"),
                    format!("{sw} is above 100"),
                ));
            }
            w.push(Write::v1("memory", "memory.swappiness", sw));
        }
        if m.disable_oom_killer().unwrap_or(false) {
            w.push(Write::v1("memory", "memory.oom_control", 1));
        }
    }
    Ok(())
}

/// runc's conversion of a blkio weight (10..1000) to an io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (w.clamp(10, 1000) as u64 - 10) * 9999 / 990
}

fn block_io(res: &LinuxResources, v2: bool, w: &mut Vec<Write>) -> Result<(), SpecError> {
    let Some(b) = res.block_io() else {
        return Ok(());
    };
    let f = |k: &str| format!("{FIELD}.blockIO.{k}");
    let check = |k: &str, v: u16| {
        if (10..=1000).contains(&v) {
            Ok(v)
        } else {
            Err(SpecError::new(f(k), format!("{v} is outside 10..1000")))
        }
    };
    if let Some(weight) = b.weight() {
        let weight = check("weight", weight)?;
        w.push(if v2 {
            Write::v2(
                "io.weight",
                format!("default {}", blkio_to_io_weight(weight)),
            )
        } else {
            Write::v1("blkio", "blkio.weight", weight)
        });
    }
    if let Some(lw) = b.leaf_weight() {
        if v2 {
            return Err(SpecError::new(
                f("leafWeight"),
                "has no cgroup v2 equivalent",
            ));
        }
        w.push(Write::v1(
            "blkio",
            "blkio.leaf_weight",
            check("leafWeight", lw)?,
        ));
    }
    for (i, d) in b
        .weight_device()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let dev = format!("{}:{}", d.major(), d.minor());
        if let Some(weight) = d.weight() {
            let weight = check(&format!("weightDevice[{i}].weight"), weight)?;
            w.push(if v2 {
                Write::v2("io.weight", format!("{dev} {}", blkio_to_io_weight(weight)))
            } else {
                Write::v1("blkio", "blkio.weight_device", format!("{dev} {weight}"))
            });
        }
        if let Some(lw) = d.leaf_weight() {
            if v2 {
                return Err(SpecError::new(
                    f(&format!("weightDevice[{i}].leafWeight")),
                    "has no cgroup v2 equivalent",
                ));
            }
            w.push(Write::v1(
                "blkio",
                "blkio.leaf_weight_device",
                format!("{dev} {lw}"),
            ));
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    for (_, list, v1_file, v2_key) in throttles {
        for d in list.as_deref().unwrap_or(&[]) {
            let dev = format!("{}:{}", d.major(), d.minor());
            w.push(if v2 {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                Write::v2("io.max", format!("{dev} {v2_key}={rate}"))
            } else {
                Write::v1("blkio", v1_file, format!("{dev} {}", d.rate()))
            });
        }
    }
    Ok(())
}

fn hugetlb(res: &LinuxResources, v2: bool, w: &mut Vec<Write>) -> Result<(), SpecError> {
    for (i, h) in res
        .hugepage_limits()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let size = h.page_size();
        if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SpecError::new(
                format!("{FIELD}.hugepageLimits[{i}].pageSize"),
                format!("{size:?} is not a page size like 2MB"),
            ));
        }
        w.push(if v2 {
            Write::v2(&format!("hugetlb.{size}.max"), h.limit())
        } else {
            Write::v1(
                "hugetlb",
                &format!("hugetlb.{size}.limit_in_bytes"),
                h.limit(),
            )
        });
    }
    Ok(())
}

/// runc's conversion of cpu.shares (2..262144) to cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

fn cpu(res: &LinuxResources, v2: bool, w: &mut Vec<Write>) -> Result<(), SpecError> {
    let Some(c) = res.cpu() else { return Ok(()) };
    let f = |k: &str| format!("{FIELD}.cpu.{k}");
    if let Some(s) = c.shares() {
        if s != 0 && !(2..=262_144).contains(&s) {
            return Err(SpecError::new(
                f("shares"),
                format!("{s} is outside 2..262144"),
            ));
        }
        if s != 0 {
            w.push(if v2 {
                Write::v2("cpu.weight", shares_to_weight(s))
            } else {
                Write::v1("cpu", "cpu.shares", s)
            });
        }
    }
    if let Some(p) = c.period() {
        if !(1000..=1_000_000).contains(&p) {
            return Err(SpecError::new(
                f("period"),
                format!("{p} is outside 1000..1000000 µs"),
            ));
        }
    }
    if let Some(q) = c.quota() {
        if q != -1 && q < 1000 {
            return Err(SpecError::new(
                f("quota"),
                format!("{q} is below 1000 µs (or -1)"),
            ));
        }
    }
    if v2 {
        if c.quota().is_some() || c.period().is_some() {
            let quota = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            let period = c.period().unwrap_or(100_000);
            w.push(Write::v2("cpu.max", format!("{quota} {period}")));
        }
    } else {
        // period first: the kernel checks quota against the current period
        if let Some(p) = c.period() {
            w.push(Write::v1("cpu", "cpu.cfs_period_us", p));
        }
        if let Some(q) = c.quota() {
            w.push(Write::v1("cpu", "cpu.cfs_quota_us", q));
        }
    }
    if let Some(b) = c.burst() {
        w.push(if v2 {
            Write::v2("cpu.max.burst", b)
        } else {
            Write::v1("cpu", "cpu.cfs_burst_us", b)
        });
    }
    if let Some(idle) = c.idle() {
        if idle != 0 && idle != 1 {
            return Err(SpecError::new(f("idle"), format!("{idle} must be 0 or 1")));
        }
        w.push(if v2 {
            Write::v2("cpu.idle", idle)
        } else {
            Write::v1("cpu", "cpu.idle", idle)
        });
    }
    if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
        if v2 {
            return Err(SpecError::new(
                f("realtimeRuntime"),
                "cgroup v2 has no realtime group scheduling",
            ));
        }
        // period first: the runtime must fit in it
        if let Some(p) = c.realtime_period() {
            w.push(Write::v1("cpu", "cpu.rt_period_us", p));
        }
        if let Some(r) = c.realtime_runtime() {
            w.push(Write::v1("cpu", "cpu.rt_runtime_us", r));
        }
    }
    for (name, val) in [("cpus", c.cpus()), ("mems", c.mems())] {
        if let Some(v) = val {
            if !v.is_empty() {
                if !v
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ch == ',' || ch == '-')
                {
                    return Err(SpecError::new(
                        f(name),
                        format!("{v:?} is not a list like 0-2,4"),
                    ));
                }
                let file = if name == "cpus" {
                    "cpuset.cpus"
                } else {
                    "cpuset.mems"
                };
                w.push(if v2 {
                    Write::v2(file, v)
                } else {
                    Write::v1("cpuset", file, v)
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v1_memory_cpu_pids() {
        let r = res(
            r#"{"memory":{"limit":104857600,"reservation":52428800},"cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"},"pids":{"limit":64}}"#,
        );
        let w = writes(&r, false, &[]).unwrap();
        let got: Vec<(String, String)> = w
            .iter()
            .map(|w| (w.file.clone(), w.value.clone()))
            .collect();
        let want: Vec<(String, String)> = [
            ("memory.limit_in_bytes", "104857600"),
            ("memory.soft_limit_in_bytes", "52428800"),
            ("cpu.shares", "512"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000"),
            ("cpuset.cpus", "0"),
            ("pids.max", "64"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn v2_conversions() {
        let r = res(
            r#"{"memory":{"limit":1000000,"swap":3000000},"cpu":{"shares":1024,"quota":-1},"pids":{"limit":0}}"#,
        );
        let w = writes(&r, true, &[]).unwrap();
        let got: Vec<(&str, &str)> = w
            .iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("memory.max", "1000000"),
                ("memory.swap.max", "2000000"),
                ("cpu.weight", "39"),
                ("cpu.max", "max 100000"),
                ("pids.max", "max"),
            ]
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = writes(&res(r#"{"memory":{"limit":-5}}"#), false, &[]).unwrap_err();
        assert_eq!(e.field, "linux.resources.memory.limit");
        let e = writes(&res(r#"{"cpu":{"cpus":"zero"}}"#), true, &[]).unwrap_err();
        assert_eq!(e.field, "linux.resources.cpu.cpus");
        let e =
            device_rules(&res(r#"{"devices":[{"allow":false,"access":"rwx"}]}"#), &[]).unwrap_err();
        assert_eq!(e.field, "linux.resources.devices[0]");
        // on v2 the rules are no file writes (they become an eBPF program)
        assert!(
            writes(
                &res(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#),
                true,
                &[]
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn v1_device_rules_keep_defaults_usable() {
        let w = writes(
            &res(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#),
            false,
            &[('c', 10, 229)],
        )
        .unwrap();
        assert_eq!(
            (w[0].file.as_str(), w[0].value.as_str()),
            ("devices.deny", "a")
        );
        assert!(w.iter().any(|w| w.value == "c 1:3 rwm"));
        assert_eq!(w.last().unwrap().value, "c 10:229 rwm");
    }
}
