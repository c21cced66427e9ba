//! RunPodSandbox: a pod's name reserved, its directory, pinned namespaces, cgroup, /dev/shm,
//! volumes and /etc files, its network (CNI ADD, in a thread beside the other steps), its
//! record and its monitor. Each acquired resource pushes its undo; a failure rolls them back.

use std::fs;
use std::path::Path;

use crate::pod::config::{DnsConfig, PodConfig, VolumeSource};
use crate::pod::error::{Error, Result, io};
use crate::pod::inflight::Op;
use crate::pod::net::{self, cni, netns};
use crate::pod::store::{self, PodDir, PodRecord, PodState, write_json};
use crate::pod::{Runtime, cgroup, monitor};
use crate::undo::Undo;

impl Runtime {
    /// Create a pod: namespaces, cgroup, files, volumes, network, monitor. `supervised`: the
    /// monitor runs init containers and restarts (CLI pods); otherwise the caller drives.
    pub fn run_pod_sandbox(&self, cfg: &PodConfig, supervised: bool) -> Result<String> {
        let id = store::new_id();
        // in flight until done: if this process is killed, the next berth rolls it back
        let marker = self.begin(&Op::CreatePod(id.clone()))?;
        let r = self.create_sandbox(&id, cfg, supervised);
        marker.done();
        r
    }

    /// The sandbox `id`'s creation, under a marker its caller holds (`pod run` holds one over
    /// the whole pod, containers included).
    pub(crate) fn create_sandbox(
        &self,
        id: &str,
        cfg: &PodConfig,
        supervised: bool,
    ) -> Result<String> {
        let mut cfg = cfg.clone();
        let given_uid = !cfg.uid.is_empty();
        if !given_uid {
            cfg.uid = store::new_uid();
        }
        if cfg.namespace.is_empty() {
            cfg.namespace = "default".into();
        }
        // CLI pods (no uid given) reserve namespace/name; the CRI's reserve
        // namespace/name/uid/attempt, as kubelet makes a new attempt beside the old.
        let (key, what) = if given_uid {
            (
                format!(
                    "pod_{}_{}_{}_{}",
                    cfg.namespace, cfg.name, cfg.uid, cfg.attempt
                ),
                format!(
                    "pod {}/{} (uid {}, attempt {})",
                    cfg.namespace, cfg.name, cfg.uid, cfg.attempt
                ),
            )
        } else {
            (
                format!("pod_{}_{}", cfg.namespace, cfg.name),
                format!("pod {}/{}", cfg.namespace, cfg.name),
            )
        };
        let id = id.to_string();
        let mut undo = Undo::new();
        let made = self.reserve_name(&key, &what, &id).and_then(|reservation| {
            undo.push("release the pod's name", move || {
                fs::remove_file(&reservation).map_err(|e| e.to_string())
            });
            let ports = self.reserve_host_ports(&id, &cfg.port_mappings)?;
            undo.push("release the pod's host ports", move || {
                ports.iter().for_each(|p| {
                    let _ = fs::remove_file(p);
                });
                Ok(())
            });
            crate::fault::point("pod-create:named");
            self.sandbox_steps(&id, &self.pod_dir(&id), &mut cfg, supervised, &mut undo)
        });
        match made {
            Ok(()) => {
                undo.commit();
                Ok(id)
            }
            Err(e) => {
                let failed = undo.rollback();
                Err(e.with_rollback(failed))
            }
        }
    }

