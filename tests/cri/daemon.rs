//! A real `berth serve` for one test, on its own socket, with the test's PodEnv paths, and
//! gRPC clients for it. Dropping it stops the daemon (the PodEnv then removes every pod).

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::common::BERTH;
use super::env::PodEnv;

pub struct Daemon {
    pub env: PodEnv,
    pub socket: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    pub fn start(name: &str) -> Daemon {
        Daemon::start_with(name, "")
    }

    /// A daemon whose config file gets `extra` TOML appended.
    pub fn start_with(name: &str, extra: &str) -> Daemon {
        let env = PodEnv::new(name);
        let socket = env.dir.join("berth.sock");
        let config = env.dir.join("serve.toml");
        let text = format!(
            "listen = \"unix://{}\"\nstate_root = {:?}\ndata_root = {:?}\nlog_root = {:?}\ncgroup_parent = {:?}\n{extra}\n[cni]\nconf_dir = {:?}\nipam_dir = {:?}\n",
            socket.display(),
            env.root,
            env.dir.join("data"),
            env.dir.join("logs"),
            env.cgroup_parent(),
            env.dir.join("net.d"),
            env.dir.join("ipam-default"),
        );
        fs::write(&config, text).unwrap();
        let mut d = Daemon {
            env,
            socket,
            config,
            child: None,
        };
        d.restart();
        d
    }

    /// Start the daemon (again) and wait until its socket accepts.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// [`Daemon::restart`] with environment variables (`BERTH_FAULT`).
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env.dir.join("serve.log"))
            .unwrap();
        let child = Command::new(BERTH)
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("REGISTRY_AUTH_FILE", self.env.dir.join("no-auth.json"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "berth serve did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// kill -9 the daemon.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.env.dir.join("serve.log")).unwrap_or_default()
    }

    pub async fn channel(&self) -> Channel {
        let path = self.socket.clone();
        Endpoint::try_from("http://localhost")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let p = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
                }
            }))
            .await
            .unwrap()
    }

    pub async fn rt(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel().await)
    }

    pub async fn img(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel().await)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A single-threaded tokio runtime for a test body.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A sandbox config with this test's name and a fresh uid.
pub fn sandbox(name: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "test".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        labels: [("app".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

/// A container config running `args` in the fixture image.
pub fn container(name: &str, image: &str, args: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: args.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: [("ctr".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

pub async fn pull(d: &Daemon, image: &str) -> String {
    d.img()
        .await
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .image_ref
}

/// Run a sandbox and one started container in it; returns (pod id, container id).
pub async fn pod_with(
    d: &Daemon,
    name: &str,
    cfg: cri::PodSandboxConfig,
    ctr: cri::ContainerConfig,
) -> (String, String) {
    let mut rt = d.rt().await;
    let pod = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
        .into_inner()
        .pod_sandbox_id;
    let id = add_container(&mut rt, &pod, &cfg, ctr).await;
    (pod, id)
}

/// Create and start a container in a pod; returns its ID.
pub async fn add_container(
    rt: &mut RuntimeServiceClient<Channel>,
    pod: &str,
    cfg: &cri::PodSandboxConfig,
    ctr: cri::ContainerConfig,
) -> String {
    let id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(ctr),
            sandbox_config: Some(cfg.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    rt.start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    id
}

pub async fn status(d: &Daemon, id: &str) -> cri::ContainerStatus {
    d.rt()
        .await
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
}

pub async fn pod_status(d: &Daemon, pod: &str) -> cri::PodSandboxStatus {
    d.rt()
        .await
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
}

/// A sandbox's Linux config with these namespace modes (network, pid, ipc).
pub fn namespaces(
    network: cri::NamespaceMode,
    pid: cri::NamespaceMode,
    ipc: cri::NamespaceMode,
) -> Option<cri::LinuxPodSandboxConfig> {
    Some(cri::LinuxPodSandboxConfig {
        security_context: Some(cri::LinuxSandboxSecurityContext {
            namespace_options: Some(cri::NamespaceOption {
                network: network as i32,
                pid: pid as i32,
                ipc: ipc as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The container's init PID (the verbose info's `pid`, where crictl inspect finds it).
pub async fn pid(d: &Daemon, id: &str) -> i32 {
    let info = d
        .rt()
        .await
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .info;
    let v: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    v["pid"].as_i64().unwrap() as i32
}

/// Wait until a container reaches `state`.
pub async fn wait_state(d: &Daemon, id: &str, state: cri::ContainerState) -> cri::ContainerStatus {
    let t = Instant::now();
    loop {
        let s = status(d, id).await;
        if s.state == state as i32 {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "container {id} never reached {state:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Build a Go test client of `tests/cri/<dir>/main.go` with Debian's golang packages (GOPATH
/// mode, offline) and return its path.
pub fn go_binary(dir: &str) -> PathBuf {
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = top.join(format!("target/cri-{dir}"));
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(top.join(format!("tests/cri/{dir}/main.go")))
        .env("GOPATH", "/usr/share/gocode")
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", top.join("target/go-cache"))
        .output()
        .expect("run go (golang-go, installed by make setup)");
    assert!(
        out.status.success(),
        "go build {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// RemovePodSandbox, which must succeed.
pub async fn remove_pod(d: &Daemon, pod: &str) {
    d.rt()
        .await
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        })
        .await
        .unwrap();
}
