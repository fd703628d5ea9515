// Flash saves and the RS485 bus. An erase or page program stalls the core with
// interrupts off (the stand-in ROM spends the simulated time with the core stopped),
// and a save that frees a sector also keeps the executor busy ~0.1 s before its erase.
// During an exchange either keeps the transceiver's driver (GPIO 7) on over the
// charger's reply: DE and /RE are tied, so the reply never reaches UART1 (AbbCharger)
// and the client retries 0.77 s later. A save waits for the quiet gap after a
// telegram, then for the exchange on the bus (the new limit of that telegram's tick, a
// status read): the limit goes out ≤ 2 ms after the telegram as without a save, no
// flash operation falls in an exchange, nothing is lost or retried, no telegram is
// lost, the save lands. Without that wait the save runs first (the executor polls the
// saving task before the control tick), so the limit waits for the flash work, and an
// exchange already on the line when the save starts loses its reply (the two tests
// with a status read).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';
import { FLASH_SIZE } from '../lib/machine.js';
import { FLASH_TIMING } from '../lib/rom.js';

/** Settings that change the limit at every telegram: 32 A maximum, +0.5 A a second. */
const RAMP = [
  [1010, 32000],
  [1000, 32000],
  [1020, 500],
];
const STORE_BYTES = 16 * 1024;
const u32 = ([hi, lo]) => hi * 65536 + lo;
const ms = (ns) => (ns / 1e6).toFixed(1);

/**
 * A flash image whose configuration store is one save short of wrapping: the next save
 * erases a sector (the longest save: ~0.1 s of CPU, then the erase). Made once with the meter sending every 100 ms; the saved settings are
 * RAMP.
 */
let preWrapImage = null;
function preWrap() {
  if (preWrapImage) return preWrapImage;
  const b = new Board({ meter: { periodMs: 100 } });
  b.waitUsb();
  for (const [reg, v] of RAMP) b.write(reg, v);
  const storeAt = FLASH_SIZE - STORE_BYTES;
  for (let n = 0; n < 400; n++) {
    const before = b.machine.rp.flash.slice(storeAt, FLASH_SIZE);
    b.write(1015, 20000 + (n % 40) * 50);
    assert.equal(b.write(1091, 1).exception, undefined);
    if (b.machine.flashOps.some((o) => o.name === 'RE')) {
      preWrapImage = b.machine.flashCopy();
      preWrapImage.set(before, storeAt);
      return preWrapImage;
    }
  }
  throw new Error('the store never wrapped');
}

/** The request/reply windows on the bus from request `from` on. */
function exchanges(charger, from) {
  return charger.requests.slice(from).map((req, i) => {
    const reply = charger.replies.find((r) => r.reqIndex === from + i);
    // No reply: the bus is the client's until its response timeout (0.77 s at 9600).
    return { req, reply, startNs: req.firstByteNs, endNs: reply?.endNs ?? req.ns + 770e6 };
  });
}

const isLimitWrite = (q) => q.bytes[1] === 16 && q.bytes[2] === 0x41 && q.bytes[3] === 0x00;
const hex = (q) => Buffer.from(q.bytes.subarray(0, 6)).toString('hex');

/** State before a save, for `problems`. */
function mark(b) {
  const m = b.machine;
  return {
    req: Math.max(0, b.charger.requests.length - 1),
    op: m.flashOps.length,
    overruns: [m.rp.uart[0].patchState.rxOverruns, m.rp.uart[1].patchState.rxOverruns],
  };
}

/** Sends 1091; returns the save's flash operations and the telegram before them. */
function save(b, label) {
  const at = mark(b);
  const reply = b.write(1091, 1);
  assert.equal(reply.exception, undefined, `${label}: save accepted`);
  const ops = b.machine.flashOps.slice(at.op);
  assert.ok(ops.length > 0, `${label}: the save wrote flash`);
  const tel = b.meter.lastTelegramBefore(ops[0].startNs);
  return { label, ops, tel, at, reply, erased: ops.some((o) => o.name === 'RE') };
}

/**
 * After the bus has settled, what went wrong around save `f`: the 0x4100 write of the
 * telegram's tick later than 2 ms (as without a save) or after the flash work (with
 * `limitWrite`); flash work in the next telegram; a flash operation during an
 * exchange (request's first byte to reply's last); a reply (byte) lost, a retry, a
 * UART RX FIFO overrun. Empty when all is well.
 */
