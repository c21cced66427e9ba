//! `berth kube delete`: the objects of a file in the reverse of apply's order (pods,
//! ConfigMaps and Secrets, claims, volumes, classes), or one by kind and name. A pod is stopped with its grace period first.

use super::{Document, Kind, Object, Result};
use crate::volume::Volumes;
use crate::volume::manifest::Object as Storage;

/// Delete one object; returns `kind/name`.
pub fn delete_named(
    rt: &crate::pod::Runtime,
    vols: &Volumes,
    kind: Kind,
    name: &str,
    namespace: &str,
) -> Result<String> {
    match kind {
        Kind::Pod => {
            let key = format!("{namespace}/{name}");
            let p = rt.find_pod(&key)?;
            rt.stop_pod_sandbox(&p.id, None)?;
            rt.remove_pod_sandbox(&p.id, true)?;
        }
        Kind::PersistentVolumeClaim => vols.delete_claim(namespace, name)?,
        Kind::PersistentVolume => vols.delete_volume(name)?,
        Kind::StorageClass => vols.delete_class(name)?,
        Kind::Service => {
            crate::service::Services::new(&rt.options().data_root).delete(namespace, name)?;
            super::apply::resync_services(rt)?;
        }
        Kind::ConfigMap | Kind::Secret => {
            let data = crate::configmap::ConfigData::new(&rt.options().data_root);
            data.delete(kind.data_kind().expect("a data kind"), namespace, name)?
        }
    }
    Ok(format!("{}/{name}", kind.singular()))
}

/// Delete the objects of a file, pods first. Each one's result, in order (one not found is
/// an error there, and the others still go).
pub fn delete(
    rt: &crate::pod::Runtime,
    vols: &Volumes,
    docs: &[Document],
) -> Vec<(String, Result<()>)> {
    let rank = |d: &Document| match &d.object {
        Object::Pod(_) => 0,
        Object::Data(_) | Object::Service(_) => 1,
        Object::Storage(s) => match **s {
            Storage::Claim(_) => 1,
            Storage::Volume(_) => 2,
            Storage::Class(_) => 3,
        },
    };
    let mut order: Vec<&Document> = docs.iter().collect();
    order.sort_by_key(|d| (rank(d), d.index));
    order
        .into_iter()
        .map(|d| {
            (
                d.describe(),
                delete_named(rt, vols, d.kind, &d.name, &d.namespace).map(|_| ()),
            )
        })
        .collect()
}
