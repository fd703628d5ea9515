// Scenario 6: the USB Modbus port as gateway — a request for unit 1 reaches the
// simulated charger on UART1 and its reply comes back; a silent charger → exception 0x0B.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';
import { readHolding } from '../lib/modbus.js';

test('gateway: unit 1 through to the charger and back; silence → 0x0B', (t) => {
  const b = new Board();
  b.waitUsb();
  b.run(500);
  // The driver's own status reads (79-byte replies) are understood: they arrive in
  // UART FIFO chunks, which once cut them at the first chunk.
  assert.equal(b.read(1113)[0], 4, '1113: the charger is charging (C2)');
  assert.equal(b.read(1003)[0] & 0x0c, 0, '1003: charger answering, no exception');
  const before = b.charger.requests.length;
  const r = b.modbus(readHolding(1, 0x4000, 0x25));
  assert.equal(r.unit, 1);
  assert.equal(r.crcOk, true);
  assert.equal(r.exception, undefined);
  assert.deepEqual(r.values, b.charger.statusBlock(), 'the charger’s status block');
  const forwarded = b.charger.requests.slice(before).filter((q) => q.bytes.length === 8 && q.bytes[0] === 1);
  assert.ok(
    forwarded.some((q) => Buffer.from(q.bytes).equals(Buffer.from(readHolding(1, 0x4000, 0x25)))),
    'the request went out on UART1 unchanged',
  );
  t.diagnostic(`gateway round trip: ${r.ms.toFixed(1)} ms`);
  const e = b.modbus(readHolding(1, 0x4000, 2));
  assert.equal(e.exception, undefined, 'a partial read is fine too');
  assert.equal(b.modbus(readHolding(1, 0x5000, 2)).exception, 2, 'the charger’s own exception comes back');

  b.charger.silent = true;
  const s = b.modbus(readHolding(1, 0x4000, 0x25), 6000);
  assert.equal(s.unit, 1);
  assert.equal(s.fc, 3);
  assert.equal(s.exception, 0x0b, 'gateway target failed to respond');
  assert.ok(s.ms <= 3500, `answered within the gateway wait (${s.ms} ms)`);
  b.charger.silent = false;
  const back = b.modbus(readHolding(1, 0x4000, 0x25));
  assert.equal(back.exception, undefined, 'works again when the charger answers');
});
