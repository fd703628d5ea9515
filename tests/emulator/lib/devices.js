// Simulated devices around the emulated board: the P1 meter on UART0, the ABB Terra AC
// on UART1 (RS485), and watchers on GPIO 7 (driver enable) and GPIO 25 (LED).
import { readFileSync } from 'node:fs';
import { crcOk, frame, requestLength, crc16 } from './modbus.js';

export const TELEGRAMS = new URL('../../telegrams/', import.meta.url).pathname;

/** CRC-16/ARC over `/`…`!` of a DSMR telegram, as 4 upper-case hex digits. */
export function dsmrCrc(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc.toString(16).toUpperCase().padStart(4, '0');
}

/** Records the edges of a GPIO pin with simulated-time and cycle stamps. */
export class PinWatcher {
  constructor(machine, pin) {
    this.machine = machine;
    this.edges = [];
    this.pin = machine.gpio(pin);
    this.pin.addListener((v) => {
      const ns = machine.nanos;
      this.edges.push({ ns, cycles: Math.round((ns * machine.rp.clkSys) / 1e9), high: v === 1 });
    });
  }

  /** The level now. */
  get high() {
    return this.pin.value === 1;
  }

  /** The edges in [fromNs, toNs). */
  between(fromNs, toNs) {
    return this.edges.filter((e) => e.ns >= fromNs && e.ns < toNs);
  }
}

/**
 * A DSMR meter on UART0: one telegram a second (period configurable), bytes paced at
 * the line rate (115200 8N1: 10 bits a byte) with one re-armed alarm. The base telegram
 * is a real one from tests/telegrams/; with `setCurrents` its per-phase currents and
 * powers are rewritten (CRC recomputed).
 */
export class P1Meter {
  constructor(machine, { file = 'nl-dsmr50-iskra-mt382.txt', periodMs = 1000, baud = 115200, firstAtMs = 100 } = {}) {
    this.machine = machine;
    this.uart = machine.rp.uart[0];
    this.base = readFileSync(TELEGRAMS + file);
    /** Files sent verbatim, one per telegram, before the base telegram resumes. */
    this.verbatim = [];
    this.periodNs = periodMs * 1e6;
    this.byteNs = (10 * 1e9) / baud;
    this.currents = null;
    this.running = true;
    this.queue = [];
    this.sent = [];
    /** Per telegram: { startNs, lastByteNs, valid, bytes }. */
    this.telegrams = [];
    this.pos = 0;
    this.current = null;
    this.nextCorrupt = null;
    this.byteAlarm = machine.clock.createAlarm(() => this.sendByte());
    this.tickAlarm = machine.clock.createAlarm(() => this.tick());
    this.tickAlarm.schedule(firstAtMs * 1e6);
  }

  /**
   * Sets the grid current per phase (A, import positive) of the following telegrams:
   * an array, or a function returning one, called as each telegram is composed (a
   * house load plus what the chargers' cars draw now).
   */
  setCurrents(amps) {
    this.currents = amps;
  }

  /** The grid currents for a telegram composed now (null: the base telegram's). */
  currentsNow() {
    return typeof this.currents === 'function' ? this.currents() : this.currents;
  }

  /** The next telegram carries `amps` on every phase but keeps the old CRC (corrupt). */
  corruptNext(amps = [999, 999, 999]) {
    this.nextCorrupt = amps;
  }

  stop() {
    this.running = false;
  }

  /**
   * The next telegram starts at `ns` (simulated time), the following ones a period
   * apart from there: the meter's phase moved, as if it had been started at another
   * moment. Not while a telegram is being sent.
   */
  startNextAt(ns) {
    if (this.current) throw new Error('a telegram is being sent');
    this.tickAlarm.schedule(Math.max(0, ns - this.machine.nanos));
  }

  /** How long a telegram of `n` bytes takes from its first byte to its last. */
  durationNs(n) {
    return (n - 1) * this.byteNs;
  }

  start() {
    this.running = true;
  }

