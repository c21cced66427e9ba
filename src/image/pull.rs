//! `image pull`: resolve a reference to one platform's manifest, download config and layers in
//! parallel (each streamed to disk and verified before it enters the store), unpack the layers
//! into snapshots in order as soon as each one and those below it are whole, then name the image.
//!
//! Threads, not an async runtime: `jobs` downloaders take layers from a shared queue, one
//! unpacker applies them bottom-up, and the calling thread draws progress from their events.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oci_spec::image::Descriptor;

use super::error::{Error, Result};
use super::import::select_platform;
use super::model::{self, Document, Platform};
use super::registry::{self, Client, Credentials};
use super::snapshot::{self, LayerRef};
use super::store::{ImageRecord, Store};

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// `os/arch[/variant]`; the host's by default.
    pub platform: Option<String>,
    /// `--creds`; else an auth file entry for the registry.
    pub creds: Option<Credentials>,
    /// Docker-style auth.json; else `$REGISTRY_AUTH_FILE`, `/run/containers/<uid>/auth.json`,
    /// `~/.docker/config.json`.
    pub auth_file: Option<PathBuf>,
    /// Registries (`host[:port]`) spoken to over plain HTTP. Loopback ones always are.
    pub insecure: Vec<String>,
    /// Parallel layer downloads.
    pub jobs: usize,
    /// Unpack the layers into snapshots while pulling (as `ctr pull` and `podman pull` do).
    pub unpack: bool,
    /// Draw progress bars on stderr (for a terminal) instead of reporting lines.
    pub bars: bool,
    /// Attempts per blob; each one resumes what the previous one downloaded.
    pub attempts: u32,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            creds: None,
            auth_file: None,
            insecure: Vec::new(),
            jobs: 4,
            unpack: true,
            bars: false,
            attempts: 3,
        }
    }
}

/// What the worker threads tell the drawing thread.
enum Event {
    Bytes(usize, u64),
    Downloaded(usize),
    Resuming(usize, u64),
    Unpacking(usize),
    Unpacked(usize),
    Failed(Error),
}

