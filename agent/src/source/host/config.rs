//! `[sources.host]`: this machine's own resources.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{default_true, duration};
use crate::pattern::{allows, any_match, invalid_pattern};

/// `[sources.host]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSourceConfig {
    /// Set to false to stop reading host resources.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often to poll.
    #[serde(default = "default_host_interval", with = "duration")]
    pub interval: Duration,
    /// How long one poll may take before it counts as failed.
    #[serde(default = "default_host_timeout", with = "duration")]
    pub timeout: Duration,
    /// Which network interfaces are read, by name.
    #[serde(default)]
    pub interfaces: InterfaceFilter,
    /// Which filesystems are read.
    #[serde(default)]
    pub filesystems: FilesystemFilter,
}

/// `[sources.host.interfaces]`: patterns (`*`, `?`) on interface names. A list
/// left out keeps its default; `exclude = []` reads every interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceFilter {
    /// Interfaces read: empty means all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Interfaces never read; wins over `include`.
    #[serde(default = "default_interface_excludes")]
    pub exclude: Vec<String>,
}

impl Default for InterfaceFilter {
    fn default() -> Self {
        InterfaceFilter {
            include: Vec::new(),
            exclude: default_interface_excludes(),
        }
    }
}

impl InterfaceFilter {
    /// Whether the interface `name` is read.
    pub fn allows(&self, name: &str) -> bool {
        allows(&self.include, &self.exclude, name)
    }
}

/// `[sources.host.filesystems]`: patterns on mount points and filesystem
/// types. A list left out keeps its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemFilter {
    /// Mount points read: empty means all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Mount points never read; wins over `include`.
    #[serde(default = "default_mount_excludes")]
    pub exclude: Vec<String>,
    /// Filesystem types never read (pseudo filesystems hold no disk space).
    #[serde(default = "default_type_excludes")]
    pub exclude_types: Vec<String>,
}

impl Default for FilesystemFilter {
    fn default() -> Self {
        FilesystemFilter {
            include: Vec::new(),
            exclude: default_mount_excludes(),
            exclude_types: default_type_excludes(),
        }
    }
}

impl FilesystemFilter {
    /// Whether a filesystem mounted at `mount_point`, of type `fstype`, is read.
    pub fn allows(&self, mount_point: &str, fstype: &str) -> bool {
        allows(&self.include, &self.exclude, mount_point) && !any_match(&self.exclude_types, fstype)
    }
}

impl Default for HostSourceConfig {
    fn default() -> Self {
        HostSourceConfig {
            enabled: true,
            interval: default_host_interval(),
            timeout: default_host_timeout(),
            interfaces: InterfaceFilter::default(),
            filesystems: FilesystemFilter::default(),
        }
    }
}

fn owned(patterns: &[&str]) -> Vec<String> {
    patterns.iter().map(|p| (*p).to_owned()).collect()
}

/// Interfaces that carry no traffic of the host's own, as node_exporter users
/// leave them out: loopback, intermediate functional blocks (`ifb*`, traffic
/// shaping), the host ends of containers' veth pairs and the bridges and
/// overlays of Docker, Podman, libvirt, LXC and Kubernetes CNIs. A bridge of the
/// host's own uplinks (`br0`, `bond0`) is read.
pub const DEFAULT_INTERFACE_EXCLUDES: &[&str] = &[
    "lo",
    "ifb*",
    "veth*",
    "docker*",
    "br-*",
    "podman*",
    "cni*",
    "flannel*",
    "cali*",
    "vxlan.calico",
    "tunl*",
    "kube-*",
    "cilium_*",
    "lxc*",
    "virbr*",
    "vnet*",
    "dummy*",
];

/// Mount points under the kernel's and container runtimes' trees (node_exporter's
/// `mount-points-exclude` default, plus Kubernetes' and snaps' own mounts).
pub const DEFAULT_MOUNT_EXCLUDES: &[&str] = &[
    "/dev",
    "/dev/*",
    "/proc",
    "/proc/*",
    "/sys",
    "/sys/*",
    "/run/credentials/*",
    "/var/lib/docker/*",
    "/var/lib/containers/storage/*",
    "/var/lib/kubelet/*",
    "/snap/*",
];

/// Filesystem types that hold no disk space of their own.
pub const DEFAULT_TYPE_EXCLUDES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup*",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "erofs",
    "fuse.*",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nfsd",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

fn default_interface_excludes() -> Vec<String> {
    owned(DEFAULT_INTERFACE_EXCLUDES)
}
fn default_mount_excludes() -> Vec<String> {
    owned(DEFAULT_MOUNT_EXCLUDES)
}
fn default_type_excludes() -> Vec<String> {
    owned(DEFAULT_TYPE_EXCLUDES)
}

fn default_host_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_host_timeout() -> Duration {
    Duration::from_secs(3)
}

impl crate::source::Section for HostSourceConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn schedule(&self) -> crate::config::Schedule {
        crate::config::Schedule {
            interval: self.interval,
            timeout: self.timeout,
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, patterns) in [
            ("sources.host.interfaces.include", &self.interfaces.include),
            ("sources.host.interfaces.exclude", &self.interfaces.exclude),
            (
                "sources.host.filesystems.include",
                &self.filesystems.include,
            ),
            (
                "sources.host.filesystems.exclude",
                &self.filesystems.exclude,
            ),
            (
                "sources.host.filesystems.exclude_types",
                &self.filesystems.exclude_types,
            ),
        ] {
            if let Some(p) = invalid_pattern(patterns) {
                return Err((key, format!("has an empty or invalid pattern {p:?}")));
            }
        }
        Ok(())
    }
}

impl crate::source::Field for HostSourceConfig {
    type Section = Self;
    fn present(&self) -> Option<&Self> {
        Some(self)
    }
}
