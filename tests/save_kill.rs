//! A save (1091) survives `kill -9` at a random moment: in a loop, the daemon is
//! started on a state folder, a setting is written and saved over Modbus TCP, and the
//! daemon is killed (SIGKILL) 0–30 ms after the save request went out. After every
//! kill the TOML file parses, its `[settings]` load into `Config`, the setting holds
//! the old or the new value, and a hand-written comment is still there.

mod common;

use common::{Daemon, temp_dir};

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::Duration;

use p1lb_core::config::Config;
use tokio_modbus::prelude::*;

const ITERATIONS: u32 = 15;
const COMMENT: &str = "# hand-written: the fuse is 25 A, keep upper_current below it";
/// upper_current.
const ADDRESS: u16 = 1015;

#[derive(serde::Deserialize)]
struct File {
    settings: Config,
}

fn random_below(n: u64) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() % n
}

fn load(path: &Path) -> (String, Config) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: File = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("the saved file does not parse: {e}\n{text}"));
    (text, file.settings)
}

#[tokio::test]
async fn save_survives_kill_9_at_random_moments() {
    let dir = temp_dir("save-kill");
    let path = dir.join("p1lb.toml");
    // The example with a hand-written comment in [settings].
    let example =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/p1lb.toml")).unwrap();
    let with_comment = example.replacen("[settings]\n", &format!("[settings]\n{COMMENT}\n"), 1);
    assert_ne!(with_comment, example);
    fs::write(&path, with_comment).unwrap();

    let (mut saved_new, mut saved_old) = (0, 0);
    for i in 0..ITERATIONS {
        let (_, before) = load(&path);
        let old = before.upper_ma();
        // Between lower (19000) and alarm (24000), different from the current value.
        let new = 19_100 + (i as u16 % 9) * 500;
        let new = if u32::from(new) == old {
            new + 100
        } else {
            new
        };
        // Killed with SIGKILL when dropped.
        let d = Daemon::in_dir(&dir)
            .args(["--p1", "sim", "--rs485", "sim"])
            .start();
        let mut ctx = d.client(10).await;
        ctx.write_single_register(ADDRESS, new)
            .await
            .expect("transport")
            .expect("setting staged");
        let delay = Duration::from_micros(random_below(30_001));
        let save = tokio::spawn(async move {
            let r = ctx.write_single_register(1091, 1).await;
            (r, ctx)
        });
        tokio::time::sleep(delay).await;
        drop(d); // kill -9
        let answered = matches!(
            tokio::time::timeout(Duration::from_secs(2), save).await,
            Ok(Ok((Ok(Ok(())), _)))
        );

        let (text, after) = load(&path);
        let value = after.upper_ma();
        assert!(
            value == old || value == u32::from(new),
            "iteration {i}: upper_current = {value}, expected {old} or {new}\n{text}"
        );
        if answered {
            assert_eq!(
                value,
                u32::from(new),
                "iteration {i}: an acknowledged save was lost"
            );
        }
        after.validate().expect("a saved set is consistent");
        assert!(
            text.contains(COMMENT),
            "iteration {i}: comment lost\n{text}"
        );
        if value == u32::from(new) {
            saved_new += 1;
        } else {
            saved_old += 1;
        }
    }
    eprintln!("{ITERATIONS} kills: {saved_new} after the save, {saved_old} before it");
    let _ = fs::remove_dir_all(&dir);
}
