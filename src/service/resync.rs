//! One resync: every service's endpoints among a state root's pods, and the table brought to
//! them in one `nft -f` transaction that sends only what differs from the last model applied
//! (recorded in the state root; after a reboot, when the record is missing, or when nft
//! refuses the partial change, the whole table is written again),
//! and every pod's `/etc/hosts` section. One lock per data root orders resyncs; a berth killed
//! mid-resync leaves either ruleset (nft transactions are atomic), and the next resync writes
//! the right one.
//!
//! `<root>/services.json` ties a state root to the data root whose services it serves: pod
//! monitors and the pod layer look for it to know that a change of theirs needs a resync.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::endpoints::{self, Endpoint};
use super::{Error, Result, Service, Services, hosts, nft};
use crate::pod::Runtime;
use crate::volume::error_io as io;

/// What a state root's resyncs use: whose services, and which nft table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub data_root: PathBuf,
    pub table: String,
}

impl ServiceConfig {
    /// The config for `data_root`: the table is `BERTH_NFT_TABLE` (default `berth`).
    pub fn new(data_root: &Path) -> Result<ServiceConfig> {
        let table = std::env::var("BERTH_NFT_TABLE").unwrap_or_else(|_| "berth".into());
        let ok = !table.is_empty()
            && table.len() <= 32
            && table
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(Error::Invalid(format!(
                "BERTH_NFT_TABLE: {table:?} is not a table name (lowercase letters, digits, '_')"
            )));
        }
        Ok(ServiceConfig {
            data_root: data_root.to_path_buf(),
            table,
        })
    }

    /// The config a state root was tied to (None: it serves no services).
    pub fn of_root(root: &Path) -> Option<ServiceConfig> {
        let text = fs::read(root.join("services.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// What a resync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub services: usize,
    pub endpoints: usize,
    /// The table was changed (false: it was already right).
    pub applied: bool,
    /// Only what differed was sent (false: the whole table).
    pub partial: bool,
    pub hosts_rewritten: usize,
}

/// Each service with its endpoints (and the pods that match but cannot serve).
pub type WithEndpoints = Vec<(Service, Vec<Endpoint>)>;

/// Every service with its endpoints, and the pods they were found among.
pub fn current(
    rt: &Runtime,
    services: &Services,
) -> Result<(WithEndpoints, Vec<endpoints::PodView>)> {
    let pods = endpoints::pods(rt).map_err(|e| Error::Failed(format!("list pods: {e}")))?;
    let all = services
        .list(None)?
        .into_iter()
        .map(|s| {
            let eps = endpoints::of(&s, &pods);
            (s, eps)
        })
        .collect();
    Ok((all, pods))
}

/// Bring the table and the pods' names in line with the services and pods now.
pub fn resync(rt: &Runtime, cfg: &ServiceConfig) -> Result<Report> {
    let root = rt.options().root.clone();
    fs::create_dir_all(&root).map_err(io(format!("create {}", root.display())))?;
    let services = Services::new(&cfg.data_root);
    fs::create_dir_all(services.store().root())
        .map_err(io(format!("create {}", services.store().root().display())))?;
    // one resync at a time for this data root's table
    let lock_path = services.store().root().join("sync.lock");
    let f = fs::File::create(&lock_path).map_err(io(format!("create {}", lock_path.display())))?;
    let _lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io(format!("lock {}", lock_path.display()))(e.into()))?;
    let (all, pods) = current(rt, &services)?;
    crate::fault::point("service-resync:computed");
    let want = nft::model(&all);
    let record = root.join("services.applied.json");
    let had: Option<nft::Model> = fs::read(&record)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok());
    let mut report = Report {
        services: all.len(),
        endpoints: all
            .iter()
            .map(|(_, e)| e.iter().filter(|e| e.ready()).count())
            .sum(),
        ..Report::default()
    };
    if had.as_ref() != Some(&want) {
        let full = nft::transaction(&cfg.table, nft::full(&cfg.table, &want).as_deref());
        // only what changed when the table is known to hold `had`; the whole table otherwise
        let text = match &had {
            Some(h) if !h.is_empty() && !want.is_empty() => {
                report.partial = true;
                nft::partial(&cfg.table, h, &want)
            }
            _ => full.clone(),
        };
        // the record goes first: a resync killed after nft ran writes the table again
        let _ = fs::remove_file(&record);
        if let Err(e) = nft::run(&text, false) {
            if !report.partial {
                return Err(e);
            }
            // the table was not what the record said (changed behind berth's back)
            report.partial = false;
            nft::run(&full, false)?;
        }
        crate::fault::point("service-resync:applied");
        let text = serde_json::to_vec(&want).expect("serializes");
        crate::linux::fs::write_atomic_volatile(&record, &text)
            .map_err(io(format!("write {}", record.display())))?;
        report.applied = true;
    }
    for p in pods {
        let section = hosts::section(&p.namespace, &all);
        if hosts::rewrite(&p.hosts_file, &section).unwrap_or(false) {
            report.hosts_rewritten += 1;
        }
    }
    // tie the state root to these services (monitors look for it); none left: untie
    let tie = root.join("services.json");
    if all.is_empty() {
        let _ = fs::remove_file(&tie);
        let _ = fs::remove_file(&record);
    } else if ServiceConfig::of_root(&root).as_ref() != Some(cfg) {
        let text = serde_json::to_vec(cfg).expect("serializes");
        crate::linux::fs::write_atomic_volatile(&tie, &text)
            .map_err(io(format!("write {}", tie.display())))?;
    }
    Ok(report)
}
