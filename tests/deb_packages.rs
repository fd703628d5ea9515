//! The Debian packages of `cargo xtask dist` (`target/dist/p1lb_<version>_<arch>.deb`):
//! their control data and contents (`dpkg-deb`), the arm64 and armhf binaries under
//! qemu-user against the amd64 one, `systemd-analyze verify` of the packaged unit, and
//! the amd64 package installed, upgraded over a hand-edited config, removed and purged
//! by the real dpkg in a throwaway root (`--root`, maintainer scripts chrootless).
//!
//! The packages are built by `cargo xtask dist`, not by this test. Without them (or
//! without dpkg-deb, qemu-user, mbpoll) every test here says so and skips — except under
//! CI (`CI` set), where `.ci/run` builds them first and a missing one fails the test.

use std::ffi::OsStr;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

mod common;

use common::{
    defaults_1000_1022, free_port, mbpoll_tcp, mbpoll_values, spawn_listening, temp_dir, write_plan,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One package: Debian's architecture name, the ELF machine of its binary and how to run
/// that binary on this (amd64) machine.
struct Arch {
    debian: &'static str,
    /// `e_machine` of the ELF header: 62 x86-64, 183 AArch64, 40 ARM.
    machine: u16,
    /// 64-bit ELF (`EI_CLASS` 2) or 32-bit (1).
    elf64: bool,
    /// What `file` says about the binary.
    file_says: &'static str,
    /// qemu-user and its `-L` sysroot (Debian's cross libc), `None`: runs natively.
    qemu: Option<(&'static str, &'static str)>,
}

const ARCHES: [Arch; 3] = [
    Arch {
        debian: "arm64",
        machine: 183,
        elf64: true,
        file_says: "ARM aarch64",
        qemu: Some(("qemu-aarch64", "/usr/aarch64-linux-gnu")),
    },
    Arch {
        debian: "armhf",
        machine: 40,
        elf64: false,
        file_says: "ARM, EABI5",
        qemu: Some(("qemu-arm", "/usr/arm-linux-gnueabihf")),
    },
    Arch {
        debian: "amd64",
        machine: 62,
        elf64: true,
        file_says: "x86-64",
        qemu: None,
    },
];

/// Skips the calling test (returns `false`) with a loud message, or fails it under CI.
fn unavailable(what: &str) -> bool {
    let msg = format!("{what}: SKIPPING this test");
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg} — not allowed under CI (.ci/run runs `cargo xtask dist` before the tests)"
    );
    eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    false
}

/// `<target dir>/dist`, where `cargo xtask dist` writes.
fn dist_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| manifest.join(d))
        .unwrap_or_else(|| manifest.join("target"))
        .join("dist")
}

fn package(debian: &str) -> PathBuf {
    dist_dir().join(format!("p1lb_{VERSION}_{debian}.deb"))
}

fn tool_runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .is_ok()
}