  /** The telegram to send now. */
  telegram(currents) {
    if (!currents) return Uint8Array.from(this.base);
    let text = this.base.toString('latin1');
    const volts = [230, 230, 230];
    text = text.replace(/1-0:(32|52|72)\.7\.0\(([\d.]+)\*V\)/g, (m, c, v) => {
      volts[{ 32: 0, 52: 1, 72: 2 }[c]] = Number(v);
      return m;
    });
    const kw = (w) => (Math.abs(w) / 1000).toFixed(3).padStart(6, '0');
    const ph = { 31: 0, 51: 1, 71: 2, 21: 0, 41: 1, 61: 2, 22: 0, 42: 1, 62: 2 };
    text = text.replace(/1-0:(31|51|71)\.7\.0\([\d.]+\*A\)/g, (_, c) => {
      return `1-0:${c}.7.0(${Math.abs(currents[ph[c]]).toFixed(2)}*A)`;
    });
    text = text.replace(/1-0:(21|41|61)\.7\.0\([\d.]+\*kW\)/g, (_, c) => {
      const w = currents[ph[c]] * volts[ph[c]];
      return `1-0:${c}.7.0(${kw(w > 0 ? w : 0)}*kW)`;
    });
    text = text.replace(/1-0:(22|42|62)\.7\.0\([\d.]+\*kW\)/g, (_, c) => {
      const w = currents[ph[c]] * volts[ph[c]];
      return `1-0:${c}.7.0(${kw(w < 0 ? w : 0)}*kW)`;
    });
    const total = currents.reduce((s, a, i) => s + a * volts[i], 0);
    text = text.replace(/1-0:1\.7\.0\([\d.]+\*kW\)/, `1-0:1.7.0(${kw(total > 0 ? total : 0)}*kW)`);
    text = text.replace(/1-0:2\.7\.0\([\d.]+\*kW\)/, `1-0:2.7.0(${kw(total < 0 ? total : 0)}*kW)`);
    const bang = text.indexOf('!');
    const body = Buffer.from(text.slice(0, bang + 1), 'latin1');
    return Uint8Array.from(Buffer.concat([body, Buffer.from(`${dsmrCrc(body)}\r\n`, 'latin1')]));
  }

  tick() {
    this.tickAlarm.schedule(this.periodNs);
    if (!this.running || this.current) return;
    let bytes;
    let valid = true;
    if (this.nextCorrupt) {
      const good = this.telegram(this.currentsNow() ?? [0, 0, 0]);
      const crc = Buffer.from(good).toString('latin1').slice(-6, -2);
      const bad = this.telegram(this.nextCorrupt);
      bytes = Uint8Array.from([...bad.subarray(0, bad.length - 6), ...Buffer.from(crc, 'latin1'), 13, 10]);
      valid = crc === Buffer.from(bad).toString('latin1').slice(-6, -2);
      this.nextCorrupt = null;
    } else if (this.verbatim.length) {
      bytes = Uint8Array.from(readFileSync(TELEGRAMS + this.verbatim.shift()));
    } else {
      bytes = this.telegram(this.currentsNow());
    }
    this.current = { startNs: this.machine.nanos, lastByteNs: null, valid, bytes };
    this.pos = 0;
    this.sendByte();
  }

  sendByte() {
    const t = this.current;
    if (!t) return;
    const b = t.bytes[this.pos++];
    this.uart.feedByte(b);
    this.sent.push(b);
    if (this.pos < t.bytes.length) {
      this.byteAlarm.schedule(this.byteNs);
    } else {
      t.lastByteNs = this.machine.nanos;
      this.telegrams.push(t);
      this.current = null;
    }
  }

  /** The last telegram's end before `ns`. */
  lastTelegramBefore(ns) {
    for (let i = this.telegrams.length - 1; i >= 0; i--) {
      if (this.telegrams[i].lastByteNs <= ns) return this.telegrams[i];
    }
    return null;
  }
}

/** The status block of the ABB Terra AC (0x4000, 0x25 registers). */
const STATUS = 0x4000;
const STATUS_LEN = 0x25;