    fn sandbox_steps(
        &self,
        id: &str,
        dir: &PodDir,
        cfg: &mut PodConfig,
        supervised: bool,
        undo: &mut Undo,
    ) -> Result<()> {
        let pods = self.store.pods();
        fs::create_dir_all(&pods).map_err(io(format!("create {}", pods.display())))?;
        fs::create_dir(&dir.0).map_err(io(format!("create {}", dir.0.display())))?;
        let d = dir.0.clone();
        undo.push(format!("remove {}", d.display()), move || {
            fs::remove_dir_all(&d).map_err(|e| e.to_string())
        });
        for d in [dir.containers(), dir.volumes(), dir.shm()] {
            fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
        }
        // 0. its claims' volumes (admission, attach): their paths go into the record
        self.attach_claims(id, dir, cfg, undo)?;
        let cfg = &*cfg;
        // 1. namespaces
        let hostname = crate::pod::spec::pod_hostname(cfg);
        let spec = netns::NsSpec {
            host_network: cfg.host_network,
            host_ipc: cfg.host_ipc,
            hostname: hostname.clone(),
            sysctls: cfg
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let d = dir.0.clone();
        undo.push("unpin the pod's namespaces", move || {
            netns::remove(&d).map_err(|e| e.to_string())
        });
        netns::create(&dir.0, &spec)?;
        crate::fault::point("pod-create:namespaces");
        // 2. the network, in a thread of its own: the CNI plugins are most of a pod's start
        //    on a bridge, and the steps up to the monitor do not need the pod's address
        std::thread::scope(|scope| {
            let network = (!cfg.host_network)
                .then(|| scope.spawn(|| net::attach(&self.opts.cni, id, dir, cfg)));
            let local = self.sandbox_local_steps(id, dir, cfg, &hostname, supervised, undo);
            // joined, and its undo recorded, whatever the other steps did
            let cached = network
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Internal("the CNI thread panicked".into())))
                })
                .transpose();
            crate::fault::point("pod-create:network");
            if let Ok(Some(c)) = &cached {
                let (paths, c) = (self.opts.cni.clone(), c.clone());
                undo.push("take the pod's network down (CNI DEL)", move || {
                    cni::del(&paths, &c).map_err(|e| e.to_string())
                });
            }
            let mut rec = local?;
            rec.ips = cached?.map(|c| c.ips()).unwrap_or_default();
            finish(dir, &hostname, rec)
        })
    }

    /// The sandbox's steps that do not need its network: cgroup, files, volumes, the record
    /// (not ready yet) and the monitor.
    fn sandbox_local_steps(
        &self,
        id: &str,
        dir: &PodDir,
        cfg: &PodConfig,
        hostname: &str,
        supervised: bool,
        undo: &mut Undo,
    ) -> Result<PodRecord> {
        let parent = cfg
            .cgroup_parent
            .as_deref()
            .unwrap_or(&self.opts.cgroup_parent);
        let cg = cgroup::pod_path(Some(parent), id);
        let created = cgroup::create(&cg, cfg.resources.as_ref())?;
        let text: String = created
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect();
        let (c, made) = (cg.clone(), created.clone());
        undo.push("remove the pod's cgroup", move || {
            cgroup::remove(&c, &made).map_err(|e| e.to_string())
        });
        fs::write(dir.cgroup_created(), text).map_err(io("record the pod's cgroup"))?;
        crate::fault::point("pod-create:cgroup");
        // /dev/shm and volumes
        mount_tmpfs(
            &dir.shm(),
            "shm",
            "mode=1777,size=65536k",
            true,
            "the pod's /dev/shm",
            undo,
        )?;
        for v in &cfg.volumes {
            match &v.source {
                VolumeSource::EmptyDir { memory, size_limit } => {
                    let p = dir.volume(&v.name);
                    fs::create_dir_all(&p).map_err(io(format!("create volume {}", v.name)))?;
                    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                        .ok();
                    if *memory {
                        let size = size_limit.map(|s| format!(",size={s}")).unwrap_or_default();
                        let what = format!("tmpfs for volume {}", v.name);
                        mount_tmpfs(&p, "tmpfs", &format!("mode=0777{size}"), false, &what, undo)?;
                    }
                }
                // its files are written before the first container is made (they may name
                // the pod's containers), and rewritten when a source changes
                VolumeSource::Projected { tmpfs, .. } => {
                    let p = dir.volume(&v.name);
                    fs::create_dir_all(&p).map_err(io(format!("create volume {}", v.name)))?;
                    if *tmpfs {
                        let what = format!("tmpfs for volume {}", v.name);
                        mount_tmpfs(&p, "tmpfs", "mode=0755", false, &what, undo)?;
                    }
                }
                VolumeSource::HostPath { path, kind } => host_path(path, kind, &v.name)?,
                // attached before these steps (create_sandbox)
                VolumeSource::Claim { .. } => {}
            }
        }
        fs::write(dir.etc_file("hostname"), format!("{hostname}\n"))
            .map_err(io("write hostname"))?;
        fs::write(dir.etc_file("resolv.conf"), resolv_conf(cfg.dns.as_ref()))
            .map_err(io("write resolv.conf"))?;
        // the record, then the monitor
        let log_dir = cfg.log_directory.clone().unwrap_or_else(|| {
            self.opts
                .log_root
                .join(format!("{}_{}_{}", cfg.namespace, cfg.name, cfg.uid))
        });
        let rec = PodRecord {
            version: store::VERSION,
            id: id.to_string(),
            config: cfg.clone(),
            created: store::now(),
            state: PodState::NotReady,
            ips: Vec::new(),
            cgroup: cg,
            log_dir,
            supervised,
            restart_backoff_ms: self.opts.restart_backoff.as_millis() as u64,
            cni: Some(self.opts.cni.clone()),
        };
        write_json(&dir.record(), &rec)?;
        let d = dir.clone();
        undo.push("stop the pod's monitor", move || {
            monitor::stop(&d);
            Ok(())
        });
        monitor::spawn(&self.opts.berth_binary, dir)?;
        crate::fault::point("pod-create:monitor");
        Ok(rec)
    }
}

