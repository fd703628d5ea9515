//! `integrations/home-assistant/p1lb.yaml` is generated from the register map
//! (`p1lb::cli::home_assistant::yaml`): this test regenerates it and checks the committed
//! file matches, and that `p1lb home-assistant` prints the same.
//!
//! After changing a register or a setting, run
//! `P1LB_BLESS=1 cargo test --test home_assistant` to rewrite the file.

use std::path::PathBuf;
use std::process::Command;

use p1lb::cli::home_assistant;

#[test]
fn committed_package_is_generated_from_the_register_map() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(home_assistant::PATH);
    let want = home_assistant::yaml();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        return;
    }
    if std::env::var("P1LB_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("create folder");
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{}: regenerated", home_assistant::PATH);
        return;
    }
    let diff = have
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (h, w))| h != w)
        .map_or_else(
            || "(one is a prefix of the other)".to_string(),
            |(n, (h, w))| format!("line {}:\nfile:      {h}\ngenerated: {w}", n + 1),
        );
    panic!(
        "{} differs from the register map; run \
         `P1LB_BLESS=1 cargo test --test home_assistant` to regenerate it.\n{diff}",
        home_assistant::PATH
    );
}

#[test]
fn the_subcommand_prints_the_package() {
    let out = Command::new(env!("CARGO_BIN_EXE_p1lb"))
        .arg("home-assistant")
        .output()
        .expect("p1lb runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        home_assistant::yaml()
    );
}

/// When python3 with PyYAML is at hand, the file must load as YAML with one sensor per
/// readable register (skipped otherwise).
#[test]
fn the_package_is_valid_yaml_when_pyyaml_is_available() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(home_assistant::PATH);
    let script = "import sys\n\
try:\n    import yaml\nexcept ImportError:\n    sys.exit(77)\n\
d = yaml.safe_load(open(sys.argv[1]))\n\
print(len(d['modbus'][0]['sensors']))\n";
    let Ok(out) = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
    else {
        eprintln!("SKIPPED: python3 not installed");
        return;
    };
    if out.status.code() == Some(77) {
        eprintln!("SKIPPED: PyYAML not importable");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let readable = p1lb_core::registers::REGISTERS
        .iter()
        .filter(|r| r.access != p1lb_core::registers::Access::Write)
        .count();
    assert_eq!(n, readable);
}
