//! A saved change of the P1 line settings reopens the daemon's P1 source with them (as
//! a saved 1031/1032 reopens the RS485 port): 1035 = 1 is 9600 7E1 for DSMR 2.2/3
//! meters, whose telegrams carry no CRC. Before, the daemon kept the old line and the
//! CRC requirement until the port failed: a real DSMR 3 meter's telegrams were all
//! rejected and the balancer fell back.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Daemon, Pty, have_socat, temp_dir};
use tokio_modbus::prelude::*;

/// Valid and rejected telegrams since boot (1115–1116, 1117–1118).
async fn counts(ctx: &mut tokio_modbus::client::Context) -> (u32, u32) {
    let r = ctx
        .read_holding_registers(1115, 4)
        .await
        .expect("transport")
        .expect("no exception");
    let long = |k: usize| (u32::from(r[k]) << 16) | u32::from(r[k + 1]);
    (long(0), long(2))
}

#[test]
fn a_saved_p1_line_setting_reopens_the_p1_source() {
    if !have_socat() {
        return;
    }
    let dir = temp_dir("p1-line-save");
    let pty = Pty::new(&dir);
    let d = Daemon::in_dir(&dir)
        .args(["--p1"])
        .args([&pty.a])
        .log_has("P1: reading")
        .start();
    let telegram = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/telegrams/nl-dsmr30-iskra-mt382.txt"),
    )
    .expect("DSMR 3 telegram");
    let mut meter = std::fs::OpenOptions::new()
        .write(true)
        .open(&pty.b)
        .expect("open the meter's end");
    let mut send = || {
        meter.write_all(&telegram).expect("write");
        meter.flush().expect("flush");
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut ctx = d.client(10).await;
        // 115200 8N1 with a CRC required (the default): a DSMR 3 telegram is rejected.
        send();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (valid, rejected) = counts(&mut ctx).await;
        assert_eq!(valid, 0, "{}", d.log_text());
        assert!(rejected >= 1, "rejected {rejected}\n{}", d.log_text());
        // 1035 = 1 (9600 7E1, DSMR 2.2/3), saved.
        let w = ctx.write_single_register(1035, 1).await;
        assert!(matches!(w, Ok(Ok(()))), "{w:?}");
        let s = ctx.write_single_register(1091, 1).await;
        assert!(matches!(s, Ok(Ok(()))), "{s:?}");
        // Reopened with the saved line: the same telegram is valid now.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            send();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (valid, _) = counts(&mut ctx).await;
            if valid >= 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "DSMR 3 telegrams still rejected after the save\n{}",
                d.log_text()
            );
        }
        assert!(
            d.log_text()
                .contains("P1: line settings changed (1034/1035)"),
            "{}",
            d.log_text()
        );
    });
}
