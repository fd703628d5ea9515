//! The write path both products run ([`write_path`]), against a host of the test's own
//! (an in-memory store that can be made to fail): a cap wakes the control task; a save
//! is persisted, then committed to the map and the balancer; a failed save answers 04
//! and changes nothing saved; a new server address comes back to switch to after the
//! reply; a broadcast runs the same path without a reply.

use embassy_futures::block_on;
use p1lb_core::config::{Config, address};
use p1lb_core::device::Device;
use p1lb_core::modbus::{Frame, MAX_ADU, Request, Words};
use p1lb_core::registers::{OVERRIDE_CAP, SAVE};
use p1lb_core::time::Instant;
use p1lb_core::write_path::{self, Host, Served};

struct TestHost {
    device: Device,
    wakes: u32,
    stored: Vec<Config>,
    storage_fails: bool,
}

impl TestHost {
    fn new() -> TestHost {
        TestHost {
            device: Device::new(Config::default(), Instant::ZERO),
            wakes: 0,
            stored: Vec::new(),
            storage_fails: false,
        }
    }

    fn request(&mut self, unit: u8, req: Request<'_>) -> (Served, Vec<u8>) {
        let mut frame = [0u8; MAX_ADU];
        let n = req.emit_frame(unit, &mut frame).expect("fits");
        let mut out = [0u8; MAX_ADU];
        let served = block_on(write_path::serve(self, 10, &frame[..n], &mut out));
        let len = match served {
            Served::Reply { len, .. } => len,
            _ => 0,
        };
        (served, out[..len].to_vec())
    }

    fn write(&mut self, unit: u8, address: u16, value: u16) -> (Served, Vec<u8>) {
        self.request(unit, Request::WriteSingle { address, value })
    }
}

impl Host for TestHost {
    fn with_device<R>(&mut self, f: impl FnOnce(&mut Device) -> R) -> R {
        f(&mut self.device)
    }

    fn wake_control(&mut self) {
        self.wakes += 1;
    }

    async fn persist(&mut self, config: &Config) -> bool {
        if self.storage_fails {
            return false;
        }
        self.stored.push(*config);
        true
    }
}

#[test]
fn a_cap_wakes_the_control_task_and_reaches_the_balancer() {
    let mut host = TestHost::new();
    let (served, reply) = host.write(10, OVERRIDE_CAP, 8000);
    assert!(
        matches!(served, Served::Reply { new_unit: None, .. }),
        "{served:?}"
    );
    assert_eq!(
        Frame::new_checked(&reply[..]).expect("a frame").function(),
        6
    );
    assert_eq!(host.wakes, 1);
    assert_eq!(host.device.balancer.cap_ma(), 8000);
    assert!(host.stored.is_empty());
}

#[test]
fn a_save_is_persisted_then_committed_and_a_new_address_comes_back() {
    let mut host = TestHost::new();
    host.write(10, address::UPPER_CURRENT, 21_000);
    host.write(10, address::SERVER_ADDRESS, 12);
    assert_eq!(host.device.map.saved().upper_ma(), 22_000, "only staged");
    let (served, _) = host.write(10, SAVE, 1);
    assert_eq!(
        served,
        Served::Reply {
            len: 8,
            new_unit: Some(12)
        }
    );
    assert_eq!(host.stored.len(), 1);
    assert_eq!(host.stored[0].upper_ma(), 21_000);
    assert_eq!(host.device.map.saved().upper_ma(), 21_000);
    assert_eq!(host.device.balancer.config().upper_ma(), 21_000);
}

#[test]
fn a_save_that_does_not_reach_storage_answers_04_and_keeps_the_staged_values() {
    let mut host = TestHost::new();
    host.storage_fails = true;
    host.write(10, address::UPPER_CURRENT, 21_000);
    let (served, reply) = host.write(10, SAVE, 1);
    assert!(
        matches!(served, Served::Reply { new_unit: None, .. }),
        "{served:?}"
    );
    // Exception 04 to FC 06.
    assert_eq!(&reply[..3], &[10, 0x86, 4]);
    assert_eq!(host.device.map.saved().upper_ma(), 22_000);
    assert_eq!(host.device.balancer.config().upper_ma(), 22_000);
    // Still staged: a save that works later takes it.
    host.storage_fails = false;
    host.write(10, SAVE, 1);
    assert_eq!(host.device.map.saved().upper_ma(), 21_000);
}

#[test]
fn a_broadcast_runs_the_same_path_without_a_reply_and_other_units_are_not_ours() {
    let mut host = TestHost::new();
    let values = [9000u16];
    let (served, reply) = host.request(
        0,
        Request::WriteMultiple {
            start: OVERRIDE_CAP,
            values: Words::Native(&values),
        },
    );
    assert_eq!(
        served,
        Served::Broadcast {
            new_unit: None,
            refused: None
        }
    );
    assert!(reply.is_empty());
    assert_eq!((host.wakes, host.device.balancer.cap_ma()), (1, 9000));
    let (served, _) = host.write(3, OVERRIDE_CAP, 7000);
    assert_eq!(served, Served::NotForUs { unit: 3 });
    assert_eq!(host.device.balancer.cap_ma(), 9000);
}
