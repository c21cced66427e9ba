//! The supported part of a Pod, as serde reads it (after the schema check).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Pod {
    pub(super) api_version: String,
    pub(super) kind: String,
    pub(super) metadata: Metadata,
    pub(super) spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Metadata {
    pub(super) name: String,
    pub(super) namespace: Option<String>,
    pub(super) uid: Option<String>,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Spec {
    pub(super) containers: Vec<Container>,
    pub(super) init_containers: Vec<Container>,
    pub(super) hostname: Option<String>,
    pub(super) host_network: bool,
    pub(super) share_process_namespace: bool,
    pub(super) dns_policy: Option<String>,
    pub(super) dns_config: Option<K8sDns>,
    pub(super) security_context: PodSecurity,
    pub(super) volumes: Vec<K8sVolume>,
    pub(super) termination_grace_period_seconds: Option<u64>,
    pub(super) restart_policy: Option<String>,
    pub(super) image_pull_secrets: Vec<NameValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct K8sDns {
    pub(super) nameservers: Vec<String>,
    pub(super) searches: Vec<String>,
    pub(super) options: Vec<NameValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct NameValue {
    pub(super) name: String,
    pub(super) value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct PodSecurity {
    pub(super) sysctls: Vec<NameValue>,
    pub(super) run_as_user: Option<u32>,
    pub(super) run_as_group: Option<u32>,
    pub(super) run_as_non_root: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct K8sVolume {
    pub(super) name: String,
    pub(super) empty_dir: Option<EmptyDir>,
    pub(super) host_path: Option<HostPath>,
    pub(super) persistent_volume_claim: Option<ClaimSource>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ClaimSource {
    pub(super) claim_name: String,
    pub(super) read_only: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct EmptyDir {
    pub(super) medium: Option<String>,
    pub(super) size_limit: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct HostPath {
    pub(super) path: String,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Container {
    pub(super) name: String,
    pub(super) image: String,
    pub(super) image_pull_policy: Option<String>,
    pub(super) command: Vec<String>,
    pub(super) args: Vec<String>,
    pub(super) env: Vec<NameValue>,
    pub(super) working_dir: Option<String>,
    pub(super) ports: Vec<Port>,
    pub(super) resources: K8sResources,
    pub(super) volume_mounts: Vec<VolumeMount>,
    pub(super) security_context: ContainerSecurity,
    pub(super) stdin: bool,
    pub(super) tty: bool,
    #[allow(dead_code)]
    pub(super) termination_message_policy: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Port {
    #[allow(dead_code)]
    pub(super) name: Option<String>,
    pub(super) container_port: u16,
    pub(super) host_port: Option<u16>,
    #[serde(rename = "hostIP")]
    pub(super) host_ip: Option<String>,
    pub(super) protocol: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct K8sResources {
    pub(super) requests: ResourceList,
    pub(super) limits: ResourceList,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ResourceList {
    pub(super) cpu: Option<Value>,
    pub(super) memory: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct VolumeMount {
    pub(super) name: String,
    pub(super) mount_path: String,
    pub(super) read_only: bool,
    pub(super) sub_path: Option<String>,
    pub(super) mount_propagation: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ContainerSecurity {
    pub(super) run_as_user: Option<u32>,
    pub(super) run_as_group: Option<u32>,
    pub(super) run_as_non_root: Option<bool>,
    pub(super) capabilities: Capabilities,
    pub(super) privileged: bool,
    pub(super) read_only_root_filesystem: bool,
    pub(super) allow_privilege_escalation: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Capabilities {
    pub(super) add: Vec<String>,
    pub(super) drop: Vec<String>,
}
