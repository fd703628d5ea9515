// 1003 bit 6 (watchdog reset): set after our watchdog reset the board, and only then.
// The boot ROM reboots through the same watchdog timer (after a UF2 copy, for
// reset_usb_boot), so REASON alone would flag every firmware update; the firmware marks
// watchdog SCRATCH4 with its magic while its watchdog runs and checks both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';
import { ROM_VECTOR_MAGIC } from '../lib/machine.js';

/** What the firmware writes to SCRATCH4 (control::WATCHDOG_MAGIC, pico-sdk's value). */
const WATCHDOG_MAGIC = 0x6ab73121;
const REASON_TIMER = 1;

/** A board that has run for a while, its watchdog armed and fed. */
function running() {
  const b = new Board();
  b.waitUsb();
  b.run(1500);
  return b;
}

/** The board after a watchdog reset of `m`: its flash and its watchdog block carried over. */
function rebootAfter(m) {
  const b = new Board({ flash: m.flashCopy(), watchdog: m.watchdogState() });
  b.waitUsb();
  b.run(1200);
  return b;
}

const bit6 = (b) => b.read(1003)[0] & 0x40;

test('a panic hangs the core, the watchdog resets the board: 1003 bit 6 set', (t) => {
  const a = running();
  const m = a.machine;
  // As if some code called core::panicking::panic_fmt (as in 13-harness).
  const [, panicFmt] = [...m.elf.symbols].find(([n]) => n.endsWith('9panicking9panic_fmt'));
  const core = m.rp.core;
  core.LR = core.PC | 1;
  core.PC = panicFmt;
  core.waiting = false;
  assert.throws(() => a.run(10), /firmware panic/);
  const panicAt = m.nanos;
  // Without a debugger the bkpt faults and the core loops in the fault handler.
  m.stall();
  assert.ok(m.runUntil(() => m.watchdogFired, 6000, 10), 'the watchdog fired');
  const dt = (m.nanos - panicAt) / 1e6;
  t.diagnostic(`panic → watchdog reset: ${dt.toFixed(1)} ms`);
  assert.ok(dt >= 3000 && dt <= 4000, `within the 4 s timeout of the last feed (${dt} ms)`);
  const state = m.watchdogState();
  assert.equal(state.reason, REASON_TIMER);
  const b = rebootAfter(m);
  assert.equal(bit6(b), 0x40, '1003 bit 6 after the watchdog reset');
  assert.equal(state.scratch[4], WATCHDOG_MAGIC, 'SCRATCH4 marked, and it survived the watchdog reset');
  assert.equal(b.machine.watchdog.scratchData[4], WATCHDOG_MAGIC, 'marked again');
  const c = new Board({ flash: b.machine.flashCopy() });
  c.waitUsb();
  c.run(1200);
  assert.equal(bit6(c), 0, 'not after the next power-on');
});

for (const [what, pc, delayMs, scratch4] of [
  ['after a UF2 copy (flash image: SCRATCH4 = 0)', 0, 1000, 0],
  ['after reset_usb_boot or a RAM image (vector: SCRATCH4 = 0xb007c0d3)', 0x20041000, 10, ROM_VECTOR_MAGIC],
]) {
  test(`the boot ROM's own watchdog reboot ${what}: 1003 bit 6 clear`, () => {
    const a = running();
    const m = a.machine;
    const before = m.watchdog.scratchData[4];
    m.bootRomReboot({ pc, delayMs });
    assert.ok(m.runUntil(() => m.watchdogFired, delayMs + 100, 1), 'the ROM’s watchdog reboot');
    const state = m.watchdogState();
    assert.equal(state.reason, REASON_TIMER, 'REASON says "watchdog timer" as after our own reset');
    assert.equal(state.scratch[4], scratch4 >>> 0, 'the ROM wrote SCRATCH4');
    const b = rebootAfter(m);
    assert.equal(bit6(b), 0, '1003 bit 6 clear: not a watchdog reset of ours');
    assert.equal(before, WATCHDOG_MAGIC, 'SCRATCH4 was marked while the watchdog ran');
    assert.equal(b.machine.watchdog.scratchData[4], WATCHDOG_MAGIC, 'marked again for the next life');
  });
}

test('a power-on: 1003 bit 6 clear', () => {
  const b = new Board();
  b.waitUsb();
  b.run(1200);
  assert.equal(bit6(b), 0);
});