fn credentials(opts: &PullOptions, registry: &str) -> Result<Option<Credentials>> {
    if let Some(c) = &opts.creds {
        return Ok(Some(c.clone()));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(f) = &opts.auth_file {
        files.push(f.clone());
    } else {
        if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(f.into());
        }
        files.push(format!("/run/containers/{}/auth.json", nix::unistd::getuid()).into());
        if let Some(h) = std::env::var_os("HOME") {
            files.push(PathBuf::from(h).join(".docker/config.json"));
        }
    }
    for f in files {
        if let Some(c) = registry::from_auth_file(&f, registry)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn short(digest: &str) -> &str {
    &digest[7.min(digest.len())..19.min(digest.len())]
}

/// Download one blob, retrying (resuming) a broken transfer.
fn fetch_blob(
    client: &Client,
    store: &Store,
    d: &Descriptor,
    attempts: u32,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let digest = d.digest().to_string();
    let mut done = 0u64;
    let mut last = None;
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200 << attempt));
        }
        // progress counts bytes on disk; a resumed attempt re-reports what it found
        let mut seen = 0u64;
        let r = client.blob(store, &digest, d.size(), &mut |n| {
            seen += n;
            if seen > done {
                progress(seen - done);
                done = seen;
            }
        });
        match r {
            Ok(()) => return Ok(()),
            // a wrong digest will not get better by asking again
            Err(e @ Error::Digest { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Pull `reference`; returns the name it is stored under.
pub fn pull(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
    report: &mut dyn FnMut(&str),
) -> Result<String> {
    let r = model::parse_reference(reference)?;
    let name = model::store_name(&r);
    let platform = opts
        .platform
        .as_deref()
        .map(Platform::parse)
        .transpose()?
        .unwrap_or_else(Platform::host);
    store.init()?;
    let client = Client::new(&r, credentials(opts, r.registry())?, &opts.insecure);
    let tag = r.digest().or(r.tag()).unwrap_or("latest").to_string();

    // 1. the manifest for our platform
    let (bytes, mt, digest) = client.manifest(&tag)?;
    let mut held = vec![digest.clone()];
    let (mbytes, mdigest, index) = match model::parse_document(&bytes, mt.as_deref())? {
        // the index is stored once the lease holds it
        Document::Index(ix) => {
            let chosen = select_platform(&ix, &platform)?.digest().to_string();
            let (mb, _, md) = client.manifest(&chosen)?;
            held.push(md.clone());
            (mb, md, Some(digest))
        }
        Document::Manifest(_) => (bytes.clone(), digest, None),
    };
    // until the name is set, only this lease keeps what is fetched from `image prune`
    let _lease = store.pull_lease(&held.iter().map(String::as_str).collect::<Vec<_>>())?;
    if let Some(i) = &index {
        store.put_bytes(&bytes, Some(i))?;
    }
    let Document::Manifest(manifest) = model::parse_document(&mbytes, None)? else {
        return Err(Error::Invalid(format!(
            "{name}: {mdigest} is an index inside an index"
        )));
    };
    store.put_bytes(&mbytes, Some(&mdigest))?;

    // 2. the config (small, first: it holds the diff IDs the layers must unpack to)
    fetch_blob(
        &client,
        store,
        manifest.config(),
        opts.attempts,
        &mut |_| {},
    )?;
    let cfg = model::parse_config(&store.read_blob(manifest.config().digest().as_ref())?)?;
    let cfg_platform = format!("{}/{}", cfg.os(), cfg.architecture());
    if index.is_some() && cfg_platform != format!("{}/{}", platform.os, platform.arch) {
        return Err(Error::Invalid(format!(
            "{name}: the index promised {platform}, the image config says {cfg_platform}"
        )));
    }
    let diff_ids = cfg.rootfs().diff_ids();
    let layers = manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(Error::Invalid(format!(
            "{name}: image config lists {} diff_ids for {} layers",
            diff_ids.len(),
            layers.len()
        )));
    }
    let refs: Vec<LayerRef> = layers
        .iter()
        .zip(diff_ids)
        .map(|(l, d)| LayerRef {
            blob: l.digest().to_string(),
            diff_id: d.clone(),
        })
        .collect();

    // 3. layers: downloaders in parallel, one unpacker in order, progress here
    let total: u64 = layers.iter().map(|l| l.size()).sum();
    let started = Instant::now();
    let already: Vec<bool> = layers
        .iter()
        .map(|l| store.has_blob(l.digest().as_ref()))
        .collect();
    let to_fetch = already.iter().filter(|h| !**h).count();
    report(&format!(
        "pulling {name} ({platform}): {} layers, {} to download ({})",
        layers.len(),
        to_fetch,
        human(
            layers
                .iter()
                .zip(&already)
                .filter(|(_, h)| !**h)
                .map(|(l, _)| l.size())
                .sum()
        )
    ));
    let queue: Mutex<VecDeque<usize>> =
        Mutex::new((0..layers.len()).filter(|i| !already[*i]).collect());
    let (tx, rx) = mpsc::channel::<Event>();
    let (ready_tx, ready_rx) = mpsc::channel::<usize>();
    for (i, have) in already.iter().enumerate() {
        if *have {
            let _ = ready_tx.send(i);
        }
    }
    let failed = std::sync::atomic::AtomicBool::new(false);
    let mut first_err: Option<Error> = None;
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1).min(to_fetch) {
            let (tx, ready_tx) = (tx.clone(), ready_tx.clone());
            let (queue, client, failed) = (&queue, &client, &failed);
            s.spawn(move || {
                loop {
                    if failed.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let Some(i) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
                    else {
                        return;
                    };
                    let partial = store
                        .ingest_path(layers[i].digest().as_ref())
                        .ok()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map_or(0, |m| m.len());
                    if partial > 0 {
                        let _ = tx.send(Event::Resuming(i, partial));
                    }
                    let r = fetch_blob(client, store, &layers[i], opts.attempts, &mut |n| {
                        let _ = tx.send(Event::Bytes(i, n));
                    });
                    match r {
                        Ok(()) => {
                            let _ = tx.send(Event::Downloaded(i));
                            let _ = ready_tx.send(i);
                        }
                        Err(e) => {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            let _ = tx.send(Event::Failed(e));
                            return;
                        }
                    }
                }
            });
        }
        drop(ready_tx);
        if opts.unpack {
            let tx = tx.clone();
            let (refs, failed) = (&refs, &failed);
            s.spawn(move || {
                let mut have = vec![false; refs.len()];
                let mut next = 0;
                while next < refs.len() {
                    let Ok(i) = ready_rx.recv() else { return };
                    have[i] = true;
                    while next < refs.len() && have[next] {
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                        let chain = snapshot::chain_ids(
                            &refs[..=next]
                                .iter()
                                .map(|l| l.diff_id.clone())
                                .collect::<Vec<_>>(),
                        );
                        if snapshot::lookup(store, chain.last().expect("one chain per layer"))
                            .is_none()
                        {
                            let _ = tx.send(Event::Unpacking(next));
                        }
                        match snapshot::ensure(store, &refs[..=next], &mut |_| {}) {
                            Ok(_) => {
                                let _ = tx.send(Event::Unpacked(next));
                            }
                            Err(e) => {
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                let _ = tx.send(Event::Failed(e));
                                return;
                            }
                        }
                        next += 1;
                    }
                }
            });
        }
        drop(tx);
        let mut view = Progress::new(opts.bars, layers, &already);
        for ev in rx {
            match ev {
                Event::Failed(e) => {
                    view.fail();
                    first_err.get_or_insert(e);
                }
                ev => view.event(ev, report),
            }
        }
        view.finish();
    });
    if let Some(e) = first_err {
        return Err(e);
    }
    let secs = started.elapsed().as_secs_f64();
    // the image ID `image ls` shows: the config's digest
    report(&format!(
        "pulled {name} (image ID {}) in {secs:.2} s: {} downloaded",
        short(manifest.config().digest().as_ref()),
        human(
            layers
                .iter()
                .zip(&already)
                .filter(|(_, h)| !**h)
                .map(|(l, _)| l.size())
                .sum()
        )
    ));
    let rec = ImageRecord {
        manifest: mdigest,
        index,
        config: manifest.config().digest().to_string(),
        platform: cfg_platform,
        size: total + manifest.config().size() + mbytes.len() as u64,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    store.set_name(&name, rec)?;
    Ok(name)
}

