//! `systemd/99-p1lb.rules`: every rule line names a subsystem and adds a symlink, and
//! the stable names the documentation promises are there.

const RULES: &str = include_str!("../systemd/99-p1lb.rules");
const SERVICE: &str = include_str!("../systemd/p1lb.service");

#[test]
fn every_udev_rule_has_a_subsystem_and_a_symlink() {
    let rules: Vec<&str> = RULES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(rules.len() >= 3, "{rules:?}");
    for rule in &rules {
        assert!(rule.contains("SUBSYSTEM==\""), "no SUBSYSTEM: {rule}");
        assert!(rule.contains("SYMLINK+=\""), "no SYMLINK: {rule}");
    }
    for (needle, what) in [
        ("SYMLINK+=\"p1-meter\"", "the P1 cable"),
        ("SYMLINK+=\"rs485\"", "the RS485 HAT"),
        (
            "ATTRS{idVendor}==\"0403\", ATTRS{idProduct}==\"6001\"",
            "FTDI FT232R",
        ),
        (
            "ATTRS{idVendor}==\"067b\", ATTRS{idProduct}==\"2303\"",
            "Prolific 2303",
        ),
        ("KERNEL==\"ttyAMA0\"", "the Pi's UART"),
    ] {
        assert!(
            rules.iter().any(|r| r.contains(needle)),
            "no rule for {what}"
        );
    }
}

#[test]
fn the_service_file_mentions_the_udev_rules() {
    let header: String = SERVICE
        .lines()
        .take_while(|l| l.starts_with('#') || l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(header.contains("99-p1lb.rules"), "{header}");
}
