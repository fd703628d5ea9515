// Scenario 3: the meter falls silent → state 4 and the fallback limit (1021) sent
// exactly 1022 s after the last valid telegram; the meter comes back → the limit steps
// up from the fallback value, never jumps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board, FRAMES, frameAt } from '../lib/board.js';

test('meter silent → fallback after 1022 s, then ramps back', (t) => {
  const b = new Board();
  b.waitUsb();
  assert.equal(b.write(1021, 8000).exception, undefined, 'fallback limit 8 A');
  assert.equal(b.write(1022, 5).exception, undefined, 'fallback time 5 s');
  assert.equal(b.write(1091, 1).exception, undefined, 'save');
  b.until(() => b.charger.limits.includes(16000), 30000, '16 A sent');
  b.run(500);
  b.meter.stop();
  b.run(1500);
  const last = b.meter.telegrams[b.meter.telegrams.length - 1];
  const n = b.charger.limitWrites.length;
  b.until(() => b.charger.limitWrites.slice(n).some((w) => w.ma === 8000), 10000, 'fallback sent');
  const w = b.charger.limitWrites.slice(n).find((x) => x.ma === 8000);
  const dt = (w.firstByteNs - last.lastByteNs) / 1e6;
  t.diagnostic(`last telegram → fallback write: ${dt.toFixed(3)} ms`);
  // The core counts whole milliseconds (the telegram time is truncated): up to 1 ms early.
  assert.ok(dt > 5000 - 1 && dt <= 5000 + 1000 + 5, `fallback after 1022 = 5 s (+ at most one tick): ${dt} ms`);
  assert.ok(
    b.charger.limitWrites.slice(n).every((x) => x.ma === 16000 || x.ma === 8000),
    'nothing else in between',
  );
  assert.equal(b.read(1002)[0], 4, 'state 4');
  assert.equal(b.read(1003)[0] & 1, 1, '1003 bit 0: meter data stale');
  b.run(2000);
  const sec = Math.floor(b.machine.nanos / 1e9) * 1e9 - 1e9;
  assert.equal(frameAt(b.led, sec), FRAMES[4], 'LED ----____');
  // The meter is back: the limit restarts from 8 A and steps up by 1 A a second.
  const m = b.charger.limitWrites.length;
  b.meter.start();
  b.until(() => b.charger.limits.slice(m).includes(12000), 15000, 'ramping back');
  const values = [...new Set(b.charger.limits.slice(m))];
  assert.deepEqual(values, [8000, 9000, 10000, 11000, 12000].filter((v) => values.includes(v)));
  assert.ok(values.includes(9000) && values.includes(10000) && values.includes(11000), `steps: ${values}`);
});