/**
 * The RS485 line on UART1 with the units on it (abb-terra-ac.md): it receives the
 * board's bytes once, frames them (a gap of more than 3.5 characters starts a new
 * frame; a request is complete by its length) and hands every request to every unit:
 * each unit hears every frame (`requests`, shared) and only the one whose address it
 * carries answers (a broadcast, unit 0, none). Replies go out on the one line: the
 * board's transceiver has DE and /RE tied (GPIO 7), so a reply byte sent while DE is
 * high never reaches UART1 (counted in the reply's `lost`, listed in the unit's and
 * the line's `collisions`); two units driving the line at once (a byte less than a
 * character after another unit's) garble it: the receiver gets 0x00 for that byte,
 * listed in `clashes`.
 */
export class AbbBus {
  constructor(machine, { de = null } = {}) {
    this.machine = machine;
    this.uart = machine.rp.uart[1];
    this.de = de;
    this.units = [];
    this.rx = [];
    this.lastRxNs = 0;
    this.firstWriteNs = null;
    this.requests = [];
    this.txBytes = []; // { ns, byte, deHigh } at UARTDR writes
    this.lineBytes = []; // { ns, byte, deHigh } at the end of each byte on the line
    this.frameStarts = [];
    /** Reply bytes lost to the board's driver being on: { ns, byte, unit }. */
    this.collisions = [];
    /** Reply bytes of two units at once: { ns, units: [a, b] }. */
    this.clashes = [];
    this.lastDrive = null; // { ns, u }: the last byte a unit drove
    this.uart.onTxWrite = (b) => {
      const now = machine.nanos;
      const st = this.uart.patchState;
      const idle = !st || (st.fifo.length === 0 && !st.shifting);
      const last = this.txBytes[this.txBytes.length - 1];
      if (idle && (!last || now - last.ns > 2 * this.charNs)) this.frameStarts.push(now);
      this.txBytes.push({ ns: now, byte: b, deHigh: this.deHigh() });
    };
    this.uart.onByte = (b) => this.onByte(b);
  }

  /** A unit on the line (AbbCharger options). */
  add(o = {}) {
    return new AbbCharger(this.machine, { ...o, bus: this });
  }

  /** The unit answering at `unit`. */
  unit(unit) {
    return this.units.find((u) => u.unit === unit);
  }

  deHigh() {
    return this.de ? this.de.high : null;
  }

  get charNs() {
    return (10 * 1e9) / (this.uart.baudRate || 9600);
  }

  onByte(b) {
    const now = this.machine.nanos;
    this.lineBytes.push({ ns: now, byte: b, deHigh: this.deHigh() });
    if (this.rx.length && now - this.lastRxNs > 3.5 * this.charNs + 1000) this.rx = [];
    if (this.rx.length === 0) this.firstWriteNs = this.frameStarts.shift() ?? now;
    this.lastRxNs = now;
    this.rx.push(b);
    const want = requestLength(Uint8Array.from(this.rx));
    if (want < 0) {
      this.rx = [];
      return;
    }
    if (want === 0 || this.rx.length < want) return;
    const f = Uint8Array.from(this.rx);
    this.rx = [];
    const req = { ns: now, firstByteNs: this.firstWriteNs, bytes: f, crcOk: crcOk(f) };
    this.requests.push(req);
    for (const u of this.units) u.handle(req);
  }

  /** Unit `u` drives byte `b` onto the line now; false when it never reaches UART1. */
  drive(u, b) {
    const now = this.machine.nanos;
    if (this.deHigh() === true) {
      this.collisions.push({ ns: now, byte: b, unit: u.unit });
      return false;
    }
    const last = this.lastDrive;
    this.lastDrive = { ns: now, u };
    if (last && last.u !== u && now - last.ns < this.charNs) {
      this.clashes.push({ ns: now, units: [last.u.unit, u.unit] });
      this.uart.feedByte(0);
      return true;
    }
    this.uart.feedByte(b);
    return true;
  }
}

