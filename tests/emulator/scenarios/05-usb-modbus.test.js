// Scenario 5: the Modbus server on USB port 1 — defaults, exception 03, a save that
// survives a reboot (flash through the stand-in ROM), restore defaults, and a power cut
// in the middle of a save (old or new configuration, never neither).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';
import { readHolding } from '../lib/modbus.js';

/** Registers 1000–1022 at their defaults (registers.md); null: status, not checked. */
const DEFAULTS = [
  16000, null, null, null, null, 0, 0, 0, 0, 0, 16000, 3, 24000, 1, 12500, 22000, 5, 1000,
  19000, 1, 1000, 0, 30,
];

function boot(flash) {
  const b = new Board({ flash });
  b.waitUsb();
  return b;
}

test('read 1000–1022 → defaults; invalid value → exception 03', () => {
  const b = boot();
  const regs = b.read(1000, 23);
  DEFAULTS.forEach((v, i) => {
    if (v !== null) assert.equal(regs[i], v, `register ${1000 + i}`);
  });
  assert.equal(b.write(1011, 2).exception, 3, '1011 = 2 refused');
  assert.equal(b.write(1013, 0).exception, 3, '1013 = 0 refused');
  assert.equal(b.read(1011)[0], 3, 'nothing changed');
  assert.equal(b.read(1199).length, 1, 'every address up to 1199 reads');
  assert.equal(b.modbus(readHolding(10, 1300, 1)).exception, 2, 'outside the map: exception 02');
});

test('a saved upper limit survives a reboot; 1092 restores the defaults', () => {
  const b = boot();
  assert.equal(b.write(1015, 23000).exception, undefined);
  assert.equal(b.read(1003)[0] & 0x20, 0x20, '1003 bit 5: staged changes');
  const save = b.write(1091, 1);
  assert.equal(save.exception, undefined, 'save accepted');
  assert.ok(save.ms <= 1600, `the save waited for the quiet gap (${save.ms} ms)`);
  assert.ok(b.machine.romCalls.includes('RP'), 'flash programmed through the ROM');
  const b2 = boot(b.machine.flashCopy());
  assert.equal(b2.read(1015)[0], 23000, 'upper limit after reboot');
  assert.equal(b2.read(1003)[0] & 0x30, 0, 'no staged changes, saved config valid');
  assert.equal(b2.write(1092, 1).exception, undefined);
  const b3 = boot(b2.machine.flashCopy());
  assert.equal(b3.read(1015)[0], 22000, 'defaults after 1092 and a reboot');
});

test('power cut during a save → old or new configuration', (t) => {
  // Configuration A saved; then a save of B, cut at each of its flash program calls.
  const a = boot();
  a.write(1015, 23000);
  a.write(1091, 1);
  const flashA = a.machine.flashCopy();
  const full = boot(flashA);
  const before = full.machine.programCalls;
  full.write(1015, 21000);
  full.write(1091, 1);
  const calls = full.machine.programCalls - before;
  assert.ok(calls >= 1, 'a save programs flash');
  const seen = new Set();
  for (let k = 0; k < calls; k++) {
    const b = boot(flashA);
    const base = b.machine.programCalls;
    b.machine.onFlashProgram = (i) => (i === base + k ? 'cut' : undefined);
    b.write(1015, 21000);
    try {
      b.write(1091, 1);
    } catch {
      // The board lost power mid-save: no reply.
    }
    assert.ok(b.machine.powerCut, `cut at program call ${k}`);
    const after = boot(b.machine.flashCopy());
    const v = after.read(1015)[0];
    assert.ok(v === 23000 || v === 21000, `cut at call ${k}: 1015 = ${v}`);
    assert.equal(after.read(1003)[0] & 0x10, 0, `cut at call ${k}: saved config valid`);
    seen.add(v);
  }
  t.diagnostic(`a save makes ${calls} flash program calls; after a cut at each: ${[...seen].join(', ')}`);
  assert.ok(seen.has(23000), 'an early cut keeps the old configuration');
});

test('many saves: the store erases sectors in the quiet gaps, no telegram lost', (t) => {
  const b = boot();
  b.run(1500);
  const u32 = ([hi, lo]) => hi * 65536 + lo;
  // ~110 saves fill the 16 KiB store once; then it erases its oldest sector (45 ms
  // with interrupts off: at most 5 bytes at 115200 would fit in the UART FIFO).
  let saves = 0;
  let extra = 0;
  while (saves < 300 && extra < 5) {
    assert.equal(b.write(1015, 20000 + (saves % 40) * 50).exception, undefined);
    assert.equal(b.write(1091, 1).exception, undefined, `save ${saves}`);
    saves++;
    if (b.machine.romCalls.includes('RE')) extra++;
  }
  const erased = b.machine.romCalls.filter((c) => c === 'RE').length;
  t.diagnostic(`${saves} saves: ${erased} sector erases, ${b.machine.programCalls} program calls`);
  assert.ok(erased >= 1, 'the store wrapped around');
  b.run(1500);
  assert.equal(u32(b.read(1117, 2)), 0, 'no telegram rejected: flash work stayed in the gaps');
  const last = b.read(1015)[0];
  const after = boot(b.machine.flashCopy());
  assert.equal(after.read(1015)[0], last, 'the last save after a reboot');
});
