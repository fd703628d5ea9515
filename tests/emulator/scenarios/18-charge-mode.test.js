// Scenario 18: the charge mode (register 1080, issue 18) on the firmware's USB Modbus
// port. A write of 1080 applies and is saved to flash without 1091: after a reset from
// the flash as it is then, 1080 reads the new mode; a setting staged before it stays
// staged (1003 bit 5, not in flash: gone after the reset). A refused value (1080 = 4,
// or an FC 16 request with one bad value) answers exception 03 and changes nothing.
// Paused (1080 = 3) applies at the next tick: the charger is sent 0 and the LED shows
// the normal frame (state 0), as the README's LED section says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board, FRAMES, frameAt } from '../lib/board.js';

function boot(flash) {
  const b = new Board({ flash });
  b.waitUsb();
  return b;
}

const unsaved = (b) => (b.read(1003)[0] & 0x20) !== 0;

test('a charge mode write is saved to flash at once and kept across a reset', (t) => {
  const b = boot();
  assert.equal(b.read(1080)[0], 0, 'fast by default');
  const programs = b.machine.programCalls;
  const w = b.write(1080, 2);
  assert.equal(w.exception, undefined, '1080 = 2 accepted');
  assert.ok(b.machine.programCalls > programs, 'the write programmed flash');
  assert.ok(w.ms <= 1600, `the save waited for the quiet gap (${w.ms} ms)`);
  t.diagnostic(`1080 = 2 answered after ${w.ms.toFixed(1)} ms`);
  assert.equal(b.read(1080)[0], 2, 'applied');
  assert.equal(unsaved(b), false, '1003 bit 5 clear: nothing staged');

  const b2 = boot(b.machine.flashCopy());
  assert.equal(b2.read(1080)[0], 2, 'solar only after a reset, without 1091');
  assert.equal(unsaved(b2), false);
  assert.equal(b2.read(1003)[0] & 0x10, 0, 'saved configuration valid');
});

test('a setting staged before the mode changes stays staged (and is lost on a reset)', () => {
  const b = boot();
  assert.equal(b.write(1015, 21000).exception, undefined);
  assert.equal(unsaved(b), true, 'upper limit staged');
  assert.equal(b.write(1080, 3).exception, undefined, '1080 = 3 accepted');
  assert.equal(b.read(1080)[0], 3);
  assert.equal(b.read(1015)[0], 21000, 'still staged');
  assert.equal(unsaved(b), true, '1003 bit 5 still set');
  // FC 16 over 1080–1081: the mode saved, the start surplus staged.
  assert.equal(b.writeMany(1080, [1, 4200]).exception, undefined);
  assert.equal(b.read(1081)[0], 4200);

  const b2 = boot(b.machine.flashCopy());
  assert.equal(b2.read(1080)[0], 1, 'the last mode after a reset');
  assert.equal(b2.read(1015)[0], 22000, 'the staged upper limit was not saved');
  assert.equal(b2.read(1081)[0], 0, 'the staged start surplus was not saved');
  assert.equal(unsaved(b2), false);

  // A save (1091) then takes the staged settings with the mode.
  assert.equal(b2.write(1083, 240).exception, undefined);
  assert.equal(b2.write(1091, 1).exception, undefined);
  const b3 = boot(b2.machine.flashCopy());
  assert.deepEqual(b3.read(1080, 5), [1, 0, 60, 240, 0], '1080–1084 after save and reset');
  // Restore defaults (1092): fast again after a reset.
  assert.equal(b3.write(1092, 1).exception, undefined);
  const b4 = boot(b3.machine.flashCopy());
  assert.equal(b4.read(1080)[0], 0);
});

test('a refused charge mode answers 03 and changes nothing, in the map or in flash', () => {
  const b = boot();
  assert.equal(b.write(1080, 2).exception, undefined);
  const programs = b.machine.programCalls;
  assert.equal(b.write(1080, 4).exception, 3, '1080 = 4 refused');
  assert.equal(b.writeMany(1080, [3, 0, 3601]).exception, 3, 'FC 16 with 1082 = 3601 refused whole');
  assert.equal(b.read(1080)[0], 2);
  assert.equal(b.read(1082)[0], 60);
  assert.equal(unsaved(b), false);
  assert.equal(b.machine.programCalls, programs, 'no flash write');
  const b2 = boot(b.machine.flashCopy());
  assert.equal(b2.read(1080)[0], 2);
});

test('paused applies at the next tick: the charger gets 0, the LED shows state 0', (t) => {
  const b = boot();
  b.meter.setCurrents([5, 5, 5]);
  b.until(() => b.charger.limits.includes(16000), 30000, '16 A sent');
  b.run(1500);
  const nBefore = b.charger.limitWrites.length;
  const w = b.write(1080, 3);
  assert.equal(w.exception, undefined, '1080 = 3 accepted');
  const t0 = b.machine.nanos;
  b.until(() => b.charger.limitWrites.slice(nBefore).some((x) => x.ma === 0), 3000, 'a limit of 0');
  const zero = b.charger.limitWrites.slice(nBefore).find((x) => x.ma === 0);
  t.diagnostic(`1080 = 3 answered → 0x4100 = 0: ${((zero.firstByteNs - t0) / 1e6).toFixed(1)} ms`);
  b.run(2000);
  assert.deepEqual(b.read(1001, 2), [0, 0], '1001 = 0, state 0');
  assert.equal(b.read(1128)[0], 0, 'solar state idle');
  const sec = Math.ceil(b.machine.nanos / 1e9) * 1e9 - 2e9;
  assert.equal(frameAt(b.led, sec), FRAMES[0], 'LED: the normal frame');
  // Fast again: the limit comes back.
  assert.equal(b.write(1080, 0).exception, undefined);
  b.until(() => b.charger.limitWrites.slice(-1)[0].ma > 0, 30000, 'a limit above 0 again');
});