/**
 * An ABB Terra AC as RS485 secondary on the line (`AbbBus`; one of its own when none
 * is given): FC 03 reads of the status block, FC 16 / FC 06 writes of 0x4100 (limit,
 * 2 registers, mA), 0x4106 (communication timeout) and 0x4109 (fallback limit). It
 * answers requests for `unit` `replyDelayMs` after their last byte, at the line rate.
 * While `silent` it answers nothing. Every request on the line records the
 * driver-enable level at each byte (`requests`, `txBytes`, `lineBytes`: the line's).
 *
 * Its car: with `car` ({ phases: its own L1–L3 the car draws on, e.g. [1, 0, 0] for a
 * single-phase car; maxMa; delayMs, 0 by default }) the status block reports the car's
 * current on those phases (the limit it applied `delayMs` ago, min(0x4100, rating), up
 * to maxMa; none below 6 A; no ramp) and the state from it (charging C2 = 4, car ready
 * without PWM C1 = 3 below 6 A, else B2 = 2); `currents` (mA per own phase) and
 * `state` override both. Without either it echoes the limit on all three phases and
 * reports charging (C2).
 */
export class AbbCharger {
  constructor(machine, { unit = 1, replyDelayMs = 5, de = null, bus = null, car = null, ratingMa = 32000 } = {}) {
    this.machine = machine;
    this.bus = bus ?? new AbbBus(machine, { de });
    this.bus.units.push(this);
    this.uart = this.bus.uart;
    this.unit = unit;
    this.replyDelayNs = replyDelayMs * 1e6;
    this.silent = false;
    this.car = car;
    this.currents = null;
    this.state = null;
    this.writes = []; // { ns, firstByteNs, reg, values }
    this.limitWrites = []; // { firstByteNs, endNs, ma }
    /** Status block reads answered: { ns }. */
    this.reads = [];
    this.forbidden = [];
    this.regs = new Map([
      [0x4006, ratingMa],
      [0x4020, 60],
      [0x4022, 32000],
      [0x4024, 256],
    ]);
    /** Per reply: { reqIndex, startNs, endNs, bytes, lost } (lost: bytes sent while DE was high). */
    this.replies = [];
    /** Its reply bytes lost to the board's driver being on: { ns, byte }. */
    this.collisions = [];
    this.replyAlarm = machine.clock.createAlarm(() => this.sendReplyByte());
    this.reply = null;
  }

  get de() {
    return this.bus.de;
  }

  /** Every request on the line (the line's list: `replies[i].reqIndex` indexes it). */
  get requests() {
    return this.bus.requests;
  }

  get txBytes() {
    return this.bus.txBytes;
  }

  get lineBytes() {
    return this.bus.lineBytes;
  }

  deHigh() {
    return this.bus.deHigh();
  }

  get charNs() {
    return this.bus.charNs;
  }

  /** The requests addressed to this unit. */
  get mine() {
    return this.requests.filter((q) => q.bytes[0] === this.unit);
  }

  /** A request heard on the line (`AbbBus`). */
  handle(req) {
    const f = req.bytes;
    if (!req.crcOk || (f[0] !== this.unit && f[0] !== 0)) return;
    const fc = f[1];
    const addr = (f[2] << 8) | f[3];
    let pdu;
    if (fc === 3 || fc === 4) {
      const n = (f[4] << 8) | f[5];
      if (addr < STATUS || addr + n > STATUS + STATUS_LEN || n === 0) pdu = [fc | 0x80, 2];
      else {
        const block = this.statusBlock();
        const vals = block.slice(addr - STATUS, addr - STATUS + n);
        pdu = [fc, n * 2, ...vals.flatMap((v) => [v >> 8, v & 0xff])];
        if (addr === STATUS && !this.silent && f[0] !== 0) this.reads.push({ ns: req.ns });
      }
    } else if (fc === 6 || fc === 16) {
      const values = [];
      if (fc === 6) values.push((f[4] << 8) | f[5]);
      else for (let i = 0; i < f[6]; i += 2) values.push((f[7 + i] << 8) | f[8 + i]);
      pdu = this.write(addr, values, req) ?? [...f.subarray(1, 6)];
    } else {
      pdu = [fc | 0x80, 1];
    }
    if (f[0] === 0 || this.silent) return;
    this.startReply(frame(this.unit, pdu));
  }