function problems(b, f, { limitWrite = true } = {}) {
  const { ops, tel, at } = f;
  const m = b.machine;
  const gap = (ns) => ms(ns - tel.lastByteNs);
  const out = [];
  if (limitWrite) {
    const w = b.charger.requests.find((q) => isLimitWrite(q) && q.firstByteNs > tel.lastByteNs);
    if (!w) out.push('no 0x4100 write after the telegram');
    else if (w.firstByteNs > ops[0].startNs || w.firstByteNs - tel.lastByteNs > 2e6) {
      out.push(`0x4100 write at +${gap(w.firstByteNs)} ms, flash from +${gap(ops[0].startNs)} ms`);
    }
  }
  const next = b.meter.telegrams.find((t) => t.startNs > tel.lastByteNs);
  if (next && ops.at(-1).endNs >= next.startNs) out.push(`flash work until +${gap(ops.at(-1).endNs)} ms, into the next telegram`);
  const ex = exchanges(b.charger, at.req);
  for (const e of ex) {
    const hit = ops.filter((o) => o.startNs < e.endNs && o.endNs > e.startNs);
    if (hit.length) {
      out.push(`flash ${hit.map((o) => o.name).join('')} at +${gap(hit[0].startNs)}..${gap(hit.at(-1).endNs)} ms during ${hex(e.req)} at +${gap(e.startNs)}..${gap(e.endNs)} ms`);
    }
    if (!e.reply) out.push(`${hex(e.req)} at +${gap(e.startNs)} ms not answered`);
    else if (e.reply.lost) out.push(`reply to ${hex(e.req)} at +${gap(e.startNs)} ms: ${e.reply.lost} bytes lost to the board's driver`);
  }
  // The client's retry: the same request again after its response timeout.
  for (let i = 1; i < ex.length; i++) {
    const [p, q] = [ex[i - 1].req, ex[i].req];
    if (Buffer.from(p.bytes).equals(Buffer.from(q.bytes)) && q.firstByteNs - p.firstByteNs < 1.5e9) {
      out.push(`${hex(q)} retried at +${gap(q.firstByteNs)} ms`);
    }
  }
  const overruns = [m.rp.uart[0].patchState.rxOverruns - at.overruns[0], m.rp.uart[1].patchState.rxOverruns - at.overruns[1]];
  if (overruns.some((n) => n)) out.push(`RX FIFO overruns (P1, RS485): ${overruns}`);
  return out;
}

const span = (f, from) => `+${ms(f.ops[0].startNs - from)}..${ms(f.ops.at(-1).endNs - from)} ms`;

test('saves requested at five moments around a telegram: the limit goes out first, nothing lost', (t) => {
  const b = new Board();
  b.waitUsb();
  for (const [reg, v] of RAMP) b.write(reg, v);
  b.write(1091, 1);
  b.until(() => b.charger.limits.includes(7000), 30000, 'ramping past 7 A');
  b.run(100);
  const valid0 = u32(b.read(1115, 2));
  const rejected0 = u32(b.read(1117, 2));
  const from = b.meter.telegrams.length;
  const ended = () => b.meter.telegrams.length;
  const moments = [
    ['while a telegram arrives (end − 30 ms)', -30],
    ['just after a telegram, before the control tick (+0.2 ms)', 0.2],
    ['while the new limit is on the line (+5 ms)', 5],
    ["while the charger's reply is awaited (+18 ms)", 18],
    ['mid-gap (+500 ms)', 500],
  ];
  const report = [];
  const failed = [];
  let value = 21000;
  for (const [label, off] of moments) {
    b.write(1015, ++value);
    const n = ended();
    if (off < 0) {
      b.until(() => b.meter.current && (b.meter.current.bytes.length - b.meter.pos) * b.meter.byteNs <= -off * 1e6, 2000, 'mid-telegram', 0.05);
    } else {
      b.until(() => ended() > n, 2000, 'a telegram end', 0.05);
      b.run(off);
    }
    const f = save(b, label);
    b.run(1500);
    const p = problems(b, f);
    report.push(`${label}: flash ${span(f, f.tel.lastByteNs)} after the telegram${p.length ? `: ${p.join('; ')}` : ''}`);
    failed.push(...p.map((x) => `${label}: ${x}`));
  }
  t.diagnostic(report.join(' | '));
  assert.deepEqual(failed, [], 'nothing around the saves went wrong');
  const sent = b.meter.telegrams.length - from;
  b.run(300);
  assert.equal(u32(b.read(1117, 2)) - rejected0, 0, 'no telegram rejected');
  assert.ok(u32(b.read(1115, 2)) - valid0 >= sent, `every telegram valid (${sent})`);
  const after = new Board({ flash: b.machine.flashCopy() });
  after.waitUsb();
  assert.equal(after.read(1015)[0], value, 'the last save after a reboot');
});

for (const [timing, what] of [
  ['typical', 'a 45 ms erase'],
  ['max', 'the datasheet maxima: a 400 ms erase, 3 ms a page'],
]) {
  test(`a save that erases a sector (the store wraps), ${what}: after the exchange, inside the gap`, (t) => {
    const b = new Board({ flash: preWrap(), flashTiming: FLASH_TIMING[timing] });
    b.waitUsb();
    b.until(() => b.charger.limits.includes(7000), 30000, 'ramping past 7 A');
    b.run(300);
    const rejected0 = u32(b.read(1117, 2));
    b.write(1015, 21500);
    const f = save(b, 'erase');
    assert.ok(f.erased, 'the save erased a sector');
    b.run(2000);
    const p = problems(b, f);
    t.diagnostic(`erase save: flash ${span(f, f.tel.lastByteNs)} after the telegram, answered in ${f.reply.ms.toFixed(0)} ms`);
    assert.deepEqual(p, [], 'nothing around the save went wrong');
    assert.equal(u32(b.read(1117, 2)) - rejected0, 0, 'no telegram rejected');
    const after = new Board({ flash: b.machine.flashCopy() });
    after.waitUsb();
    assert.equal(after.read(1015)[0], 21500, 'the save after a reboot');
  });
}

