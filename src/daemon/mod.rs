//! The daemon's parts (`p1lb run`): one small tokio task per concern around the
//! sans-IO core. The tasks move bytes and time; every decision stays in
//! [`p1lb_core`]. [`crate::daemon::run`] only wires them.
//!
//! - [`file`](mod@file): the TOML file (`/etc/p1lb/p1lb.toml`): its sections, loading with clear
//!   errors, and persisting the `[settings]` table atomically with comments kept.
//! - [`shared`]: the state the tasks share (register map, balancer, clock).
//! - [`p1`]: the P1 task: serial device, `tcp://host:port` or the built-in simulated
//!   house, through the core's telegram reader into the balancer.
//! - [`control`]: the one-second control tick, status registers and state/fault logs.
//! - [`modbus_tcp`]: the Modbus TCP server (tokio-modbus) for the register map.
//! - [`gateway`]: in the `master` role, Modbus TCP requests for other units forwarded
//!   to the RS485 bus through the master task.
//! - [`p1_forward`]: `--p1-forward`, the raw P1 bytes re-emitted to TCP clients.
//! - [`mqtt`]: the register map on an MQTT broker with Home Assistant discovery
//!   (`[mqtt]`, off by default); [`mqtt::proto`] is its sans-IO half.
//! - [`led`]: the status LED on a GPIO pin (rppal), when there is one.
//! - [`notify`]: systemd's notifications (`READY=1`, `WATCHDOG=1`, `STATUS=`,
//!   `STOPPING=1`) to `$NOTIFY_SOCKET`, when there is one.
//! - [`writes`]: the register write path every surface shares (the core's write path
//!   with the TOML file as storage).
//! - [`http`]: the small HTTP server: the status page (`/`), `/api/status`,
//!   `/api/history` and `/metrics` (Prometheus), when `[http]` or `--http` asks for it.
//! - [`stats`]: the tasks' counters (P1 reader, RS485 exchanges) for `/metrics`.
//! - [`rs485`]: the RS485 port, Modbus RTU with the core's codec: `server` (register
//!   map, emulated meter) or `master` (drives a Terra AC).

pub mod control;
pub mod file;
pub mod gateway;
pub mod http;
pub mod led;
pub mod modbus_tcp;
pub mod mqtt;
pub mod notify;
pub mod p1;
pub mod p1_forward;
pub mod rs485;
pub mod run;
pub mod shared;
pub mod stats;
pub mod writes;