/// All three packages and the tools named are there (else skip, or fail under CI).
fn ready(tools: &[&str]) -> bool {
    let missing: Vec<_> = ARCHES
        .iter()
        .map(|a| package(a.debian))
        .filter(|p| !p.is_file())
        .collect();
    if !missing.is_empty() {
        return unavailable(&format!(
            "packages not built ({}): run `cargo xtask dist`",
            missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for tool in ["dpkg-deb"].iter().chain(tools) {
        if !tool_runs(tool, "--version") {
            return unavailable(&format!("{tool} is not installed"));
        }
    }
    true
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs and requires exit 0; returns stdout and stderr together.
fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

/// The package's files unpacked into a fresh folder (`dpkg-deb -x`).
fn unpack(debian: &str) -> PathBuf {
    let dir = temp_dir(&format!("deb-{debian}"));
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(package(debian))
            .arg(&dir),
    );
    dir
}

/// A command running `binary` the way this machine can: natively or under qemu-user.
fn command_for(a: &Arch, binary: &Path) -> Command {
    match a.qemu {
        Some((qemu, sysroot)) => {
            let mut cmd = Command::new(qemu);
            cmd.arg("-L").arg(sysroot).arg(binary);
            cmd
        }
        None => Command::new(binary),
    }
}

/// A daemon killed when the test ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_file(path: &str) -> Vec<u8> {
    fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

#[test]
fn every_package_has_the_right_architecture_binary_conffile_unit_rules_and_scripts() {
    if !ready(&["file"]) {
        return;
    }
    for a in &ARCHES {
        let deb = package(a.debian);
        let info = run_ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no {name} in {}:\n{info}", deb.display()))
        };
        assert_eq!(field("Package"), "p1lb");
        assert_eq!(field("Version"), VERSION);
        assert_eq!(field("Architecture"), a.debian, "{info}");
        let depends = field("Depends");
        assert!(depends.contains("libc6"), "Depends: {depends}");
        assert!(depends.contains("systemd"), "Depends: {depends}");
        for script in ["preinst", "postinst", "prerm", "postrm", "conffiles"] {
            assert!(
                info.lines().any(|l| {
                    let w: Vec<_> = l.split_whitespace().collect();
                    w.get(1) == Some(&"bytes,") && w.contains(&script)
                }),
                "no {script} in the control member of {}:\n{info}",
                deb.display()
            );
        }

        let contents = run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
        for (path, mode) in [
            ("./usr/bin/p1lb", "-rwxr-xr-x"),
            ("./etc/p1lb/p1lb.toml", "-rw-r-----"),
            ("./usr/lib/systemd/system/p1lb.service", "-rw-r--r--"),
            ("./usr/lib/udev/rules.d/99-p1lb.rules", "-rw-r--r--"),
            ("./usr/lib/sysusers.d/p1lb.conf", "-rw-r--r--"),
        ] {
            assert!(
                contents
                    .lines()
                    .any(|l| l.starts_with(mode) && l.ends_with(&format!(" {path}"))),
                "no {mode} {path} in {}:\n{contents}",
                deb.display()
            );
        }

        let control = temp_dir(&format!("control-{}", a.debian));
        run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
        let conffiles = fs::read_to_string(control.join("conffiles")).expect("conffiles");
        assert_eq!(conffiles.trim(), "/etc/p1lb/p1lb.toml");
        let postinst = fs::read_to_string(control.join("postinst")).expect("postinst");
        // Enabled, never started on install; try-restart only on upgrade; the user.
        assert!(postinst.contains("deb-systemd-helper enable p1lb.service"));
        assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
        assert!(postinst.contains("deb-systemd-invoke try-restart p1lb.service"));
        assert!(postinst.contains("systemd-sysusers"), "{postinst}");
        assert!(postinst.contains("sudo systemctl start p1lb"), "{postinst}");
        for script in ["preinst", "postinst", "prerm", "postrm"] {
            let mode = fs::metadata(control.join(script)).expect(script).mode();
            assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        }

        let root = unpack(a.debian);
        for (packaged, source) in [
            ("etc/p1lb/p1lb.toml", "config/p1lb.toml"),
            (
                "usr/lib/systemd/system/p1lb.service",
                "systemd/p1lb.service",
            ),
            (
                "usr/lib/udev/rules.d/99-p1lb.rules",
                "systemd/99-p1lb.rules",
            ),
            ("usr/lib/sysusers.d/p1lb.conf", "systemd/p1lb.sysusers"),
        ] {
            assert!(
                fs::read(root.join(packaged)).expect(packaged) == repo_file(source),
                "{packaged} differs from {source}"
            );
        }
        let binary = root.join("usr/bin/p1lb");
        let elf = fs::read(&binary).expect("binary");
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf[4], if a.elf64 { 2 } else { 1 }, "EI_CLASS");
        assert_eq!(elf[5], 1, "little endian");
        assert_eq!(
            u16::from_le_bytes([elf[18], elf[19]]),
            a.machine,
            "e_machine of the {} binary",
            a.debian
        );
        if a.debian == "armhf" {
            // e_flags: EABI version 5, hard-float calling convention.
            let flags = u32::from_le_bytes([elf[36], elf[37], elf[38], elf[39]]);
            assert_eq!(flags >> 24, 5, "EABI version: {flags:#x}");
            assert_ne!(flags & 0x400, 0, "not hard-float: {flags:#x}");
        }
        let said = run_ok(Command::new("file").arg("-b").arg(&binary));
        assert!(said.contains(a.file_says), "{}: {said}", a.debian);
        assert!(said.contains(", stripped"), "{}: {said}", a.debian);
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_dir_all(&control);
    }
}

/// The stripped binaries stay small (the goal: 6 MB on arm64).
#[test]
fn the_stripped_arm64_binary_is_at_most_6_mb() {
    if !ready(&[]) {
        return;
    }
    let root = unpack("arm64");
    let size = fs::metadata(root.join("usr/bin/p1lb"))
        .expect("binary")
        .len();
    assert!(size <= 6_000_000, "arm64 /usr/bin/p1lb: {size} bytes");
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn arm_binaries_under_qemu_parse_every_sample_telegram_like_the_amd64_one() {
    if !ready(&["qemu-aarch64", "qemu-arm"]) {
        return;
    }
    let telegrams = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/telegrams");
    let mut samples: Vec<PathBuf> = fs::read_dir(&telegrams)
        .expect("tests/telegrams")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name() != Some(OsStr::new("INDEX.md")))
        .collect();
    samples.sort();
    assert!(samples.len() >= 10, "{samples:?}");
    let roots: Vec<(&Arch, PathBuf)> = ARCHES.iter().map(|a| (a, unpack(a.debian))).collect();
    let mut valid = 0;
    for sample in &samples {
        let parse = |a: &Arch, root: &Path| {
            let out = run(command_for(a, &root.join("usr/bin/p1lb"))
                .args(["parse", "--json"])
                .arg(sample));
            (out.status.code(), out.stdout, out.stderr)
        };
        let (amd64, amd64_root) = roots.iter().find(|(a, _)| a.debian == "amd64").unwrap();
        let want = parse(amd64, amd64_root);
        assert!(!want.1.is_empty(), "no output for {}", sample.display());
        valid += String::from_utf8_lossy(&want.1)
            .matches("\"valid\":true")
            .count();
        for (a, root) in roots.iter().filter(|(a, _)| a.qemu.is_some()) {
            let got = parse(a, root);
            assert!(
                got == want,
                "{} under qemu differs from amd64 on {}:\n{}\n{}\n--- amd64:\n{}\n{}",
                a.debian,
                sample.display(),
                String::from_utf8_lossy(&got.1),
                String::from_utf8_lossy(&got.2),
                String::from_utf8_lossy(&want.1),
                String::from_utf8_lossy(&want.2)
            );
        }
    }
    assert!(valid >= samples.len() - 1, "{valid} valid telegrams");
    for (_, root) in roots {
        let _ = fs::remove_dir_all(root);
    }
}

/// `p1lb run --p1 sim --rs485 sim --modbus-tcp 127.0.0.1:PORT` under qemu-user answers
/// mbpoll's read of 1000–1022 with the defaults.
#[test]
fn arm_daemons_under_qemu_answer_mbpoll_with_the_defaults() {
    if !ready(&["qemu-aarch64", "qemu-arm", "mbpoll"]) {
        return;
    }
    for a in ARCHES.iter().filter(|a| a.qemu.is_some()) {
        let root = unpack(a.debian);
        let state = root.join("state");
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = command_for(a, &root.join("usr/bin/p1lb"));
        cmd.args(["run", "--p1", "sim", "--rs485", "sim", "--modbus-tcp"])
            .arg(addr.to_string())
            .arg("--state-dir")
            .arg(&state)
            .env("RUST_LOG", "info");
        let log = root.join("daemon.log");
        let daemon = Daemon(spawn_listening(cmd, addr, &log, Duration::from_secs(30)));
        let (ok, text) = mbpoll_tcp(port, 1000, 23, None);
        assert!(ok, "{}: {text}", a.debian);
        let values = mbpoll_values(&text);
        assert_eq!(values.len(), 23, "{}: {text}", a.debian);
        for want in defaults_1000_1022() {
            assert!(
                values.contains(&want),
                "{}: {want:?} not in {text}",
                a.debian
            );
        }
        drop(daemon);
        let log = fs::read_to_string(&log).unwrap_or_default();
        assert!(log.contains("Modbus TCP: listening"), "{log}");
        let _ = fs::remove_dir_all(&root);
    }
}

/// `systemd-analyze verify --root=DIR` of the packaged unit, DIR holding the amd64
/// package's files and this machine's own units (the targets the unit depends on).
fn verify(root: &Path) -> (bool, String) {
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("--man=no")
        .arg(root.join("usr/lib/systemd/system/p1lb.service"))
        .env("SYSTEMD_LOG_LEVEL", "notice"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && !text.contains("p1lb.service:"),
        text,
    )
}

#[test]
fn systemd_analyze_verify_accepts_the_packaged_unit() {
    if !ready(&["systemd-analyze"]) {
        return;
    }
    if !Path::new("/lib/systemd/system/sysinit.target").exists() {
        unavailable("no systemd units on this machine (apt-get install systemd)");
        return;
    }
    let root = unpack("amd64");
    // The host's units next to p1lb.service (-n: the packaged one is kept).
    run_ok(
        Command::new("cp")
            .arg("-an")
            .arg("/lib/systemd/system/.")
            .arg(root.join("usr/lib/systemd/system")),
    );
    let (ok, text) = verify(&root);
    assert!(ok, "systemd-analyze verify:\n{text}");
    // And it does check: without the binary named by ExecStart it refuses.
    fs::remove_file(root.join("usr/bin/p1lb")).unwrap();
    let (ok, text) = verify(&root);
    assert!(!ok && text.contains("/usr/bin/p1lb"), "{text}");
    let _ = fs::remove_dir_all(&root);
}

/// The ARMv6 guard of the preinst, with `uname -m` and `dpkg --print-architecture` faked.
#[test]
fn the_preinst_refuses_armv6_boards_only() {
    if !ready(&[]) {
        return;
    }
    let control = temp_dir("preinst");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(package("armhf"))
            .arg(&control),
    );
    let fake = control.join("bin");
    fs::create_dir_all(&fake).unwrap();
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (machine, dpkg_arch, refused) in [
        ("armv6l", "armhf", true),
        ("armv7l", "armhf", false),
        ("aarch64", "armhf", false),
        ("armv6l", "arm64", false),
    ] {
        for (name, says) in [("uname", machine), ("dpkg", dpkg_arch)] {
            let script = fake.join(name);
            fs::write(&script, format!("#!/bin/sh\necho {says}\n")).unwrap();
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = run(Command::new(control.join("preinst"))
            .arg("install")
            .env("PATH", &path)
            .env_remove("DPKG_ROOT"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            !out.status.success(),
            refused,
            "{machine}/{dpkg_arch}: {err}"
        );
        assert_eq!(err.contains("ARMv6"), refused, "{err}");
    }
    let _ = fs::remove_dir_all(&control);
}

/// A throwaway root for `dpkg --root`: its own dpkg database and user database.
fn throwaway_root() -> PathBuf {
    let root = temp_dir("dpkg-root");
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "etc/systemd/system",
        "usr/bin",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    // dialout as on Debian; gpio as on Raspberry Pi OS.
    fs::write(
        root.join("etc/group"),
        "root:x:0:\ndialout:x:20:\ngpio:x:997:\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/gshadow"),
        "root:*::\ndialout:*::\ngpio:!::\n",
    )
    .unwrap();
    root
}

/// `dpkg --root=ROOT` with the maintainer scripts run outside a chroot (`DPKG_ROOT`).
fn dpkg(root: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// The numeric uid and gid of `name` in the root's user database.
fn ids(root: &Path, name: &str) -> (u32, u32) {
    let field = |file: &str| -> Option<u32> {
        fs::read_to_string(root.join(file))
            .ok()?
            .lines()
            .find(|l| l.split(':').next() == Some(name))?
            .split(':')
            .nth(2)?
            .parse()
            .ok()
    };
    let uid = field("etc/passwd").unwrap_or_else(|| panic!("no user {name}"));
    let gid = field("etc/group").unwrap_or_else(|| panic!("no group {name}"));
    (uid, gid)
}

/// The members of `group` in the root's /etc/group.
fn members(root: &Path, group: &str) -> Vec<String> {
    fs::read_to_string(root.join("etc/group"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.split(':').next() == Some(group))
        .and_then(|l| l.split(':').nth(3))
        .map(|m| {
            m.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The installed unit's `ExecStart=`, with its paths moved into the throwaway root.
fn exec_start(root: &Path) -> Vec<String> {
    let unit = fs::read_to_string(root.join("usr/lib/systemd/system/p1lb.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    line.split_whitespace()
        .map(|w| {
            if w.starts_with('/') {
                format!("{}{w}", root.display())
            } else {
                w.to_owned()
            }
        })
        .collect()
}

/// The installed service as the unit starts it (its ExecStart, as the user p1lb), on a
/// free Modbus TCP port.
fn start_service(root: &Path) -> (Daemon, u16) {
    let (uid, gid) = ids(root, "p1lb");
    let argv = exec_start(root);
    assert!(
        Path::new(&argv[0]).is_file(),
        "ExecStart {} is not installed",
        argv[0]
    );
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
    ])
    .args(&argv)
    .arg("--modbus-tcp")
    .arg(addr.to_string())
    .env("RUST_LOG", "info");
    let log = root.join(format!("daemon-{port}.log"));
    (
        Daemon(spawn_listening(cmd, addr, &log, Duration::from_secs(10))),
        port,
    )
}

/// Builds a copy of the package with another version (and, when `conffile_note` is given,
/// a changed packaged config), as a newer release would be.
fn newer_package(version: &str, conffile_note: Option<&str>, scratch: &Path) -> PathBuf {
    let tree = scratch.join(format!("tree-{version}"));
    let _ = fs::remove_dir_all(&tree);
    run_ok(
        Command::new("dpkg-deb")
            .arg("-R")
            .arg(package("amd64"))
            .arg(&tree),
    );
    let control = tree.join("DEBIAN/control");
    let text = fs::read_to_string(&control).unwrap();
    let text = text.replace(
        &format!("Version: {VERSION}\n"),
        &format!("Version: {version}\n"),
    );
    fs::write(&control, text).unwrap();
    if let Some(note) = conffile_note {
        let conf = tree.join("etc/p1lb/p1lb.toml");
        let mut text = fs::read_to_string(&conf).unwrap();
        text.push_str(note);
        fs::write(&conf, text).unwrap();
        // conffiles are listed by path; md5sums must follow the new content.
        let md5 = run_ok(
            Command::new("md5sum")
                .arg("etc/p1lb/p1lb.toml")
                .current_dir(&tree),
        );
        let sums = fs::read_to_string(tree.join("DEBIAN/md5sums")).unwrap_or_default();
        let sums: String = sums
            .lines()
            .map(|l| {
                if l.ends_with(" etc/p1lb/p1lb.toml") {
                    md5.trim().to_owned()
                } else {
                    l.to_owned()
                }
            })
            .map(|l| l + "\n")
            .collect();
        if !sums.is_empty() {
            fs::write(tree.join("DEBIAN/md5sums"), sums).unwrap();
        }
    }
    let deb = scratch.join(format!("p1lb_{version}_amd64.deb"));
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-b"])
            .arg(&tree)
            .arg(&deb),
    );
    deb
}

fn status(root: &Path) -> String {
    let out = run(Command::new("dpkg-query")
        .arg(format!("--root={}", root.display()))
        .args(["--status", "p1lb"]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Install, run, save, hand-edit, upgrade twice, remove, purge: the amd64 package with
/// the real dpkg in a throwaway root. Needs root (dpkg, chown, setpriv).
#[test]
fn the_amd64_package_installs_runs_upgrades_over_a_hand_edit_and_purges() {
    if !ready(&["dpkg", "mbpoll", "setpriv", "systemd-sysusers"]) {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        unavailable("not root (dpkg --root and the postinst's chown need it)");
        return;
    }
    let root = throwaway_root();
    let scratch = temp_dir("dpkg-scratch");

    // Install: the message, the user in dialout and gpio, the unit enabled.
    let said = run_ok(dpkg(&root).arg("--install").arg(package("amd64")));
    assert!(said.contains("enabled, but not started"), "{said}");
    assert!(said.contains("sudo systemctl start p1lb"), "{said}");
    assert!(said.contains("journalctl -u p1lb -f"), "{said}");
    assert!(status(&root).contains("Status: install ok installed"));
    let (uid, gid) = ids(&root, "p1lb");
    assert!(uid > 0 && uid < 1000, "system uid {uid}");
    assert!(members(&root, "dialout").contains(&"p1lb".to_owned()));
    assert!(members(&root, "gpio").contains(&"p1lb".to_owned()));
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains(":/nonexistent:/usr/sbin/nologin"),
        "{passwd}"
    );
    let wants = root.join("etc/systemd/system/multi-user.target.wants/p1lb.service");
    assert_eq!(
        fs::read_link(&wants).expect("enabled: the wants symlink"),
        Path::new("/usr/lib/systemd/system/p1lb.service")
    );
    let etc = root.join("etc/p1lb");
    let conf = etc.join("p1lb.toml");
    for (path, mode) in [(&etc, 0o750), (&conf, 0o640)] {
        let m = fs::metadata(path).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{}", path.display());
        assert_eq!(m.mode() & 0o7777, mode, "{}", path.display());
    }
    assert_eq!(fs::read(&conf).unwrap(), repo_file("config/p1lb.toml"));

    // The installed binary starts with the packaged config, as the user p1lb, and can
    // save into /etc/p1lb (temporary file + rename in that folder).
    let plan = write_plan();
    let (address, good, _) = *plan.iter().find(|(a, _, _)| *a == 1016).unwrap();
    {
        let (daemon, port) = start_service(&root);
        let (ok, text) = mbpoll_tcp(port, 1000, 23, None);
        assert!(ok, "{text}");
        for want in defaults_1000_1022() {
            assert!(mbpoll_values(&text).contains(&want), "{want:?}: {text}");
        }
        let (ok, text) = mbpoll_tcp(port, address, 1, Some(good));
        assert!(ok, "{text}");
        let (ok, text) = mbpoll_tcp(port, 1091, 1, Some(1));
        assert!(ok, "save: {text}");
        drop(daemon);
    }
    let saved = fs::read_to_string(&conf).unwrap();
    let setting = p1lb_core::config::SETTINGS
        .iter()
        .find(|s| s.address == address)
        .unwrap();
    assert!(
        saved.contains(&format!("\n{} = {good}\n", setting.name)),
        "the save did not reach the file:\n{saved}"
    );
    assert_eq!(fs::metadata(&conf).unwrap().uid(), uid);
    assert!(!etc.join(".p1lb.toml.tmp").exists());

    // A hand edit on top: a comment and another setting.
    let (hand, hand_value, _) = *plan.iter().find(|(a, _, _)| *a == 1019).unwrap();
    let hand_setting = p1lb_core::config::SETTINGS
        .iter()
        .find(|s| s.address == hand)
        .unwrap();
    let from = format!("\n{} = {}\n", hand_setting.name, hand_setting.default);
    assert!(saved.contains(&from), "{saved}");
    let edited = saved.replace(
        &from,
        &format!("\n# edited by hand\n{} = {hand_value}\n", hand_setting.name),
    );
    fs::write(&conf, &edited).unwrap();

    // Upgrade 1: the packaged config unchanged → the edited file stays, no question.
    let v2 = format!("{VERSION}+test1");
    let said = run_ok(
        dpkg(&root)
            .arg("--install")
            .arg(newer_package(&v2, None, &scratch)),
    );
    assert!(
        !said.contains("not started"),
        "the install message on upgrade:\n{said}"
    );
    assert!(status(&root).contains(&format!("Version: {v2}")));
    assert_eq!(fs::read_to_string(&conf).unwrap(), edited);
    assert!(!etc.join("p1lb.toml.dpkg-dist").exists());
    assert!(!etc.join("p1lb.toml.dpkg-new").exists());
    assert_eq!(fs::metadata(&conf).unwrap().uid(), uid);
    assert!(fs::read_link(&wants).is_ok(), "still enabled");

    // Upgrade 2: the packaged config changed too → the edit is kept (as apt does with
    // --force-confold), the new one lands next to it.
    let v3 = format!("{VERSION}+test2");
    let note = "# a comment added by a newer release\n";
    let said = run_ok(
        dpkg(&root)
            .arg("--force-confold")
            .arg("--install")
            .arg(newer_package(&v3, Some(note), &scratch)),
    );
    assert!(status(&root).contains(&format!("Version: {v3}")), "{said}");
    assert_eq!(fs::read_to_string(&conf).unwrap(), edited);
    let dist = fs::read_to_string(etc.join("p1lb.toml.dpkg-dist")).expect("dpkg-dist");
    assert!(dist.ends_with(note));
    fs::remove_file(etc.join("p1lb.toml.dpkg-dist")).unwrap();

    // The upgraded binary runs on the edited config: both values in force.
    {
        let (daemon, port) = start_service(&root);
        for (address, value) in [(address, good), (hand, hand_value)] {
            let (ok, text) = mbpoll_tcp(port, address, 1, None);
            assert!(ok, "{text}");
            assert_eq!(mbpoll_values(&text), [(address, value)], "{text}");
        }
        drop(daemon);
    }

    // Remove: the program goes, the configuration stays.
    run_ok(dpkg(&root).args(["--remove", "p1lb"]));
    assert!(!root.join("usr/bin/p1lb").exists());
    assert_eq!(fs::read_to_string(&conf).unwrap(), edited);
    assert!(status(&root).contains("Status: deinstall ok config-files"));

    // Purge: the configuration and its folder go too.
    run_ok(dpkg(&root).args(["--purge", "p1lb"]));
    assert!(!etc.exists(), "/etc/p1lb left after purge");
    assert!(fs::symlink_metadata(&wants).is_err(), "wants symlink left");
    assert!(!status(&root).contains("Status: install"));

    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_dir_all(&scratch);
}
