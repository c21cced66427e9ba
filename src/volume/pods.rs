//! What pods do with claims: wait for binding (a WaitForFirstConsumer class provisions now),
//! admission (a ReadWriteOncePod claim serves one pod), attach, and release when the pod goes.
//! A volume's users are files `users/<volume>/<pod>` naming the pod's state directory; one
//! whose directory is gone (its pod was removed, or the machine rebooted) counts no more.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Volumes;
use super::backend;
use super::error::{Error, Result, io};
use super::model::{AccessMode, Claim, ClaimPhase};

/// A pod's use of a claim: its volume and where it is on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub volume: String,
    pub path: PathBuf,
}

impl Volumes {
    /// Wait until claim `namespace/name` is bound, up to `timeout`; a pod waiting for it is
    /// the consumer a WaitForFirstConsumer class provisions for. Pending at the end: an error
    /// naming the claim and the reason.
    pub fn wait_bound(&self, namespace: &str, name: &str, timeout: Duration) -> Result<Claim> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = {
                let lock = self.store.lock()?;
                let c = self.claim(namespace, name)?;
                if c.terminating {
                    return Err(Error::Precondition(format!(
                        "persistentvolumeclaim {namespace}/{name} is being deleted"
                    )));
                }
                self.sync_claim(&lock, c, true)?
            };
            if c.phase == ClaimPhase::Bound {
                return Ok(c);
            }
            if Instant::now() >= deadline {
                return Err(Error::Precondition(format!(
                    "persistentvolumeclaim {namespace}/{name} is {:?}: {}",
                    c.phase, c.reason
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Let pod `pod` (state directory `pod_dir`, called `who` in messages) use a bound claim:
    /// a ReadWriteOncePod claim another pod uses is refused, naming that pod; the volume is
    /// attached (mounted) if it is not yet, and the use recorded.
    pub fn use_claim(
        &self,
        namespace: &str,
        name: &str,
        pod: &str,
        pod_dir: &Path,
        who: &str,
    ) -> Result<Use> {
        let _lock = self.store.lock()?;
        let c = self.claim(namespace, name)?;
        let Some(pv) = c.volume.clone().filter(|_| c.phase == ClaimPhase::Bound) else {
            return Err(Error::Precondition(format!(
                "persistentvolumeclaim {namespace}/{name} is not bound: {}",
                c.reason
            )));
        };
        if c.terminating {
            return Err(Error::Precondition(format!(
                "persistentvolumeclaim {namespace}/{name} is being deleted"
            )));
        }
        let others: Vec<(String, String)> = self
            .users(&pv)
            .into_iter()
            .filter(|(p, _)| p != pod)
            .collect();
        if c.spec.access_modes.contains(&AccessMode::ReadWriteOncePod)
            && let Some((_, holder)) = others.first()
        {
            return Err(Error::Precondition(format!(
                "persistentvolumeclaim {namespace}/{name} is ReadWriteOncePod and pod {holder} uses it"
            )));
        }
        let v = self.volume(&pv)?;
        let path = backend::for_volume(&v, &self.store).attach(&v)?;
        let users = self.store.users(&pv);
        fs::create_dir_all(&users).map_err(io(format!("create {}", users.display())))?;
        crate::linux::fs::write_atomic_volatile(
            &users.join(pod),
            format!("{}\n{who}\n", pod_dir.display()).as_bytes(),
        )
        .map_err(io(format!("record pod {who} as a user of volume {pv}")))?;
        Ok(Use { volume: pv, path })
    }

    /// Pod `pod` is gone: its uses are dropped, a volume no pod uses any more is detached, and
    /// a claim deleted while in use goes now (its volume reclaimed).
    pub fn release_pod(&self, pod: &str) -> Result<()> {
        let base = self.store.root().join("users");
        let Ok(rd) = fs::read_dir(&base) else {
            return Ok(());
        };
        let lock = self.store.lock()?;
        for e in rd.flatten() {
            let pv = e.file_name().to_string_lossy().into_owned();
            let mine = e.path().join(pod);
            if !mine.exists() {
                continue;
            }
            let _ = fs::remove_file(&mine);
            if !self.users(&pv).is_empty() {
                continue;
            }
            let Some(v) = self.store.volume(&pv)? else {
                continue;
            };
            backend::for_volume(&v, &self.store).detach(&v)?;
            if let Some(r) = &v.claim_ref
                && let Some(c) = self.store.claim(&r.namespace, &r.name)?
                && c.terminating
            {
                self.remove_claim(&lock, &c)?;
            }
        }
        Ok(())
    }

    /// The pods using volume `pv` (ID, name), whose state directory still exists.
    pub(super) fn users(&self, pv: &str) -> Vec<(String, String)> {
        let Ok(rd) = fs::read_dir(self.store.users(pv)) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let text = fs::read_to_string(e.path()).ok()?;
                let mut lines = text.lines();
                let dir = lines.next()?;
                let who = lines.next().unwrap_or_default().to_string();
                Path::new(dir)
                    .exists()
                    .then(|| (e.file_name().to_string_lossy().into_owned(), who))
            })
            .collect()
    }
}
