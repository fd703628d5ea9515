// Scenario 2: overload — a phase current above the alarm limit (1012) makes the next
// 0x4100 write 12.5 A (1014) lower within 1013 s + one tick; the LED shows 4 pulses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board, FRAMES, frameAt } from '../lib/board.js';

test('overload: −12.5 A within 1013 s + 1 tick, LED state 3', (t) => {
  const b = new Board();
  b.waitUsb();
  // Room for a visible 12.5 A step: charger maximum 32 A, ramp 4 A a second.
  for (const [reg, v] of [
    [1010, 32000],
    [1000, 32000],
    [1020, 4000],
  ]) {
    assert.equal(b.write(reg, v).exception, undefined, `write ${reg}`);
  }
  assert.equal(b.write(1091, 1).exception, undefined, 'save');
  b.meter.setCurrents([5, 5, 5]);
  b.until(() => b.charger.limits.includes(32000), 30000, '32 A sent');
  b.run(1500);
  const nBefore = b.charger.limitWrites.length;
  b.meter.setCurrents([30, 5, 5]); // above the 24 A alarm limit
  // The first telegram composed from now on carries 30 A.
  const firstOver = b.meter.telegrams.length + (b.meter.current ? 1 : 0);
  b.until(() => b.meter.telegrams.length > firstOver, 2000, 'overload telegram');
  const over = b.meter.telegrams[firstOver];
  b.until(() => b.charger.limitWrites.slice(nBefore).some((w) => w.ma !== 32000), 5000, 'a lower limit');
  const w = b.charger.limitWrites.slice(nBefore).find((x) => x.ma !== 32000);
  assert.equal(w.ma, 32000 - 12500, 'the next write is 12.5 A lower');
  const dtMs = (w.firstByteNs - over.lastByteNs) / 1e6;
  t.diagnostic(`overload telegram end → 0x4100 write: ${dtMs.toFixed(3)} ms`);
  assert.ok(dtMs <= 1000 + 1000, `within 1013 (1 s) + 1 tick: ${dtMs} ms`);
  assert.deepEqual(b.read(1001, 2), [19500, 3], '1001 = 19.5 A, state 3');
  b.run(2000);
  const sec = Math.ceil(b.machine.nanos / 1e9) * 1e9 - 2e9;
  assert.equal(frameAt(b.led, sec), FRAMES[3], 'LED: 4 pulses');
  assert.equal(b.led.between(sec, sec + 1e9).filter((e) => e.high).length, 4, '4 rising edges a second');
});