  /** A register write; returns an exception PDU or undefined. */
  write(addr, values, req) {
    this.writes.push({ ns: req.ns, firstByteNs: req.firstByteNs, reg: addr, values });
    if (addr === 0x4100 && values.length === 2) {
      const ma = (values[0] << 16) | values[1];
      this.regs.set(0x4022, ma);
      this.limitWrites.push({ firstByteNs: req.firstByteNs, endNs: req.ns, ma });
      return undefined;
    }
    if (addr === 0x4106 && values.length === 1) {
      this.regs.set(0x4020, values[0]);
      return undefined;
    }
    if (addr === 0x4109 && values.length === 1) {
      this.regs.set(0x4024, values[0]);
      return undefined;
    }
    if (addr === 0x4103 || addr === 0x4105) this.forbidden.push({ ns: req.ns, addr, values });
    return [req.bytes[1] | 0x80, 2];
  }

  /** The current it lets the car draw: min(limit, rating), mA. */
  get appliedMa() {
    return Math.min(this.regs.get(0x4022), this.regs.get(0x4006));
  }

  /** The current it let the car draw `ago` ns before now (mA; 32 A before any write). */
  appliedAt(ago) {
    const t = this.machine.nanos - ago;
    let limit = 32000;
    for (const w of this.limitWrites) {
      if (w.endNs > t) break;
      limit = w.ma;
    }
    return Math.min(limit, this.regs.get(0x4006));
  }

  /** Its current per own phase L1–L3 (mA) as it reports it. */
  phaseCurrentsMa() {
    if (this.currents) return this.currents;
    if (!this.car) return [0, 1, 2].map(() => this.regs.get(0x4022));
    const applied = this.appliedAt((this.car.delayMs ?? 0) * 1e6);
    const ma = applied < 6000 ? 0 : Math.min(applied, this.car.maxMa ?? applied);
    return this.car.phases.map((p) => (p ? ma : 0));
  }

  /** Its charging state (0x400D high byte). */
  chargingState() {
    if (this.state !== null) return this.state;
    if (!this.car) return 4; // charging (C2)
    if (Math.max(...this.phaseCurrentsMa()) > 50) return 4;
    return this.appliedMa < 6000 ? 3 : 2;
  }

  /** The 37 registers from 0x4000. */
  statusBlock() {
    const r = new Array(STATUS_LEN).fill(0);
    const put32 = (a, v) => {
      r[a - STATUS] = (v >>> 16) & 0xffff;
      r[a - STATUS + 1] = v & 0xffff;
    };
    r[0] = 0x0211; // serial: type 2, 22 kW
    put32(0x4004, 0x01080000); // firmware 1.8.0
    put32(0x4006, this.regs.get(0x4006));
    put32(0x4008, 0);
    put32(0x400a, 0x0111);
    r[0x400d - STATUS] = this.chargingState() << 8;
    const limit = this.regs.get(0x4022);
    put32(0x400e, this.car ? this.appliedMa : limit);
    const amps = this.phaseCurrentsMa();
    [0x4010, 0x4012, 0x4014].forEach((a, i) => put32(a, amps[i]));
    for (const a of [0x4016, 0x4018, 0x401a]) put32(a, 2300);
    put32(0x401c, Math.round((230 * amps.reduce((s, x) => s + x, 0)) / 1000));
    r[0x4020 - STATUS] = this.regs.get(0x4020);
    put32(0x4022, limit);
    r[0x4024 - STATUS] = this.regs.get(0x4024);
    return r;
  }

  startReply(bytes) {
    this.reply = { bytes, pos: 0, log: { reqIndex: this.requests.length - 1, startNs: null, endNs: null, bytes, lost: 0 } };
    this.replies.push(this.reply.log);
    this.replyAlarm.schedule(this.replyDelayNs);
  }

  sendReplyByte() {
    const r = this.reply;
    if (!r) return;
    const now = this.machine.nanos;
    const b = r.bytes[r.pos++];
    r.log.startNs ??= now;
    if (!this.bus.drive(this, b)) {
      r.log.lost++;
      this.collisions.push({ ns: now, byte: b });
    }
    if (r.pos < r.bytes.length) this.replyAlarm.schedule(this.charNs);
    else {
      r.log.endNs = now;
      this.reply = null;
    }
  }

  /** The 0x4100 values written so far (mA). */
  get limits() {
    return this.limitWrites.map((w) => w.ma);
  }

  /** The registers (0x4106, 0x4109, ...) it was written, in order. */
  get setupRegs() {
    return this.writes.map((w) => w.reg);
  }
}

void crc16;
