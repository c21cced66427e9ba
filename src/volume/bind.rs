//! Which volume a claim gets, by Kubernetes' rules (pure: the records in, a decision out).
//!
//! - The claim's class: unset means the default class (none: class-less volumes only); `""`
//!   means class-less volumes only, and is never provisioned.
//! - A volume fits when it is Available (or already reserved for this very claim), of the
//!   claim's class, its access modes include the claim's, its labels match the claim's
//!   selector, and its capacity is at least the request; the smallest fitting volume wins.
//! - `volumeName` names the only candidate (unsuitable: Pending, saying why).
//! - Nothing fits: the class provisions one (not for `""`, nor for a claim with a selector;
//!   a `WaitForFirstConsumer` class only once a pod uses the claim); else Pending.

use super::model::{BindingMode, Claim, StorageClass, Volume, VolumePhase};

/// What happens to a Pending claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind it to this volume.
    Bind(String),
    /// Provision a volume through this class.
    Provision(String),
    /// Stay Pending, for this reason.
    Wait(String),
}

/// The class a claim asks for ("" for none).
pub fn class_of(claim: &Claim, classes: &[StorageClass]) -> String {
    match &claim.spec.class {
        Some(c) => c.clone(),
        None => classes
            .iter()
            .find(|c| c.is_default)
            .map(|c| c.name.clone())
            .unwrap_or_default(),
    }
}

/// Why `v` does not fit `claim` of class `class` (None: it fits).
fn misfit(claim: &Claim, class: &str, v: &Volume) -> Option<String> {
    let reserved_for_us = v.claim_ref.as_ref().is_some_and(|r| {
        r.namespace == claim.namespace
            && r.name == claim.name
            && (r.uid.is_empty() || r.uid == claim.uid)
    });
    if v.terminating {
        return Some("it is being deleted".into());
    }
    // Available and free, or reserved for this very claim
    let free = v.phase == VolumePhase::Available && v.claim_ref.is_none();
    if !(free || reserved_for_us) {
        return Some(format!("it is {:?}", v.phase));
    }
    if v.class != class {
        return Some(format!(
            "its class is {:?}, the claim's {:?}",
            v.class, class
        ));
    }
    if let Some(m) = claim
        .spec
        .access_modes
        .iter()
        .find(|m| !v.access_modes.contains(m))
    {
        return Some(format!("it does not offer {m:?}"));
    }
    if let Some((k, val)) = claim
        .spec
        .selector
        .iter()
        .find(|(k, val)| v.labels.get(*k) != Some(*val))
    {
        return Some(format!("its labels do not match {k}={val}"));
    }
    if v.capacity < claim.spec.request {
        return Some(format!(
            "its capacity {} is less than the request {}",
            super::model::quantity_text(v.capacity),
            super::model::quantity_text(claim.spec.request)
        ));
    }
    None
}

