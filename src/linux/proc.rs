//! Reading `/proc/<pid>/stat`: is a process alive, and is it still the one we started?

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
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(is_alive(me, s.start_time));
        assert!(!is_alive(me, s.start_time + 1));
    }
}
