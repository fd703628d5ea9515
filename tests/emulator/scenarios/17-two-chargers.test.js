// Two Terra AC units on the one RS485 line (1037 = 2: charger k at 1030 + k − 1, so
// units 1 and 2). Unit 1 has a three-phase car (wiring learned, 1040 = 0), unit 2 a
// single-phase car on its L1, wired to grid L1 (1043 = 2); both cars draw what their
// charger allows, up to 16 A, 2 s after it was written, and nothing below 6 A. The meter reports a house load
// plus what the cars draw. Configured over the USB Modbus port and saved (1091):
// - both units get their setup (0x4106, 0x4109) and usable limits (≥ 6 A);
// - 1130–1141 read back each charger's limit, its current on grid L1–L3, its state
//   and flags (wiring known, car connected) as the units report them;
// - the gateway reaches unit 2 (and unit 1);
// - 15 A more house load on L3 pauses the three-phase car (1135 bit 2) and never
//   lowers charger 2's limit (its car is on L1 only);
// - unit 1 silent: 1003 bit 2 and 1135 bit 0, while unit 2 is still polled and
//   written, and reached through the gateway (unit 1: 0x0B).
// And the line itself: two units at one address both answer, their replies clash and
// the firmware hears no valid reply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';
import { readHolding } from '../lib/modbus.js';

const s = (ns) => (ns / 1e9).toFixed(1);
const CAR_MAX = 16000;
/** The cars follow a new limit this late. */
const CAR_DELAY_MS = 2000;
/** Charger flags (1135, 1141). */
const SILENT = 1 << 0;
const EXCEPTION = 1 << 1;
const PAUSED = 1 << 2;
const WIRING_KNOWN = 1 << 3;
const CONNECTED = 1 << 4;

