//! A container's seccomp choice, as containerd makes it.

use k8s_cri::v1 as cri;
use tonic::Status;

use crate::pod::{self};

pub(super) fn seccomp(
    p: Option<&cri::SecurityProfile>,
    path: &str,
    unset: &pod::Seccomp,
    at: &str,
) -> Result<pod::Seccomp, Status> {
    if let Some(p) = p {
        return match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => {
                Ok(pod::Seccomp::RuntimeDefault)
            }
            Ok(cri::security_profile::ProfileType::Unconfined) => Ok(pod::Seccomp::Unconfined),
            Ok(cri::security_profile::ProfileType::Localhost) => {
                if !p.localhost_ref.starts_with('/') {
                    return Err(Status::invalid_argument(format!(
                        "{at}.seccomp.localhost_ref: {:?} is not an absolute path",
                        p.localhost_ref
                    )));
                }
                Ok(pod::Seccomp::Localhost(p.localhost_ref.clone().into()))
            }
            Err(_) => Err(Status::invalid_argument(format!(
                "{at}.seccomp.profile_type: unknown value {}",
                p.profile_type
            ))),
        };
    }
    match path {
        "" => Ok(unset.clone()),
        "runtime/default" | "docker/default" => Ok(pod::Seccomp::RuntimeDefault),
        "unconfined" => Ok(pod::Seccomp::Unconfined),
        p if p.starts_with("localhost/") => Ok(pod::Seccomp::Localhost(p[10..].into())),
        p => Err(Status::invalid_argument(format!(
            "{at}.seccomp_profile_path: {p:?} is not runtime/default, docker/default, unconfined or localhost/PATH"
        ))),
    }
}
