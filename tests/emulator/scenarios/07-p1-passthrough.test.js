// Scenario 7: CDC port 0 carries the P1 bytes unchanged (a corrupt telegram too); a
// host that never reads port 0 blocks nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';

const u32 = ([hi, lo]) => hi * 65536 + lo;

test('P1 passthrough: bytes out of port 0 = bytes into UART0', () => {
  const b = new Board({ meter: { firstAtMs: 200 } });
  b.waitUsb();
  b.run(2500);
  b.meter.corruptNext([999, 999, 999]);
  b.meter.setCurrents([7.5, 3.25, 0.5]);
  b.run(3000);
  b.meter.stop();
  b.run(500);
  assert.ok(b.meter.telegrams.length >= 5);
  assert.ok(b.meter.telegrams.some((x) => !x.valid), 'a corrupt telegram was among them');
  const sent = Buffer.from(b.meter.sent);
  const got = Buffer.from(b.p1Port.received);
  assert.equal(got.length, sent.length, 'as many bytes out as in');
  assert.ok(got.equals(sent), 'byte for byte');
});

test('a host that never reads port 0 blocks nothing else', () => {
  const b = new Board();
  b.waitUsb();
  b.p1Port.pause();
  b.run(1000);
  const valid0 = u32(b.read(1115, 2));
  const n = b.charger.limitWrites.length;
  b.run(8000); // ~8 telegrams, far more than the 2 KiB queue and the USB buffers
  assert.ok(b.p1Port.received.length === 0, 'nothing read on port 0');
  assert.ok(u32(b.read(1115, 2)) >= valid0 + 7, 'telegrams still parsed');
  assert.ok(b.charger.limitWrites.length > n, 'the charger is still driven');
  const r = b.read(1000, 3);
  assert.equal(r.length, 3, 'Modbus on port 1 answers');
  // Reading again: the port works, newest bytes only (the rest was dropped).
  b.p1Port.resume();
  b.run(2500);
  assert.ok(b.p1Port.received.length > 0, 'port 0 delivers again');
});