/// Bytes for people.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Bars on a terminal, lines otherwise.
struct Progress {
    bars: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
    names: Vec<String>,
    sizes: Vec<u64>,
    started: Instant,
}

impl Progress {
    /// Bars (or lines) for `layers`; those `already` in the store show as present, so that
    /// the bars add up to the header's "N to download".
    fn new(bars: bool, layers: &[Descriptor], already: &[bool]) -> Progress {
        let names: Vec<String> = layers
            .iter()
            .map(|l| short(l.digest().as_ref()).to_string())
            .collect();
        let sizes: Vec<u64> = layers.iter().map(|l| l.size()).collect();
        let bars = bars.then(|| {
            let mp = indicatif::MultiProgress::new();
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} {bar:30.cyan/blue} {bytes:>9}/{total_bytes:9} {bytes_per_sec:>11} {msg}",
            )
            .expect("valid progress template")
            .progress_chars("=> ");
            let pbs = layers
                .iter()
                .zip(&names)
                .zip(already)
                .map(|((l, n), have)| {
                    let pb = mp.add(indicatif::ProgressBar::new(l.size()));
                    pb.set_style(style.clone());
                    pb.set_prefix(n.clone());
                    if *have {
                        pb.set_position(l.size());
                        pb.finish_with_message("already present");
                    } else {
                        pb.set_message("waiting");
                    }
                    pb
                })
                .collect();
            (mp, pbs)
        });
        Progress {
            bars,
            names,
            sizes,
            started: Instant::now(),
        }
    }

    fn event(&mut self, ev: Event, report: &mut dyn FnMut(&str)) {
        let elapsed = self.started.elapsed().as_secs_f64();
        match (&self.bars, ev) {
            (Some((_, pbs)), Event::Bytes(i, n)) => {
                pbs[i].set_message("downloading");
                pbs[i].inc(n);
            }
            (Some((_, pbs)), Event::Resuming(i, n)) => {
                pbs[i].set_message(format!("resuming at {}", human(n)));
            }
            (Some((_, pbs)), Event::Downloaded(i)) => {
                pbs[i].set_position(self.sizes[i]);
                pbs[i].set_message("downloaded");
            }
            (Some((_, pbs)), Event::Unpacking(i)) => {
                pbs[i].set_position(self.sizes[i]);
                pbs[i].set_message("unpacking");
            }
            (Some((_, pbs)), Event::Unpacked(i)) => {
                pbs[i].set_position(self.sizes[i]);
                pbs[i].finish_with_message("done");
            }
            (None, Event::Bytes(..)) => {}
            (None, Event::Resuming(i, n)) => {
                report(&format!("layer {} resuming at {n} bytes", self.names[i]))
            }
            (None, Event::Downloaded(i)) => report(&format!(
                "layer {} downloaded ({}) at {elapsed:.2} s",
                self.names[i],
                human(self.sizes[i])
            )),
            (None, Event::Unpacking(i)) => report(&format!("layer {} unpacking", self.names[i])),
            (None, Event::Unpacked(i)) => report(&format!(
                "layer {} unpacked at {elapsed:.2} s",
                self.names[i]
            )),
            (_, Event::Failed(_)) => {}
        }
    }

    fn fail(&mut self) {
        if let Some((_, pbs)) = &self.bars {
            for pb in pbs {
                if !pb.is_finished() {
                    pb.abandon_with_message("failed");
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some((mp, _)) = &self.bars {
            let _ = mp.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_500_000), "1.5 MB");
    }
}
