//! Reading `/proc/<pid>/stat`: is a process alive, and is it still the one we started? And
//! ending a whole process tree.

use std::path::Path;

/// The fields of `/proc/<pid>/stat` berth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z`, `T`, ...
    pub state: char,
    pub ppid: i32,
    /// Start time in clock ticks since boot: with the pid, it names a process uniquely.
    pub start_time: u64,
}

/// Parse the text of a stat file. The command name may contain spaces and parentheses, so the
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); start time is field 22
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// The stat of `pid` under the proc mount `proc_root`, or `None` if there is no such process.
pub fn stat_at(proc_root: &Path, pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&text)
}

/// The stat of `pid` on this host.
pub fn stat(pid: i32) -> Option<Stat> {
    stat_at(Path::new("/proc"), pid)
}

/// True if `pid` runs (not a zombie) and started at `start_time`.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    matches!(stat(pid), Some(s) if s.start_time == start_time && s.state != 'Z' && s.state != 'X')
}

/// The children of every thread of `pid` (`/proc/<pid>/task/*/children`).
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
    }
    out
}

/// `pid` and all its descendants.
pub fn tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut k = 0;
    while k < all.len() {
        for c in children(all[k]) {
            if !all.contains(&c) {
                all.push(c);
            }
        }
        k += 1;
    }
    all
}

/// SIGKILL `pid` and every descendant. The tree is first frozen with SIGSTOP, walked again
/// until no new process appears (a process forking meanwhile is caught by the next walk), and
/// only then killed: killing a parent first would reparent its children out of the walk's
/// reach (to the PID namespace's init). Returns how many processes were killed.
pub fn kill_tree(pid: i32) -> usize {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut seen: Vec<i32> = Vec::new();
    loop {
        let now = tree(pid);
        let mut new = false;
        for p in &now {
            if !seen.contains(p) {
                let _ = kill(Pid::from_raw(*p), Signal::SIGSTOP);
                seen.push(*p);
                new = true;
            }
        }
        let settled = now
            .iter()
            .all(|p| stat(*p).is_none_or(|s| matches!(s.state, 'T' | 't' | 'Z' | 'X')));
        if (!new && settled) || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for p in &seen {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_parens_and_spaces() {
        let t = "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200 18446744073709551615";
        let s = parse_stat(t).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                ppid: 1,
                start_time: 98765
            }
        );
    }

    #[test]
    fn a_forking_tree_is_killed_whole() {
        // a shell whose children fork again: every one of them goes, none is reparented away
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & (sleep 31 & sleep 32) & sleep 33"])
            .spawn()
            .unwrap();
        let pid = sh.id() as i32;
        let t = std::time::Instant::now();
        while tree(pid).len() < 5 && t.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let members = tree(pid);
        assert!(members.len() >= 5, "{members:?}");
        assert_eq!(kill_tree(pid), members.len());
        let _ = sh.wait();
        std::thread::sleep(std::time::Duration::from_millis(50));
        for p in &members[1..] {
            // gone, or a zombie waiting for the init that inherited it
            assert!(
                stat(*p).is_none_or(|s| s.state == 'Z'),
                "{p} still runs: {:?}",
                stat(*p)
            );
        }
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(is_alive(me, s.start_time));
        assert!(!is_alive(me, s.start_time + 1));
    }
}
