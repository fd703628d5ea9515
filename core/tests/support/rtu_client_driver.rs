// The rtu_client fuzz target's driver, shared with its regression test
// (`include!`d by core/fuzz/fuzz_targets/rtu_client.rs and
// core/tests/modbus_client_regressions.rs): one definition of what is checked.

/// Runs one fuzz input through the client: arbitrary replies at arbitrary times, via
/// stream bytes and whole frames. Panics when a check fails.
pub fn run(data: &[u8]) {
    use p1lb_core::time::{Duration, Instant};
    let [kind, a0, a1, q, unit, rest @ ..] = data else {
        return;
    };
    let start = u16::from_be_bytes([*a0, *a1]);
    let quantity = u16::from(*q % 125) + 1;
    let values = [start, quantity, 7];
    let req = match kind % 4 {
        0 => Request::ReadHolding { start, quantity },
        1 => Request::ReadInput { start, quantity },
        2 => Request::WriteSingle {
            address: start,
            value: quantity,
        },
        _ => Request::WriteMultiple {
            start,
            values: Words::Native(&values[..usize::from(kind >> 6).min(2) + 1]),
        },
    };
    let unit = *unit % 4;
    let mut c = Client::new(ClientConfig {
        response_timeout: Duration::from_millis(10),
        retries: kind >> 6,
        idle: Duration::from_millis(1),
    });
    c.start(unit, &req).expect("start");
    let mut now = Instant::ZERO;
    let mut results = 0;
    // Records: a control byte (time step, input kind, CRC fix), a length, the bytes.
    let mut rest = rest;
    while let [ctl, len, tail @ ..] = rest {
        now += Duration::from_micros(u64::from(ctl >> 2) * 500);
        let n = usize::from(*len % 64).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        let _ = c.poll_transmit(now);
        let mut frame = chunk.to_vec();
        if ctl & 2 != 0 {
            if let Some(first) = frame.first_mut() {
                *first = unit;
            }
            let crc = crc16_modbus(&frame);
            frame.extend_from_slice(&crc.to_le_bytes());
        }
        if ctl & 1 == 0 {
            c.on_bytes(now, &frame);
        } else {
            c.on_frame(now, &frame);
        }
        if let Some(r) = c.poll_result(now) {
            if let Reply::Registers(regs) = r {
                assert_eq!(regs.len(), usize::from(quantity));
            }
            let _ = r.outcome();
            results += 1;
            c.start(unit, &req).expect("idle after a result");
        }
    }
    // Time alone ends any request.
    for _ in 0..10 {
        let _ = c.poll_transmit(now);
        if c.poll_result(now).is_some() {
            results += 1;
            break;
        }
        let next = c.poll_timeout().expect("pending");
        assert!(next > now, "deadline {next} not after {now}");
        now = next;
    }
    assert!(results > 0);
}