impl Runtime {
    /// Let the pod use its claims (bound before: `run.rs` waits for binding): a
    /// ReadWriteOncePod claim another pod holds is refused; each volume is attached and its
    /// host path recorded in the pod's volume.
    fn attach_claims(
        &self,
        id: &str,
        dir: &PodDir,
        cfg: &mut PodConfig,
        undo: &mut Undo,
    ) -> Result<()> {
        if !cfg
            .volumes
            .iter()
            .any(|v| matches!(v.source, VolumeSource::Claim { .. }))
        {
            return Ok(());
        }
        let volumes = crate::volume::Volumes::new(&self.opts.data_root);
        let who = format!("{}/{}", cfg.namespace, cfg.name);
        let ns = cfg.namespace.clone();
        let (pod, vols) = (id.to_string(), volumes.clone());
        undo.push("release the pod's claims", move || {
            vols.release_pod(&pod).map_err(|e| e.to_string())
        });
        for v in &mut cfg.volumes {
            if let VolumeSource::Claim { claim, path, .. } = &mut v.source {
                let used = volumes.use_claim(&ns, claim, id, &dir.0, &who)?;
                *path = Some(used.path);
            }
        }
        Ok(())
    }
}

/// Mount a tmpfs at `at` (nosuid, nodev, and noexec if asked) and push its unmount.
fn mount_tmpfs(
    at: &Path,
    source: &str,
    data: &str,
    noexec: bool,
    what: &str,
    undo: &mut Undo,
) -> Result<()> {
    use nix::mount::MsFlags;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if noexec {
        flags |= MsFlags::MS_NOEXEC;
    }
    nix::mount::mount(Some(source), at, Some("tmpfs"), flags, Some(data))
        .map_err(crate::pod::error::sys(format!("mount {what}")))?;
    let p = at.to_path_buf();
    undo.push(format!("unmount {}", p.display()), move || {
        nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).map_err(|e| e.to_string())
    });
    Ok(())
}

/// The sandbox's last steps, once its address is known: /etc/hosts, and the record says ready.
fn finish(dir: &PodDir, hostname: &str, mut rec: PodRecord) -> Result<()> {
    fs::write(
        dir.etc_file("hosts"),
        hosts_file(hostname, rec.ips.first().map(String::as_str)),
    )
    .map_err(io("write hosts"))?;
    rec.state = PodState::Ready;
    write_json(&dir.record(), &rec)
}

fn host_path(path: &Path, kind: &str, name: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let md = fs::metadata(path);
    let bad = |m: &str| {
        Err(Error::Invalid(format!(
            "volume {name}: hostPath {}: {m}",
            path.display()
        )))
    };
    match (kind, md) {
        ("DirectoryOrCreate", Err(_)) => {
            fs::create_dir_all(path).map_err(io(format!("create hostPath {}", path.display())))
        }
        ("FileOrCreate", Err(_)) => {
            if let Some(p) = path.parent() {
                fs::create_dir_all(p).map_err(io(format!("create {}", p.display())))?;
            }
            fs::File::create(path)
                .map(|_| ())
                .map_err(io(format!("create hostPath {}", path.display())))
        }
        ("", _) | ("DirectoryOrCreate" | "FileOrCreate", Ok(_)) => Ok(()),
        ("Directory", Ok(m)) if m.is_dir() => Ok(()),
        ("File", Ok(m)) if m.is_file() => Ok(()),
        ("Socket", Ok(m)) if m.file_type().is_socket() => Ok(()),
        ("CharDevice", Ok(m)) if m.file_type().is_char_device() => Ok(()),
        ("BlockDevice", Ok(m)) if m.file_type().is_block_device() => Ok(()),
        (k, Ok(_)) => bad(&format!("is not a {k}")),
        (k, Err(_)) => bad(&format!("does not exist (type {k})")),
    }
}

/// resolv.conf: the pod's DNS settings, or the host's file.
fn resolv_conf(dns: Option<&DnsConfig>) -> String {
    match dns {
        Some(d) if !d.nameservers.is_empty() || !d.searches.is_empty() || !d.options.is_empty() => {
            let mut s = String::new();
            for n in &d.nameservers {
                s.push_str(&format!("nameserver {n}\n"));
            }
            if !d.searches.is_empty() {
                s.push_str(&format!("search {}\n", d.searches.join(" ")));
            }
            if !d.options.is_empty() {
                s.push_str(&format!("options {}\n", d.options.join(" ")));
            }
            s
        }
        _ => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    }
}

fn hosts_file(hostname: &str, ip: Option<&str>) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match ip {
        Some(ip) => s.push_str(&format!("{ip}\t{hostname}\n")),
        None => s.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_files() {
        assert_eq!(
            hosts_file("web", Some("10.1.2.3")),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3\tweb\n"
        );
        assert!(hosts_file("web", None).ends_with("127.0.1.1\tweb\n"));
        let d = DnsConfig {
            nameservers: vec!["10.0.0.10".into()],
            searches: vec!["ns.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(Some(&d)),
            "nameserver 10.0.0.10\nsearch ns.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
        );
        let u = store::new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
    }
}
