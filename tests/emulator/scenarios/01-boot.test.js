// Scenario 1: boot — the limit steps up from 0 to 16 A at the configured rate (1020 per
// 1019 s, sent as 0 below the 6 A minimum) and the LED shows the state frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board, FRAMES, frameAt, limitChanges } from '../lib/board.js';

test('boot: limit ramps 0 → 16 A at 1 A/s, LED frames of states 1 and 0', () => {
  const b = new Board();
  const host = b.waitUsb();
  assert.equal(host.device.vid, 0x1209);
  assert.equal(host.device.pid, 0x0001);
  assert.equal(host.device.product, 'P1 Load Balancer');
  assert.equal(host.device.serial, 'E6614103E7452D2F', 'serial = hex of the flash unique id');
  assert.equal(host.ports.length, 2, 'two CDC-ACM functions');
  b.until(() => b.charger.limits.includes(16000), 30000, '16 A sent');
  const changes = limitChanges(b.charger);
  assert.deepEqual(
    changes.map((w) => w.ma),
    [0, 6000, 7000, 8000, 9000, 10000, 11000, 12000, 13000, 14000, 15000, 16000],
  );
  // At boot the limit starts at 0 and rises 1000 mA per second; values below 6 A go
  // out as 0, so 6 A comes six ticks after the first tick.
  for (let i = 2; i < changes.length; i++) {
    const dt = (changes[i].firstByteNs - changes[i - 1].firstByteNs) / 1e6;
    assert.ok(Math.abs(dt - 1000) <= 2, `step ${i}: ${dt} ms apart`);
  }
  const rampStart = changes[1].firstByteNs - 6000e6;
  assert.ok(rampStart > 0 && rampStart < 1500e6, `ramp starts at ${rampStart / 1e6} ms`);
  b.run(1100); // the state follows at the next control tick
  assert.deepEqual(b.read(1001, 2), [16000, 0], '1001 = 16 A, state 0 at the maximum');

  // LED: state 1 while ramping, state 0 at the charger maximum. Every edge lies on a
  // 125 ms slot boundary of the one-second frame.
  const t16 = changes[changes.length - 1].firstByteNs;
  b.run(3000);
  const ms = (ns) => ns / 1e6;
  for (const e of b.led.edges.filter((e) => e.ns > 100e6)) {
    const phase = ms(e.ns) % 125;
    assert.ok(phase < 0.2 || phase > 124.8, `LED edge at ${ms(e.ns)} ms is off the 125 ms grid`);
  }
  const second = (ns) => Math.floor(ns / 1e9) * 1e9;
  assert.equal(frameAt(b.led, second(t16) - 3e9), FRAMES[1], 'state 1 frame while ramping');
  assert.equal(frameAt(b.led, second(t16) + 2e9), FRAMES[0], 'state 0 frame at the maximum');
  // Slot timings from the edges: in state 0 on for one slot, off for seven.
  const late = b.led.edges.filter((e) => e.ns > second(t16) + 1e9);
  for (let i = 1; i < late.length; i++) {
    const d = ms(late[i].ns - late[i - 1].ns);
    assert.ok(Math.abs(d - (late[i].high ? 875 : 125)) < 0.2, `slot ${d} ms`);
  }
});
