//! The Modbus server of the register map: one received frame in, the map read or
//! written, the reply frame out. Above the codec ([`crate::modbus`]), which knows
//! frames and exceptions and nothing of the map.

use crate::modbus::{
    BROADCAST, EXCEPTION_BIT, Exception, Frame, FrameError, MAX_ADU, MAX_READ_QUANTITY, Request,
    Response, Words, exception_reply,
};
use crate::registers::{RegisterMap, WriteOutcome};

/// What [`serve`] did with a frame, and what the caller must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// Send `out[..len]`. Then act on `outcome` (a read or a refused request carries
    /// the default, empty one): pass the cap to the balancer; persist a save — if
    /// the save fails, send [`exception_reply`] with 04 instead of `out[..len]`, else
    /// confirm it with `RegisterMap::commit_saved` — and switch to a new server
    /// address only after the reply has been sent.
    Reply {
        /// The reply frame's length in `out`.
        len: usize,
        /// The write's consequences.
        outcome: WriteOutcome,
        /// The exception answered, if the reply is one.
        exception: Option<Exception>,
    },
    /// A broadcast (address 0): never answered. `Ok` when it was a write the map
    /// applied (act on the outcome as for a reply), else why it was refused (a read
    /// or an unsupported function counts as 01: they make no sense as a broadcast).
    Broadcast(Result<WriteOutcome, Exception>),
    /// A good frame for another server address (a gateway may forward it; on a bus it
    /// is another device's exchange).
    NotForUs {
        /// The address the frame is for.
        unit: u8,
    },
    /// No reply and nothing done: not a frame (too short, too long, bad CRC — the
    /// Modbus rule is silence), or a function code of 0 or ≥ 128 (a reply, not a
    /// request).
    Ignored(Ignored),
}

/// Why [`serve`] ignored a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Length or CRC.
    Frame(FrameError),
    /// Function code 0 or with the exception bit: not a request.
    NotARequest(u8),
}

/// Serves one received frame as server `unit` from `map`, writing any reply into
/// `out`. See [`ServerAction`] for what the caller does next.
///
/// FC 03 and FC 04 read the map (FC 04 mirrors FC 03), FC 06 and FC 16 write it;
/// other function codes answer 01; a malformed request of a supported function
/// (quantity, byte count, length) answers 03; the map's refusals answer their codes.
/// Never panics, whatever the bytes.
pub fn serve(
    map: &mut RegisterMap,
    unit: u8,
    frame: &[u8],
    out: &mut [u8; MAX_ADU],
) -> ServerAction {
    let frame = match Frame::new_checked(frame) {
        Ok(f) => f,
        Err(e) => return ServerAction::Ignored(Ignored::Frame(e)),
    };
    let to = frame.unit();
    if to != BROADCAST && to != unit {
        return ServerAction::NotForUs { unit: to };
    }
    let function = frame.function();
    if function == 0 || function & EXCEPTION_BIT != 0 {
        return ServerAction::Ignored(Ignored::NotARequest(function));
    }
    let request = Request::parse(frame.pdu()).map_err(|e| e.exception());
    if to == BROADCAST {
        let result = request.and_then(|r| match r {
            Request::WriteSingle { address, value } => map.write(address, &[value]),
            Request::WriteMultiple { start, values } => write_words(map, start, &values),
            Request::ReadHolding { .. } | Request::ReadInput { .. } => {
                Err(Exception::IllegalFunction)
            }
        });
        return ServerAction::Broadcast(result);
    }
    let mut regs = [0u16; MAX_READ_QUANTITY as usize];
    let result = request.and_then(|r| execute(map, &r, &mut regs));
    match result {
        Ok((response, outcome)) => match response.emit_frame(unit, out) {
            Ok(len) => ServerAction::Reply {
                len,
                outcome,
                exception: None,
            },
            // Cannot happen: every reply fits MAX_ADU. Answer 04 rather than panic.
            Err(_) => exception_action(unit, function, Exception::ServerDeviceFailure, out),
        },
        Err(e) => exception_action(unit, function, e, out),
    }
}

fn exception_action(unit: u8, function: u8, e: Exception, out: &mut [u8; MAX_ADU]) -> ServerAction {
    ServerAction::Reply {
        len: exception_reply(unit, function, e, out),
        outcome: WriteOutcome::default(),
        exception: Some(e),
    }
}

fn write_words(
    map: &mut RegisterMap,
    start: u16,
    values: &Words<'_>,
) -> Result<WriteOutcome, Exception> {
    let mut buf = [0u16; MAX_READ_QUANTITY as usize];
    let n = values.copy_to(&mut buf);
    map.write(start, &buf[..n])
}

fn execute<'r>(
    map: &mut RegisterMap,
    request: &Request<'_>,
    regs: &'r mut [u16; MAX_READ_QUANTITY as usize],
) -> Result<(Response<'r>, WriteOutcome), Exception> {
    match *request {
        Request::ReadHolding { start, quantity } | Request::ReadInput { start, quantity } => {
            let regs = regs
                .get_mut(..usize::from(quantity))
                .ok_or(Exception::IllegalDataValue)?;
            map.read(start, regs)?;
            let words = Words::Native(regs);
            let response = if matches!(request, Request::ReadHolding { .. }) {
                Response::ReadHolding(words)
            } else {
                Response::ReadInput(words)
            };
            Ok((response, WriteOutcome::default()))
        }
        Request::WriteSingle { address, value } => {
            let outcome = map.write(address, &[value])?;
            Ok((Response::WriteSingle { address, value }, outcome))
        }
        Request::WriteMultiple { start, values } => {
            let outcome = write_words(map, start, &values)?;
            Ok((
                Response::WriteMultiple {
                    start,
                    quantity: values.len() as u16,
                },
                outcome,
            ))
        }
    }
}
