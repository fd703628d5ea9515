// The emulated board with its surroundings, as the scenarios use it.
import { Machine } from './machine.js';
import { UsbHost } from './usbhost.js';
import { P1Meter, AbbBus, PinWatcher } from './devices.js';
import { parseReply, replyLength, readHolding, writeSingle, writeMultiple } from './modbus.js';

/** The firmware's Modbus unit on USB (register 1090 default). */
export const UNIT = 10;

export class Board {
  /**
   * @param {object} o Machine options plus `meter` (P1Meter options, or false for
   *   none), `charger` (AbbCharger options: the one unit on the RS485 line) or
   *   `chargers` (a list of them: several units on the one line, `bus`), `usb`
   *   (false: no host attached).
   */
  constructor(o = {}) {
    this.machine = new Machine(o);
    const m = this.machine;
    this.de = new PinWatcher(m, 7);
    this.led = new PinWatcher(m, 25);
    this.host = o.usb === false ? null : new UsbHost(m);
    this.meter = o.meter === false ? null : new P1Meter(m, o.meter ?? {});
    this.bus = new AbbBus(m, { de: this.de });
    this.chargers = (o.chargers ?? [o.charger ?? {}]).map((c) => this.bus.add(c));
    this.charger = this.chargers[0];
  }

  get ms() {
    return this.machine.ms;
  }

  /** Runs `ms` of simulated time; throws on a panic or a watchdog reset. */
  run(ms) {
    this.machine.run(ms);
    this.machine.assertAlive();
  }

  /** Runs until `pred()` (checked every `stepMs`), failing after `timeoutMs`. */
  until(pred, timeoutMs, what = 'condition', stepMs = 1) {
    const ok = this.machine.runUntil(pred, timeoutMs, stepMs);
    this.machine.assertAlive();
    if (!ok) throw new Error(`${what} not reached within ${timeoutMs} ms (t = ${this.ms.toFixed(1)} ms)`);
  }

  /** Boots until the host has configured both CDC ports. */
  waitUsb(timeoutMs = 1000) {
    this.until(() => this.host.configured, timeoutMs, 'USB configuration', 0.5);
    return this.host;
  }

  /** USB port 1 (Modbus). */
  get modbusPort() {
    return this.host.ports[1];
  }

  /** USB port 0 (P1 passthrough). */
  get p1Port() {
    return this.host.ports[0];
  }

  /**
   * Sends `request` on the USB Modbus port and runs until a whole reply came back;
   * returns the parsed reply (with `bytes` and `ms`, the time it took).
   */
  modbus(request, timeoutMs = 5000) {
    const port = this.modbusPort;
    port.take();
    const t0 = this.ms;
    port.write(request);
    let reply = null;
    this.until(
      () => {
        const b = Uint8Array.from(port.received);
        const n = replyLength(b);
        if (n > 0 && b.length >= n) reply = b.subarray(0, n);
        return reply !== null;
      },
      timeoutMs,
      `reply to ${Buffer.from(request).toString('hex')}`,
      0.2,
    );
    return { ...parseReply(reply), bytes: reply, ms: this.ms - t0 };
  }

  /** Reads `count` holding registers from `addr` of the firmware; throws on an exception. */
  read(addr, count = 1, unit = UNIT) {
    const r = this.modbus(readHolding(unit, addr, count));
    if (r.exception !== undefined) throw new Error(`read ${addr}: exception ${r.exception}`);
    return r.values;
  }

  /** Writes one register (FC 06); returns the reply. */
  write(addr, value, unit = UNIT) {
    return this.modbus(writeSingle(unit, addr, value));
  }

  /** Writes registers (FC 16); returns the reply. */
  writeMany(addr, values, unit = UNIT) {
    return this.modbus(writeMultiple(unit, addr, values));
  }
}

/** The LED level at `ns` from the recorded edges (low before the first edge). */
export function levelAt(watcher, ns) {
  let level = false;
  for (const e of watcher.edges) {
    if (e.ns > ns) break;
    level = e.high;
  }
  return level;
}

/**
 * The LED frame of the second starting at `startNs`: eight slots of 125 ms sampled in
 * their middle, `-` on, `_` off (the register table writes `.` for a single on slot).
 */
export function frameAt(watcher, startNs) {
  let s = '';
  for (let i = 0; i < 8; i++) s += levelAt(watcher, startNs + (i * 125 + 62.5) * 1e6) ? '-' : '_';
  return s;
}

/** The register table's frame with `.` read as `-`. */
export const FRAMES = {
  0: '-_______',
  1: '-_-_____',
  2: '-_-_-___',
  3: '-_-_-_-_',
  4: '----____',
};

/** Distinct consecutive values of the 0x4100 writes (mA) with the first write time. */
export function limitChanges(charger) {
  const out = [];
  for (const w of charger.limitWrites) {
    if (!out.length || out[out.length - 1].ma !== w.ma) out.push(w);
  }
  return out;
}