test('two chargers on one line: per-phase sharing, status 1130–1141, gateway, a silent unit', (t) => {
  const t0 = process.hrtime.bigint();
  const b = new Board({
    chargers: [
      { unit: 1, ratingMa: 22000, car: { phases: [1, 1, 1], maxMa: CAR_MAX, delayMs: CAR_DELAY_MS } },
      { unit: 2, ratingMa: 32000, car: { phases: [1, 0, 0], maxMa: CAR_MAX, delayMs: CAR_DELAY_MS } },
    ],
  });
  const [u1, u2] = b.chargers;
  assert.equal(b.bus.units.length, 2);
  const house = [2, 1.4, 1.6];
  // The grid: the house and both cars (unit 2's L1 on grid L1).
  b.meter.setCurrents(() => {
    const g = [...house];
    for (const u of b.chargers) u.phaseCurrentsMa().forEach((ma, p) => (g[p] += ma / 1000));
    return g;
  });
  b.waitUsb();
  for (const [reg, v] of [
    [1037, 2],
    [1043, 2],
  ]) {
    assert.equal(b.write(reg, v).exception, undefined, `write ${reg}`);
  }
  const savedNs = b.machine.nanos;
  assert.equal(b.write(1091, 1).exception, undefined, 'save');
  assert.deepEqual(b.read(1037), [2], '1037 = 2 saved');

  // Both configured, both charging.
  const usable = (u) => u.limits.some((ma) => ma >= 6000);
  b.until(() => usable(u1) && usable(u2), 40000, 'both units with a usable limit', 10);
  const usableNs = b.machine.nanos;
  for (const u of [u1, u2]) {
    assert.ok(u.setupRegs.includes(0x4106), `unit ${u.unit}: 0x4106 written`);
    assert.ok(u.setupRegs.includes(0x4109), `unit ${u.unit}: 0x4109 written`);
    assert.deepEqual(u.forbidden, [], `unit ${u.unit}: no forbidden writes`);
  }
  assert.ok(u2.writes.every((w) => w.firstByteNs > savedNs), 'unit 2 is driven only after the save');
  assert.equal(b.bus.clashes.length, 0, 'never two units on the line at once');

  // Settled: the status registers match what the units were sent and report.
  b.run(10000);
  const regs = b.read(1130, 12);
  const last = (u) => u.limits.at(-1);
  t.diagnostic(`t ${s(b.machine.nanos)} s: 1130–1141 ${JSON.stringify(regs)}; limits ${last(u1)} / ${last(u2)} mA`);
  assert.equal(regs[0], last(u1), '1130: charger 1’s limit');
  assert.equal(regs[6], last(u2), '1136: charger 2’s limit');
  const cA = (ma) => Math.round(ma / 10);
  const [c1, c2] = [u1.phaseCurrentsMa(), u2.phaseCurrentsMa()];
  assert.deepEqual(regs.slice(1, 4), c1.map(cA), '1131–1133: car 1 on grid L1–L3');
  assert.deepEqual(regs.slice(7, 10), [cA(c2[0]), 0, 0], '1137–1139: car 2 on grid L1 only');
  assert.equal(regs[4], 4, '1134: charging (C2)');
  assert.equal(regs[10], 4, '1140: charging (C2)');
  assert.equal(regs[5] & (SILENT | EXCEPTION | PAUSED), 0, '1135: answering, not paused');
  assert.equal(regs[11] & (SILENT | EXCEPTION | PAUSED), 0, '1141: answering, not paused');
  assert.ok(regs[5] & CONNECTED && regs[11] & CONNECTED, 'cars connected (bit 4)');
  assert.ok(regs[11] & WIRING_KNOWN, '1141: wiring configured (bit 3)');
  assert.ok(regs[5] & WIRING_KNOWN, '1135: wiring learned (bit 3)');
  assert.deepEqual(b.read(1001), [last(u1)], '1001: charger 1 with several');
  // The grid phases stay under the upper limit (22 A).
  const grid = b.read(1100, 3);
  assert.ok(grid.every((ca) => ca <= 2200), `grid ${grid} (0.01 A) under 22 A`);

  // The gateway reaches both units.
  for (const u of [u2, u1]) {
    const r = b.modbus(readHolding(u.unit, 0x4006, 2), 6000);
    assert.equal(r.unit, u.unit);
    assert.equal(r.exception, undefined, `unit ${u.unit} through the gateway`);
    assert.equal(r.values[0] * 65536 + r.values[1], u.regs.get(0x4006), `unit ${u.unit}’s rating`);
  }

  // 15 A more on L3: no room there for the three-phase car; charger 2's car is on L1.
  const before2 = last(u2);
  const loadNs = b.machine.nanos;
  house[2] += 15;
  b.until(() => last(u1) === 0, 20000, 'charger 1 paused', 10);
  const pausedNs = b.machine.nanos;
  b.run(10000);
  const after = u2.limitWrites.filter((w) => w.firstByteNs > loadNs).map((w) => w.ma);
  t.diagnostic(`L3 +15 A: charger 1 paused after ${s(pausedNs - loadNs)} s; charger 2 ${before2} → [${[...new Set(after)]}] mA`);
  assert.ok(after.length > 0, 'charger 2 still written');
  assert.ok(after.every((ma) => ma >= before2), `charger 2 never lowered (${before2} → ${after})`);
  const paused = b.read(1130, 12);
  assert.equal(paused[0], 0, '1130: 0 sent to charger 1');
  assert.ok(paused[5] & PAUSED, `1135 bit 2, paused to share (${paused[5]})`);
  assert.equal(paused[11] & PAUSED, 0, '1141: charger 2 not paused');
  assert.equal(paused[6], last(u2), '1136: charger 2’s limit');
  const grid3 = b.read(1100, 3);
  assert.ok(grid3.every((ca) => ca <= 2200), `grid ${grid3} (0.01 A) under 22 A`);
  house[2] -= 15;

  // Unit 1 goes silent: flagged; unit 2 still polled and written.
  u1.silent = true;
  const silentNs = b.machine.nanos;
  const flagged = () => (b.read(1003)[0] & 4) !== 0;
  b.until(flagged, 30000, '1003 bit 2 (charger not answering)', 500);
  const flaggedNs = b.machine.nanos;
  b.run(12000);
  const f = b.read(1130, 12);
  assert.ok(b.read(1003)[0] & 4, '1003 bit 2');
  assert.ok(f[5] & SILENT, `1135 bit 0 (${f[5]})`);
  assert.equal(f[11] & SILENT, 0, '1141: charger 2 answering');
  const reads2 = u2.reads.filter((r) => r.ns > silentNs + 10e9);
  const writes2 = u2.limitWrites.filter((w) => w.firstByteNs > silentNs + 10e9);
  assert.ok(reads2.length >= 2, `unit 2 polled while unit 1 is silent (${reads2.length})`);
  assert.ok(writes2.length >= 1, `unit 2 written while unit 1 is silent (${writes2.length})`);
  assert.ok(last(u2) >= 6000, `charger 2 still charging (${last(u2)} mA)`);
  const g2 = b.modbus(readHolding(2, 0x4006, 2), 6000);
  assert.equal(g2.exception, undefined, 'the gateway still reaches unit 2');
  assert.equal(b.modbus(readHolding(1, 0x4006, 2), 6000).exception, 0x0b, 'unit 1 through the gateway: 0x0B');
  assert.equal(b.bus.clashes.length, 0, 'never two units on the line at once');
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  t.diagnostic(
    `save → both usable ${s(usableNs - savedNs)} s; silent → flagged ${s(flaggedNs - silentNs)} s; ` +
      `${s(b.machine.nanos)} s simulated in ${wallMs.toFixed(0)} ms wall`,
  );
});

test('the line: two units at one address garble each other’s replies', () => {
  const b = new Board({ chargers: [{ unit: 1 }, { unit: 1, replyDelayMs: 5.5 }] });
  b.waitUsb();
  assert.equal(b.read(1003)[0] & 4, 0, 'not flagged before any exchange');
  b.until(() => (b.read(1003)[0] & 4) !== 0, 15000, '1003 bit 2 (no valid reply)', 500);
  assert.ok(b.bus.clashes.length > 0, 'the replies clashed');
  assert.ok(b.chargers.every((u) => u.replies.length > 0), 'both answered');
  assert.deepEqual(b.bus.unit(1), b.chargers[0], 'the first unit at an address');
});
