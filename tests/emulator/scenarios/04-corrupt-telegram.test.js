// Scenario 4: a corrupt telegram (bad CRC, a huge current) is ignored; the rejected
// counter (1117–1118) rises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';

const u32 = ([hi, lo]) => hi * 65536 + lo;

test('corrupt telegram → ignored, 1117 counts it', () => {
  const b = new Board();
  b.waitUsb();
  b.until(() => b.charger.limits.includes(10000), 30000, '10 A sent');
  const valid0 = u32(b.read(1115, 2));
  const rejected0 = u32(b.read(1117, 2));
  const n = b.charger.limitWrites.length;
  b.meter.corruptNext([999, 999, 999]);
  const index = b.meter.telegrams.length + (b.meter.current ? 1 : 0);
  b.until(() => b.meter.telegrams.length > index, 3000, 'corrupt telegram sent');
  assert.equal(b.meter.telegrams[index].valid, false, 'the telegram really has a bad CRC');
  b.run(300);
  assert.equal(u32(b.read(1117, 2)), rejected0 + 1, '1117–1118: one more rejected');
  b.run(1000); // the flag follows at the next control tick
  assert.equal(b.read(1003)[0] & 2, 2, '1003 bit 1: CRC failures in the last minute');
  const grid = b.read(1100, 3);
  assert.ok(grid.every((v) => v < 1000), `1100–1102 not 999 A: ${grid}`);
  assert.notEqual(b.read(1002)[0], 3, 'no alarm state');
  b.run(3000);
  const after = b.charger.limits.slice(n);
  assert.ok(after.every((v, i) => i === 0 || v >= after[i - 1]), `limit only rose: ${after}`);
  assert.ok(u32(b.read(1115, 2)) > valid0, 'valid telegrams still counted');
});
