//! The register table in README.md is generated from the core's register table
//! (`p1lb_core::registers::markdown_table`, whose settings come from
//! `p1lb_core::config::SETTINGS`): this test regenerates it and checks that the README
//! holds it verbatim between the `<!-- registers:begin -->` and
//! `<!-- registers:end -->` markers.
//!
//! After changing a register or a setting, run
//! `P1LB_BLESS=1 cargo test --test readme_registers`: with `P1LB_BLESS=1` the test
//! rewrites that region of README.md (and nothing else) instead of failing, then passes.

use std::path::PathBuf;

const BEGIN: &str = "<!-- registers:begin -->";
const END: &str = "<!-- registers:end -->";

fn generated() -> String {
    let mut table = String::new();
    p1lb_core::registers::markdown_table(&mut table).expect("format the table");
    format!("{BEGIN}\n{table}{END}")
}

#[test]
fn readme_register_table_is_generated_from_the_core() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let begin = readme
        .find(BEGIN)
        .unwrap_or_else(|| panic!("README.md has no {BEGIN} marker"));
    let end = readme[begin..]
        .find(END)
        .map(|i| begin + i + END.len())
        .unwrap_or_else(|| panic!("README.md has no {END} marker after {BEGIN}"));
    let want = generated();
    let have = &readme[begin..end];
    if have == want {
        return;
    }
    if std::env::var("P1LB_BLESS").as_deref() == Ok("1") {
        let updated = format!("{}{want}{}", &readme[..begin], &readme[end..]);
        std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("README.md: register table regenerated");
        return;
    }
    // Show the first differing line, then fail with the whole expected region.
    let diff = have
        .lines()
        .zip(want.lines())
        .find(|(h, w)| h != w)
        .map_or_else(
            || "(one is a prefix of the other)".to_string(),
            |(h, w)| format!("README:    {h}\ngenerated: {w}"),
        );
    panic!(
        "README.md's register table differs from the core's register table; \
         run `P1LB_BLESS=1 cargo test --test readme_registers` to regenerate it.\n\
         First difference:\n{diff}"
    );
}
