//! The RTU server on arbitrary frames (raw, and with a valid CRC appended so that the
//! PDU parser and the register map are reached): never panics, every reply is a
//! well-formed frame from our address with a valid CRC that parses as a response, and
//! a refused request changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p1lb_core::config::Config;
use p1lb_core::modbus::{Frame, MAX_ADU, Response, crc16_modbus};
use p1lb_core::server::{ServerAction, serve};
use p1lb_core::registers::RegisterMap;

const UNIT: u8 = 10;

fn check(map: &mut RegisterMap, frame: &[u8]) {
    let before = map.clone();
    let mut out = [0u8; MAX_ADU];
    match serve(map, UNIT, frame, &mut out) {
        ServerAction::Reply { len, exception, .. } => {
            let f = Frame::new_checked(&out[..len]).expect("reply is a frame with a good CRC");
            assert_eq!(f.unit(), UNIT);
            let r = Response::parse(f.pdu()).expect("reply parses");
            assert_eq!(matches!(r, Response::Exception { .. }), exception.is_some());
            if exception.is_some() {
                assert_eq!(*map, before, "a refused request changed the map");
            }
        }
        ServerAction::Broadcast(Err(_))
        | ServerAction::NotForUs { .. }
        | ServerAction::Ignored(_) => assert_eq!(*map, before),
        ServerAction::Broadcast(Ok(_)) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut map = RegisterMap::new(Config::default());
    // Several frames separated by 0xFE, so that writes and then reads happen.
    for part in data.split(|&b| b == 0xFE) {
        check(&mut map, part);
        let mut with_crc = part.to_vec();
        if let Some(first) = with_crc.first_mut() {
            // Mostly our address or broadcast, sometimes another.
            *first = match *first % 8 {
                0 => 0,
                1 => 11,
                _ => UNIT,
            };
        }
        let crc = crc16_modbus(&with_crc);
        with_crc.extend_from_slice(&crc.to_le_bytes());
        check(&mut map, &with_crc);
    }
});
