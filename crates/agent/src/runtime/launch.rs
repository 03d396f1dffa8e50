//! Turning a container spec into a process: argv, environment and working directory as
//! the kubelet computes them, and the command line that puts the process in the pod.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use weft_api::core::{Container, Pod};

use super::PodSandbox;
use crate::pod_exec::{PodExecSpec, SUBCOMMAND};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container cannot be started as specified; becomes its `waiting` state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotRunnable {
    pub reason: &'static str,
    pub message: String,
}

/// What to execute for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
}

pub(crate) fn prepare(
    pod: &Pod,
    sandbox: &PodSandbox,
    container: &Container,
) -> Result<Launch, NotRunnable> {
    if container.command.is_empty() {
        if container.image.is_empty() {
            return Err(NotRunnable {
                reason: "CreateContainerConfigError",
                message: "the container has neither a command nor an image: set command".into(),
            });
        }
        // An image's entrypoint is unknowable without pulling it; say so rather than run
        // something else.
        return Err(NotRunnable {
            reason: "ImageNotSupported",
            message: format!(
                "the process runtime runs commands; this container has only an image ({}): \
                 set command, or use a containerd runtime",
                container.image
            ),
        });
    }
    let env = container_env(pod, sandbox, container).map_err(|message| NotRunnable {
        reason: "CreateContainerConfigError",
        message,
    })?;
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| vars.get(name).map(|v| v.to_string());
    let argv = container
        .command
        .iter()
        .chain(container.args.iter())
        .map(|arg| expand(arg, &lookup))
        .collect();
    let workdir =
        (!container.working_dir.is_empty()).then(|| PathBuf::from(&container.working_dir));
    Ok(Launch { argv, env, workdir })
}

/// The container's environment: a minimal base (`PATH`, `HOME`, `HOSTNAME`), then `env`
/// in order, each value expanded with `$(VAR)` over what came before, as the kubelet does.
/// The base does not inherit the agent's other variables: a pod should not see them.
pub fn container_env(
    pod: &Pod,
    sandbox: &PodSandbox,
    container: &Container,
) -> Result<Vec<(String, String)>, String> {
    if container.env_from.is_some() {
        return Err("envFrom is not supported by the process runtime".into());
    }
    let hostname = sandbox
        .hostname
        .clone()
        .unwrap_or_else(|| pod.metadata.name.clone());
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
        ),
        (
            "HOME".into(),
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        ),
        ("HOSTNAME".into(), hostname),
    ];
    for var in &container.env {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                field_ref(pod, from).map_err(|e| format!("env {}: {e}", var.name))?
            }
            (Some(value), None) => {
                let known: HashMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(value, &|name| known.get(name).map(|v| v.to_string()))
            }
            (None, None) => String::new(),
        };
        match env.iter_mut().find(|(k, _)| *k == var.name) {
            Some(slot) => slot.1 = value,
            None => env.push((var.name.clone(), value)),
        }
    }
    Ok(env)
}

/// `valueFrom.fieldRef` for the pod fields a process runtime knows; other sources
/// (secrets, config maps, resources) do not exist here and are refused by name.
fn field_ref(pod: &Pod, from: &serde_json::Value) -> Result<String, String> {
    let Some(path) = from
        .get("fieldRef")
        .and_then(|f| f.get("fieldPath"))
        .and_then(|p| p.as_str())
    else {
        let kind = from
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        return Err(format!(
            "valueFrom {kind:?} is not supported by the process runtime (only fieldRef)"
        ));
    };
    let meta = &pod.metadata;
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod.spec.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.service_account_name.clone(),
        "status.podIP" => pod.status.pod_ip.clone(),
        "status.hostIP" => pod.status.host_ip.clone(),
        _ => {
            let label = |prefix: &str| {
                path.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix("']"))
                    .map(str::to_string)
            };
            if let Some(key) = label("metadata.labels['") {
                meta.labels.get(&key).cloned().unwrap_or_default()
            } else if let Some(key) = label("metadata.annotations['") {
                meta.annotations.get(&key).cloned().unwrap_or_default()
            } else {
                return Err(format!("fieldRef {path:?} is not supported"));
            }
        }
    };
    Ok(value)
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined one is
/// left as written, `$$` is a literal `$`.
pub(crate) fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A command that runs `argv` inside the pod: through `<pod_exec_binary> pod-exec` when
/// the sandbox has namespaces or mounts, directly otherwise. Either way the process leads
/// its own process group (the runtime signals the group), gets exactly `env`, and has
/// stdin from /dev/null. The caller sets stdout and stderr.
pub fn command_in_pod(
    pod_exec_binary: &Path,
    sandbox: &PodSandbox,
    argv: &[String],
    env: &[(String, String)],
    workdir: Option<&Path>,
) -> tokio::process::Command {
    let mut cmd = if sandbox.isolated() {
        let spec = PodExecSpec {
            netns: sandbox.netns_path.clone(),
            resolv_conf: sandbox.resolv_conf_path.clone(),
            hosts: sandbox.hosts_path.clone(),
            hostname: sandbox.hostname.clone(),
            workdir: workdir.map(Path::to_path_buf),
            command: argv.iter().map(Into::into).collect(),
        };
        let mut cmd = tokio::process::Command::new(pod_exec_binary);
        // The helper calls setsid() itself, which needs it not to be a group leader yet.
        cmd.arg(SUBCOMMAND).args(spec.to_args());
        cmd
    } else {
        let mut cmd = tokio::process::Command::new(argv.first().map_or("", String::as_str));
        cmd.args(argv.iter().skip(1)).process_group(0);
        if let Some(dir) = workdir {
            cmd.current_dir(dir);
        }
        cmd
    };
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(false);
    cmd
}

