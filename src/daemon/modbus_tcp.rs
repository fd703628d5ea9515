//! The Modbus TCP server (tokio-modbus 0.17, `tcp-server`) for the register map.
//!
//! - FC 03 and FC 04 read the map ([`RegisterMap::read`]), FC 06 and FC 16 write it
//!   ([`RegisterMap::write`]); any other function answers 01. The map's exceptions
//!   (02, 03) go out with their codes.
//! - A save (1091 = 1, or 1092 = 1) is persisted into the TOML file's `[settings]`
//!   ([`super::file::save_settings`], atomic) before the reply; then the map commits it
//!   and the balancer applies it. A failed save answers 04 and the staged values stay.
//!   A new server address (1090) takes effect after the reply: this request was
//!   already accepted at the old one, the next is checked against the new one.
//! - The server answers at the saved server address (1090), and at 0 and 255 (the
//!   usual "the device itself" ids of Modbus TCP). Other unit ids: in the RS485
//!   `master` role they are forwarded to the bus ([`super::gateway`]) and the target's
//!   reply comes back, 0x0B when it stays silent; otherwise (server role, no RS485
//!   port) they answer 0x0B (gateway target device failed to respond) at once.
//! - `read_only`: every FC 06 / FC 16 write is refused with exception 01 (illegal
//!   function: writing is not a function this server offers), before the map is
//!   touched.
//!
//! [`RegisterMap::read`]: p1lb_core::registers::RegisterMap::read
//! [`RegisterMap::write`]: p1lb_core::registers::RegisterMap::write

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use p1lb_core::bus_master::forward_result_wait;
use p1lb_core::modbus::LineConfig;
use p1lb_core::registers::Exception;
use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::gateway::{self, GatewayTx};
use super::shared::Shared;
use super::writes::{self, WriteRefused};

/// The service answering one connection's requests.
#[derive(Debug, Clone)]
pub struct MapService {
    shared: Arc<Shared>,
    read_only: bool,
    gateway: Option<GatewayTx>,
}

fn exception(e: Exception) -> ExceptionCode {
    match e {
        Exception::IllegalFunction => ExceptionCode::IllegalFunction,
        Exception::IllegalDataAddress => ExceptionCode::IllegalDataAddress,
        Exception::IllegalDataValue => ExceptionCode::IllegalDataValue,
        Exception::ServerDeviceFailure => ExceptionCode::ServerDeviceFailure,
    }
}

impl MapService {
    /// A service over `shared`; requests for other units go to `gateway` when
    /// there is one (the RS485 master task).
    pub fn new(shared: Arc<Shared>, read_only: bool, gateway: Option<GatewayTx>) -> MapService {
        MapService {
            shared,
            read_only,
            gateway,
        }
    }

    fn read(&self, start: u16, quantity: u16) -> Result<Vec<u16>, ExceptionCode> {
        let mut out = vec![0u16; usize::from(quantity)];
        self.shared
            .core()
            .map
            .read(start, &mut out)
            .map_err(exception)?;
        Ok(out)
    }

    async fn write(&self, start: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        if self.read_only {
            return Err(ExceptionCode::IllegalFunction);
        }
        writes::write(&self.shared, start, values)
            .await
            .map_err(|e| match e {
                WriteRefused::Refused(e) => exception(e),
                WriteRefused::SaveFailed => ExceptionCode::ServerDeviceFailure,
            })
    }

    /// Answers one request.
    pub async fn answer(&self, req: SlaveRequest<'static>) -> Result<Response, ExceptionCode> {
        let unit = req.slave;
        if unit != self.shared.unit() && unit != 0 && unit != 255 {
            return match &self.gateway {
                Some(tx) => {
                    let line = LineConfig::rs485(self.shared.core().map.saved());
                    let limit = Duration::from(forward_result_wait(line));
                    gateway::forward(tx, unit, &req.request, limit).await
                }
                None => Err(ExceptionCode::GatewayTargetDevice),
            };
        }
        match req.request {
            Request::ReadHoldingRegisters(start, n) => {
                self.read(start, n).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(start, n) => {
                self.read(start, n).map(Response::ReadInputRegisters)
            }
            Request::WriteSingleRegister(start, value) => self
                .write(start, &[value])
                .await
                .map(|()| Response::WriteSingleRegister(start, value)),
            Request::WriteMultipleRegisters(start, values) => {
                let n = u16::try_from(values.len()).unwrap_or(u16::MAX);
                self.write(start, &values)
                    .await
                    .map(|()| Response::WriteMultipleRegisters(start, n))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl tokio_modbus::server::Service for MapService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.answer(req).await })
    }
}

/// Binds `listen` (an error when the address is taken: the daemon does not start).
pub async fn bind(listen: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("Modbus TCP: cannot listen on {listen}"))
}

/// Serves until the listener fails. `gateway`: where requests for other units go
/// (the RS485 master task), or none (they answer 0x0B).
pub async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    read_only: bool,
    gateway: Option<GatewayTx>,
) -> Result<()> {
    let server = Server::new(listener);
    let service = MapService::new(shared, read_only, gateway);
    let on_connected = |stream, addr: SocketAddr| {
        let service = service.clone();
        async move {
            tracing::debug!("Modbus TCP: connection from {addr}");
            accept_tcp_connection(stream, addr, |_| Ok(Some(service.clone())))
        }
    };
    let on_process_error = |e: io::Error| tracing::debug!("Modbus TCP: connection ended: {e}");
    server
        .serve(&on_connected, on_process_error)
        .await
        .context("Modbus TCP server")
}
