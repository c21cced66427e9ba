//! StorageClasses: apply (most fields are immutable, as in Kubernetes), list (with the
//! built-in default class), delete.

use super::error::{Error, Result};
use super::model::{DEFAULT_CLASS, StorageClass};
use super::{Applied, Volumes};

impl Volumes {
    /// Create or update a class. Kubernetes lets only `allowVolumeExpansion`, labels and the
    /// default-class annotation change; any other change is refused naming the field.
    pub fn apply_class(&self, mut c: StorageClass) -> Result<Applied> {
        let lock = self.store.lock()?;
        let old = match self.store.class(&c.name)? {
            Some(o) => Some(o),
            None if c.name == DEFAULT_CLASS => Some(StorageClass::builtin()),
            None => None,
        };
        let Some(old) = old else {
            c.created = crate::pod::store::now();
            self.store.put_class(&lock, &c)?;
            return Ok(Applied::Created);
        };
        let immutable = [
            ("provisioner", old.provisioner != c.provisioner),
            ("reclaimPolicy", old.reclaim_policy != c.reclaim_policy),
            ("volumeBindingMode", old.binding_mode != c.binding_mode),
            ("parameters.backend", old.backend != c.backend),
            ("parameters.fsType", old.fs_type != c.fs_type),
        ];
        if let Some((field, _)) = immutable.iter().find(|(_, changed)| *changed) {
            return Err(Error::Precondition(format!(
                "storageclass {}: {field} cannot be changed (delete the class and apply it again)",
                c.name
            )));
        }
        c.created = old.created.clone();
        if c == old {
            return Ok(Applied::Unchanged);
        }
        self.store.put_class(&lock, &c)?;
        Ok(Applied::Configured)
    }

    /// Every class: the recorded ones and the built-in default (unless one replaced it).
    pub fn classes(&self) -> Result<Vec<StorageClass>> {
        let mut out = self.store.classes()?;
        if !out.iter().any(|c| c.name == DEFAULT_CLASS) {
            out.insert(0, StorageClass::builtin());
        }
        Ok(out)
    }

    /// A class by name.
    pub fn class(&self, name: &str) -> Result<StorageClass> {
        self.classes()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::NotFound(format!("storageclass {name:?}")))
    }

    /// Delete a class (volumes and claims naming it stay; a Pending claim naming it waits).
    pub fn delete_class(&self, name: &str) -> Result<()> {
        let lock = self.store.lock()?;
        if self.store.class(name)?.is_none() {
            return Err(if name == DEFAULT_CLASS {
                Error::Precondition(format!(
                    "storageclass {name} is built in: apply one named {name} to change it"
                ))
            } else {
                Error::NotFound(format!("storageclass {name:?}"))
            });
        }
        self.store.remove_class(&lock, name)
    }
}
