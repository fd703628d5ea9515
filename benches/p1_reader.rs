//! Throughput of the P1 reader on the sample corpus, and in the same run
//! `dsmr_parser` (Home Assistant's parser) on the same corpus.
//!
//! `cargo bench --bench p1_reader` (P1LB_BENCH_SECONDS sets the time per measurement,
//! default 3). Goal: ≥ 100× dsmr_parser.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use p1lb_core::p1::{Event, GridSource, Reading, TelegramReader};

fn corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("telegram dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

/// Feeds every sample (one reader, as on a live line) `rounds` times; returns the
/// number of telegrams.
fn run(samples: &[Vec<u8>], with_model: bool, budget: Duration) -> (u64, u64, Duration) {
    let mut reader: TelegramReader = TelegramReader::new();
    let (mut bytes, mut telegrams) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < budget {
        for s in samples {
            let mut rest = &s[..];
            while !rest.is_empty() {
                let (used, event) = reader.feed(black_box(rest));
                rest = &rest[used..];
                if let Some(Event::Telegram(t)) = event {
                    telegrams += 1;
                    if with_model {
                        let r = Reading::parse(&t);
                        black_box(r.grid_currents_ma(GridSource::Auto));
                    } else {
                        black_box(t.objects().count());
                    }
                }
            }
            bytes += s.len() as u64;
        }
    }
    (bytes, telegrams, start.elapsed())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let secs: f64 = std::env::var("P1LB_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let budget = Duration::from_secs_f64(secs);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/telegrams");
    let samples = corpus(&dir);
    let size: usize = samples.iter().map(Vec::len).sum();
    println!(
        "corpus: {} telegrams, {} bytes ({})",
        samples.len(),
        size,
        dir.display()
    );

    let mut ours = 0.0;
    for (name, model) in [
        ("reader (framing, CRC, syntax)", false),
        ("reader + model", true),
    ] {
        let (bytes, telegrams, t) = run(&samples, model, budget);
        let mbps = bytes as f64 / t.as_secs_f64() / 1e6;
        let per = t.as_secs_f64() * 1e6 / telegrams as f64;
        println!("p1lb {name:<30} {mbps:9.1} MB/s  {per:6.2} µs/telegram");
        if model {
            ours = mbps;
        }
    }

    let script = root.join("tools/bench_dsmr_parser.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .arg(format!("{secs}"))
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout);
            print!("{line}");
            let theirs: Option<f64> = line.split_whitespace().nth(2).and_then(|s| s.parse().ok());
            if let Some(theirs) = theirs {
                println!(
                    "p1lb reader + model is {:.0}x dsmr_parser (goal >= 100x)",
                    ours / theirs
                );
            }
        }
        Ok(o) => println!(
            "dsmr_parser not measured: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => println!("dsmr_parser not measured: python3: {e}"),
    }
}