/// Decide for a Pending claim. `consumer`: a pod is waiting for it (a WaitForFirstConsumer
/// class provisions only then).
pub fn decide(
    claim: &Claim,
    volumes: &[Volume],
    classes: &[StorageClass],
    consumer: bool,
) -> Decision {
    let class = class_of(claim, classes);
    if let Some(name) = &claim.spec.volume_name {
        return match volumes.iter().find(|v| &v.name == name) {
            None => Decision::Wait(format!("volume {name} (its volumeName) does not exist")),
            Some(v) => match misfit(claim, &class, v) {
                None => Decision::Bind(v.name.clone()),
                Some(why) => Decision::Wait(format!(
                    "volume {name} (its volumeName) does not fit: {why}"
                )),
            },
        };
    }
    // one reserved for this claim first, then the smallest that fits
    let mut fits: Vec<&Volume> = volumes
        .iter()
        .filter(|v| misfit(claim, &class, v).is_none())
        .collect();
    fits.sort_by_key(|v| (v.claim_ref.is_none(), v.capacity, v.name.clone()));
    if let Some(v) = fits.first() {
        return Decision::Bind(v.name.clone());
    }
    if !claim.spec.selector.is_empty() {
        return Decision::Wait(
            "no volume matches its selector, and a claim with a selector is never provisioned"
                .into(),
        );
    }
    if class.is_empty() {
        return Decision::Wait(
            "no class-less volume fits, and a claim without a class is never provisioned".into(),
        );
    }
    let Some(c) = classes.iter().find(|c| c.name == class) else {
        return Decision::Wait(format!("storage class {class:?} does not exist"));
    };
    if c.binding_mode == BindingMode::WaitForFirstConsumer && !consumer {
        return Decision::Wait("waiting for first consumer to be created before binding".into());
    }
    Decision::Provision(c.name.clone())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::volume::model::*;

    fn pv(name: &str, gi: u64, class: &str, labels: &[(&str, &str)]) -> Volume {
        Volume {
            version: VERSION,
            name: name.into(),
            capacity: gi << 30,
            access_modes: vec![AccessMode::ReadWriteOnce, AccessMode::ReadWriteOncePod],
            reclaim_policy: ReclaimPolicy::Retain,
            class: class.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            source: Source::Path { path: "/x".into() },
            claim_ref: None,
            phase: VolumePhase::Available,
            reason: String::new(),
            provisioned: false,
            terminating: false,
            created: String::new(),
        }
    }

    fn pvc(gi: u64, class: Option<&str>) -> Claim {
        Claim {
            version: VERSION,
            namespace: "default".into(),
            name: "c".into(),
            uid: "u".into(),
            spec: ClaimSpec {
                request: gi << 30,
                access_modes: vec![AccessMode::ReadWriteOnce],
                class: class.map(String::from),
                volume_name: None,
                selector: BTreeMap::new(),
            },
            labels: BTreeMap::new(),
            phase: ClaimPhase::Pending,
            reason: String::new(),
            volume: None,
            terminating: false,
            created: String::new(),
        }
    }

    #[test]
    fn binding_follows_kubernetes() {
        let mut wffc = StorageClass::builtin();
        wffc.name = "later".into();
        wffc.is_default = false;
        wffc.binding_mode = BindingMode::WaitForFirstConsumer;
        let classes = vec![StorageClass::builtin(), wffc];
        let vols = vec![
            pv("big", 10, "local", &[]),
            pv("small", 2, "local", &[]),
            pv("tiny", 1, "local", &[]),
            pv("bare", 5, "", &[("tier", "gold")]),
        ];
        // the smallest that fits, in the default class
        assert_eq!(
            decide(&pvc(2, None), &vols, &classes, false),
            Decision::Bind("small".into())
        );
        // "" binds only to class-less volumes, never provisions
        assert_eq!(
            decide(&pvc(1, Some("")), &vols, &classes, false),
            Decision::Bind("bare".into())
        );
        assert!(
            matches!(decide(&pvc(6, Some("")), &vols, &classes, false), Decision::Wait(w) if w.contains("never provisioned"))
        );
        // too big for any: provisioned by the class
        assert_eq!(
            decide(&pvc(20, None), &vols, &classes, false),
            Decision::Provision("local".into())
        );
        // a selector: only matching labels, never provisioned
        let mut sel = pvc(1, Some(""));
        sel.spec.selector.insert("tier".into(), "silver".into());
        assert!(
            matches!(decide(&sel, &vols, &classes, false), Decision::Wait(w) if w.contains("selector"))
        );
        sel.spec.selector.insert("tier".into(), "gold".into());
        assert_eq!(
            decide(&sel, &vols, &classes, false),
            Decision::Bind("bare".into())
        );
        // access modes must be offered
        let mut rox = pvc(1, Some(""));
        rox.spec.access_modes = vec![AccessMode::ReadOnlyMany];
        assert!(matches!(
            decide(&rox, &vols, &classes, false),
            Decision::Wait(_)
        ));
        // WaitForFirstConsumer provisions only for a consumer
        assert!(
            matches!(decide(&pvc(1, Some("later")), &vols, &classes, false), Decision::Wait(w) if w.contains("first consumer"))
        );
        assert_eq!(
            decide(&pvc(1, Some("later")), &vols, &classes, true),
            Decision::Provision("later".into())
        );
        // a class that does not exist
        assert!(
            matches!(decide(&pvc(1, Some("gold")), &vols, &classes, true), Decision::Wait(w) if w.contains("does not exist"))
        );
        // volumeName: that one or nothing, with the reason
        let mut named = pvc(3, None);
        named.spec.volume_name = Some("small".into());
        assert!(
            matches!(decide(&named, &vols, &classes, true), Decision::Wait(w) if w.contains("less than the request"))
        );
        named.spec.volume_name = Some("big".into());
        assert_eq!(
            decide(&named, &vols, &classes, true),
            Decision::Bind("big".into())
        );
        // a bound volume is not a candidate
        let mut taken = vols.clone();
        taken[1].phase = VolumePhase::Bound;
        taken[1].claim_ref = Some(ClaimRef {
            namespace: "x".into(),
            name: "y".into(),
            uid: "z".into(),
        });
        assert_eq!(
            decide(&pvc(2, None), &taken, &classes, false),
            Decision::Bind("big".into())
        );
    }
}
