//! Making what berth records match the kernel again after a crash: creations and removals a
//! killed process left half done (`<root>/inflight/`, see `inflight.rs`), pods whose monitor
//! and keeper were both killed, and pods whose network is gone.

use std::fs;
use std::time::{Duration, Instant};

use super::abandoned;
use crate::pod::error::Result;
use crate::pod::net::{cni, netns};
use crate::pod::store::{self, ContainerState, PodDir, PodRecord, PodState, read_json, write_json};
use crate::pod::{Runtime, monitor};

impl Runtime {
    /// Everything a restarted daemon does before serving: what [`Runtime::repair`] does, pods
    /// made by older berths half-way, dead monitors, networks that are gone. Returns what it
    /// changed, one line each.
    pub fn recover(&self) -> Vec<String> {
        let mut done = self.repair();
        // markers of berths before `<root>/inflight/`
        for id in self.store.pod_ids() {
            let dir = self.pod_dir(&id);
            if abandoned(&dir.creating()) || (!dir.record().exists() && !dir.creating().exists()) {
                self.rollback_pod(&dir);
                self.release_names(&id);
                done.push(format!("rolled back the unfinished creation of pod {id}"));
            }
        }
        for rec in self.list_pods().unwrap_or_default() {
            // reading a pod replaces a lost monitor
            let had = monitor::pid(&self.pod_dir(&rec.id));
            if self.status_of(rec.clone()).is_ok() && had.is_none() && rec.state == PodState::Ready
            {
                done.push(format!("pod {}: its monitor was gone; replaced", rec.id));
            }
            if let Some(why) = self.network_lost(&rec) {
                let mut r = rec.clone();
                r.state = PodState::NotReady;
                if write_json(&self.pod_dir(&rec.id).record(), &r).is_ok() {
                    done.push(format!("pod {}: NotReady: {why}", rec.id));
                }
            }
        }
        done
    }

    /// Why a Ready pod's network is not what its record says (None: it is, or it has none).
    fn network_lost(&self, rec: &PodRecord) -> Option<String> {
        if rec.state != PodState::Ready || rec.config.host_network {
            return None;
        }
        let dir = self.pod_dir(&rec.id);
        if netns::path(&dir.0, "net")
            .and_then(|p| netns::inode(&p))
            .is_none()
        {
            return Some("its network namespace is gone".into());
        }
        let Ok(cached) = read_json::<cni::Cached>(&dir.network()) else {
            return Some("its network was taken down".into());
        };
        // the host side of its interfaces (a veth): the result's interfaces with no sandbox
        let host_ifs = cached.result["interfaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for i in host_ifs {
            let name = i["name"].as_str().unwrap_or("");
            if i.get("sandbox").is_none()
                && name.starts_with("veth")
                && !std::path::Path::new("/sys/class/net").join(name).exists()
            {
                return Some(format!("its interface {name} is gone"));
            }
        }
        None
    }

    /// A pod whose monitor and keeper were killed together: its running containers are killed
    /// and reported Unknown with exit code 255 (as containerd does when a shim dies), and a new
    /// monitor takes the pod over (a supervised pod's restart policy applies again). With its
    /// keeper alive a replacement is on its way: wait for it. Returns whether it acted.
    pub(crate) fn replace_lost_monitor(&self, rec: &PodRecord) -> Result<bool> {
        let dir = self.pod_dir(&rec.id);
        if dir.removing().exists() || !dir.record().exists() {
            return Ok(false);
        }
        // a pod being made gets its first monitor from its creator
        if self.in_flight().iter().any(|op| op.concerns(&rec.id)) {
            return Ok(false);
        }
        if monitor::keeper_pid(&dir).is_some() {
            let t = Instant::now();
            while monitor::pid(&dir).is_none() && t.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Ok(false);
        }
        // one repair at a time; the others wait for it and find the pod whole
        let lock = fs::File::create(dir.0.join("repair.lock"))
            .map_err(crate::pod::error::io("lock the pod for its repair"))?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| crate::pod::error::sys("lock the pod for its repair")(e))?;
        if monitor::pid(&dir).is_some() || monitor::keeper_pid(&dir).is_some() {
            return Ok(false);
        }
        for id in dir.container_ids() {
            let cdir = dir.container(&id);
            let Ok(crec) = store::read_record::<store::ContainerRecord>(&cdir.record()) else {
                continue;
            };
            let Ok(mut s) = cdir.read_status(&crec.created) else {
                continue;
            };
            if s.state != ContainerState::Running {
                continue;
            }
            let message = if super::init_running(s.pid, s.pid_start) {
                kill_all(&crec.cgroup);
                "its pod monitor and keeper were killed: berth killed the container"
            } else {
                "its pod monitor and keeper were killed: its exit code is lost"
            };
            s.state = ContainerState::Exited;
            s.exit_code = Some(255);
            s.reason = Some("Unknown".into());
            s.message = Some(message.into());
            s.finished_at = Some(store::now());
            write_json(&cdir.status(), &s)?;
        }
        monitor::spawn(&self.opts.berth_binary, &dir)?;
        Ok(true)
    }

    /// Undo every step of a pod's creation that may have happened (each tolerates absence).
    pub(crate) fn rollback_pod(&self, dir: &PodDir) {
        monitor::stop(dir);
        for f in [dir.network(), dir.network_pending()] {
            if let Ok(c) = read_json::<cni::Cached>(&f) {
                let _ = cni::del(&self.opts.cni, &c);
            }
        }
        let _ = netns::remove(&dir.0);
        let id = dir
            .0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = crate::pod::cgroup::remove_created(&self.pod_cgroup_created(&id));
        self.unmount_below(&dir.0);
        let _ = crate::volume::Volumes::new(&self.opts.data_root).release_pod(&id);
        let _ = fs::remove_dir_all(&dir.0);
    }
}

/// SIGKILL every process of a cgroup and wait (briefly) until it is empty.
fn kill_all(cgroup: &str) {
    let t = Instant::now();
    loop {
        let procs = crate::pod::cgroup::procs(cgroup);
        if procs.is_empty() || t.elapsed() > Duration::from_secs(5) {
            return;
        }
        for p in procs {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
