// A forwarded request never goes on the RS485 bus after its host was told it failed
// (0x0B), not even a retry. At 1200 baud (1031 = 12) an exchange with a silent unit
// takes ~7.9 s (three attempts, each 0.5 s plus the longest reply's time on the wire),
// longer than the gateway's 5 s wait. The charger is silent, so the driver's own
// exchange holds the bus ~7.9 s; the host sends write X to unit 5 (nobody answers)
// just after it started, and write Y as soon as X is answered.
// - X is still queued after 5 s: answered 0x0B and taken back, never sent. (Before the
//   fix the RS485 task had taken it at once and sent it, three times, from 7.9 s; a
//   request still in the queue at its timeout went out later too: Y from 23.7 s.)
// - Y goes out when the driver's exchange ends, ahead of the driver's next one: its
//   host is answered after its last attempt (15.8 s), not at 5 s with two attempts
//   still to come.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';
import { writeMultiple } from '../lib/modbus.js';

const s = (ns) => (ns / 1e9).toFixed(2);
const same = (a, b) => Buffer.from(a).equals(Buffer.from(b));

test('gateway at 1200 baud: no forwarded request goes on the bus after its host got 0x0B', (t) => {
  const b = new Board();
  b.waitUsb();
  assert.equal(b.write(1031, 12).exception, undefined, '1031 = 12 (1200 baud)');
  assert.equal(b.write(1091, 1).exception, undefined, 'saved');
  const uart = b.machine.rp.uart[1];
  const c = b.charger;
  // The driver talks to the charger at 1200 baud.
  const n0 = c.replies.length;
  b.until(() => uart.baudRate === 1200 && c.replies.length > n0 && c.replies.at(-1).endNs, 5000, 'a reply at 1200 baud');

  c.silent = true;
  const toCharger = () => c.requests.filter((q) => q.bytes[0] === 1);
  const n1 = toCharger().length;
  b.until(() => toCharger().length > n1, 5000, "the driver's next exchange");
  const driver = toCharger().at(-1);

  const host = [];
  const send = (name, request) => {
    const sentNs = b.machine.nanos;
    const r = b.modbus(request, 20000);
    host.push({ name, request, sentNs, answeredNs: b.machine.nanos, r });
    return r;
  };
  const x = send('X', writeMultiple(5, 0x4100, [0, 32000]));
  const y = send('Y', writeMultiple(5, 0x4100, [0, 16000]));
  // Long enough for a request answered at 5 s to surface after the driver's exchange
  // and another forwarded one (~2 × 7.9 s from the driver's request).
  b.machine.runTo(Math.max(driver.firstByteNs + 17e9, b.machine.nanos + 1e9));
  b.machine.assertAlive();

  const report = [];
  const late = [];
  for (const h of host) {
    const sent = c.requests.filter((q) => same(q.bytes, h.request));
    const exc = h.r.exception === undefined ? 'a reply' : `0x${h.r.exception.toString(16).padStart(2, '0')}`;
    report.push(
      `${h.name}: sent by the host at ${s(h.sentNs - driver.firstByteNs)} s, ${exc} at ${s(h.answeredNs - driver.firstByteNs)} s, ` +
        `on the bus at [${sent.map((q) => s(q.firstByteNs - driver.firstByteNs)).join(', ')}] s`,
    );
    for (const q of sent.filter((q) => q.firstByteNs >= h.answeredNs)) {
      late.push(`${h.name} at ${s(q.firstByteNs - driver.firstByteNs)} s, answered at ${s(h.answeredNs - driver.firstByteNs)} s`);
    }
  }
  t.diagnostic(`times from the driver's silent exchange: ${report.join(' | ')}; simulated ${s(b.machine.nanos)} s`);
  assert.deepEqual(late, [], 'nothing on the bus after its host was answered');

  assert.equal(x.exception, 0x0b, 'X: 0x0B');
  const xMs = (host[0].answeredNs - host[0].sentNs) / 1e6;
  assert.ok(xMs >= 4990 && xMs < 5300, `X answered after the gateway's 5 s wait (${xMs.toFixed(0)} ms)`);
  assert.equal(c.requests.filter((q) => same(q.bytes, host[0].request)).length, 0, 'X never on the bus');
  assert.equal(y.exception, 0x0b, 'Y: 0x0B');
  const ySent = c.requests.filter((q) => same(q.bytes, host[1].request));
  assert.equal(ySent.length, 3, 'Y: three attempts, all before its answer');
  assert.ok(ySent[0].firstByteNs > driver.firstByteNs + 7e9, "Y waited for the driver's exchange");
});
