//! `update`: change a running container's cgroup limits, from a resources JSON (as in
//! config.json's `linux.resources`) and runc's flags.

use oci_spec::runtime::LinuxResources;

use super::error::{Error, Result};
use super::resources;
use super::spec::SpecError;
use super::state::{Status, Store};
use crate::linux::cgroup::{self, Dirs};

/// Apply `res` to the container's cgroup.
pub fn update(store: &Store, id: &str, res: &LinuxResources) -> Result<()> {
    let (locked, rec) = store.open(id, true)?;
    let status = locked.status(&rec);
    if status == Status::Stopped {
        return Err(Error::State {
            id: id.to_string(),
            status,
            what: "cannot update a stopped container",
        });
    }
    let v2 = matches!(rec.cgroup, Dirs::V2(_));
    if v2 && res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        // another attached program could only narrow access, never widen it
        return Err(Error::Invalid(
            "updating device rules on cgroup v2 is not supported".into(),
        ));
    }
    let mut writes = resources::writes(res, v2, &[]).map_err(|err| Error::Spec {
        file: "resources".into(),
        err,
    })?;
    order_v1_memory(&rec.cgroup, &mut writes);
    cgroup::apply(&rec.cgroup, &writes)?;
    Ok(())
}

/// v1 requires memory.memsw.limit >= memory.limit at all times: when raising the limit above
/// the current memsw limit, memsw goes first.
fn order_v1_memory(dirs: &Dirs, writes: &mut [cgroup::Write]) {
    let pos = |f: &str| writes.iter().position(|w| w.file == f);
    let (Some(l), Some(s)) = (
        pos("memory.limit_in_bytes"),
        pos("memory.memsw.limit_in_bytes"),
    ) else {
        return;
    };
    let current_swap = dirs
        .v1_dir("memory")
        .and_then(|d| std::fs::read_to_string(d.join("memory.memsw.limit_in_bytes")).ok())
        .map(|s| cgroup::stats::parse_limit(&s))
        .unwrap_or(u64::MAX);
    let new_limit = writes[l]
        .value
        .parse::<i64>()
        .map(|v| if v < 0 { u64::MAX } else { v as u64 });
    if new_limit.is_ok_and(|n| n > current_swap) && l < s {
        writes.swap(l, s);
    }
}

/// Parse a size as runc's flags take it: bytes, or a number with k, m, g, t (binary units,
/// optional trailing b), or -1 for unlimited.
pub fn parse_size(flag: &str, s: &str) -> std::result::Result<i64, SpecError> {
    let bad = || {
        SpecError::new(
            flag,
            format!("{s:?} is not a size (like 512m, 1g, 1048576 or -1)"),
        )
    };
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = digits.parse().map_err(|_| bad())?;
    if n < 0.0 {
        return Err(bad());
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("--memory", "512m"), Ok(512 << 20));
        assert_eq!(parse_size("--memory", "1G"), Ok(1 << 30));
        assert_eq!(parse_size("--memory", "1.5gb"), Ok(3 << 29));
        assert_eq!(parse_size("--memory", "4096"), Ok(4096));
        assert_eq!(parse_size("--memory", "-1"), Ok(-1));
        assert_eq!(
            parse_size("--memory", "lots").unwrap_err().field,
            "--memory"
        );
    }
}