#[cfg(test)]
mod tests {
    use weft_api::core::EnvVar;

    use super::*;

    fn sandbox() -> PodSandbox {
        PodSandbox {
            uid: "u".into(),
            namespace: "default".into(),
            name: "p".into(),
            netns_path: None,
            resolv_conf_path: None,
            hosts_path: None,
            hostname: None,
            log_dir: "/tmp".into(),
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let lookup = |name: &str| (name == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)", &lookup), "x-$(B)");
        assert_eq!(expand("$$(A) $$ $ $(A", &lookup), "$(A) $ $ $(A");
        assert_eq!(expand("plain", &lookup), "plain");
    }

    #[test]
    fn env_and_args_are_expanded() {
        let mut pod = Pod::default();
        pod.metadata.name = "web-1".into();
        pod.metadata.namespace = Some("shop".into());
        pod.metadata.labels.insert("app".into(), "web".into());
        let container = Container {
            name: "c".into(),
            command: vec!["echo".into()],
            args: vec!["$(GREETING)".into(), "$(POD)".into(), "$(MISSING)".into()],
            env: vec![
                EnvVar {
                    name: "NAME".into(),
                    value: Some("world".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "GREETING".into(),
                    value: Some("hello-$(NAME)".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "POD".into(),
                    value_from: Some(
                        serde_json::json!({"fieldRef": {"fieldPath": "metadata.namespace"}}),
                    ),
                    ..Default::default()
                },
                EnvVar {
                    name: "APP".into(),
                    value_from: Some(
                        serde_json::json!({"fieldRef": {"fieldPath": "metadata.labels['app']"}}),
                    ),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let launch = prepare(&pod, &sandbox(), &container).expect("runnable");
        assert_eq!(launch.argv, ["echo", "hello-world", "shop", "$(MISSING)"]);
        let env: HashMap<_, _> = launch.env.into_iter().collect();
        assert_eq!(env["HOSTNAME"], "web-1");
        assert_eq!(env["APP"], "web");
        assert!(env.contains_key("PATH"));
    }

    #[test]
    fn image_only_containers_say_why() {
        let container = Container {
            name: "c".into(),
            image: "nginx:1.27".into(),
            ..Default::default()
        };
        let err = prepare(&Pod::default(), &sandbox(), &container).expect_err("image");
        assert_eq!(err.reason, "ImageNotSupported");
        assert_eq!(
            err.message,
            "the process runtime runs commands; this container has only an image (nginx:1.27): \
             set command, or use a containerd runtime"
        );
        let secret = Container {
            name: "c".into(),
            command: vec!["true".into()],
            env: vec![EnvVar {
                name: "PW".into(),
                value_from: Some(serde_json::json!({"secretKeyRef": {"name": "s", "key": "k"}})),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = prepare(&Pod::default(), &sandbox(), &secret).expect_err("secret");
        assert_eq!(err.reason, "CreateContainerConfigError");
        assert!(err.message.contains("secretKeyRef"), "{}", err.message);
    }
}