test('a status read on the line when the telegram ends (meter phase moved): the save waits for it', (t) => {
  const b = new Board({ flash: preWrap() });
  b.waitUsb();
  b.until(() => b.charger.limits.includes(7000), 30000, 'ramping past 7 A');
  b.write(1015, 21600);
  const meter = b.meter;
  const len = meter.telegrams.at(-1).bytes.length;
  const reads = () => b.charger.requests.filter((q) => q.bytes[1] === 3);
  // The driver reads every 2 s after the last read ended: from the last two reads, the
  // next one's first byte. Move the meter so that a telegram ends 3 ms into that
  // read's request (the driver's pin still on), where no 0x4100 write of the tick
  // before is on the bus.
  const replyOf = (q) => b.charger.replies.find((x) => b.charger.requests[x.reqIndex] === q);
  let due = null;
  for (let tries = 0; tries < 10 && due === null; tries++) {
    const n = reads().length;
    b.until(() => reads().length > n && replyOf(reads().at(-1))?.endNs, 5000, 'a status read and its reply', 0.5);
    b.until(() => !meter.current, 200, 'the telegram sent', 0.05);
    const [prev, last] = reads().slice(-2);
    const f = replyOf(last).endNs + (last.firstByteNs - replyOf(prev).endNs);
    const start = f + 3e6 - meter.durationNs(len);
    if (start > b.machine.nanos + 1e6 && f - meter.telegrams.at(-1).lastByteNs > 100e6) {
      meter.startNextAt(start);
      due = f;
    }
  }
  assert.ok(due !== null, 'a read to line up with');
  b.until(() => meter.current !== null, 2000, 'the moved telegram starts', 0.05);
  const f = save(b, 'read on the line');
  assert.ok(f.erased, 'the save erased a sector');
  const read = b.charger.requests.find((q) => q.bytes[1] === 3 && q.firstByteNs > due - 5e6);
  assert.ok(read && Math.abs(read.firstByteNs - due) < 2e6, `the read came as predicted (${ms(read?.firstByteNs - due)} ms off)`);
  const tel = f.tel;
  assert.ok(tel.lastByteNs > read.firstByteNs && tel.lastByteNs < read.ns, `the telegram ended ${ms(tel.lastByteNs - read.firstByteNs)} ms into the read's request`);
  b.run(2500);
  const p = problems(b, f, { limitWrite: false });
  t.diagnostic(`flash ${span(f, tel.lastByteNs)} after the telegram; the read from ${ms(read.firstByteNs - tel.lastByteNs)} ms`);
  assert.deepEqual(p, [], 'nothing around the save went wrong');
  const after = new Board({ flash: b.machine.flashCopy() });
  after.waitUsb();
  assert.equal(after.read(1015)[0], 21600, 'the save after a reboot');
});

test('meter silent: the save (after 1.5 s) waits for a status read on the line', (t) => {
  const b = new Board({ flash: preWrap() });
  b.waitUsb();
  b.run(3000);
  b.meter.stop();
  const reads = () => b.charger.requests.filter((q) => q.bytes[1] === 3);
  const n = reads().length;
  b.until(() => reads().length >= n + 2, 6000, 'two status reads');
  // The driver reads every 2 s after the last read ended: the next one is due one
  // interval after the last. The save goes ahead 1.5 s (QUIET_WAIT) after the request:
  // send it so that this falls 3 ms into the next read's request.
  const r = reads();
  const interval = r.at(-1).firstByteNs - r.at(-2).firstByteNs;
  const due = r.at(-1).firstByteNs + interval;
  b.write(1015, 21700);
  b.machine.runTo(due + 3e6 - 1500e6);
  b.machine.assertAlive();
  const f = save(b, 'meter silent');
  assert.ok(f.erased, 'the save erased a sector');
  const read = b.charger.requests.find((q) => q.bytes[1] === 3 && q.firstByteNs > due - 5e6);
  assert.ok(read && Math.abs(read.firstByteNs - due) < 2e6, `the read came as predicted (${ms(read?.firstByteNs - due)} ms off)`);
  b.run(2500);
  // Times from the read's first byte.
  const p = problems(b, { ...f, tel: { lastByteNs: read.firstByteNs } }, { limitWrite: false });
  t.diagnostic(`flash ${span(f, read.firstByteNs)} after the read's first byte; save answered in ${f.reply.ms.toFixed(0)} ms`);
  assert.deepEqual(p, [], 'nothing around the save went wrong');
  assert.ok(f.reply.ms < 1500 + 300 + 300, `the save answered in ${f.reply.ms} ms`);
  const after = new Board({ flash: b.machine.flashCopy() });
  after.waitUsb();
  assert.equal(after.read(1015)[0], 21700, 'the save after a reboot');
});
