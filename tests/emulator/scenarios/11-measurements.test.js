// Measurements on the emulated RP2040 at 125 MHz (cycles = simulated time × clk_sys):
// telegram → 0x4100 latency, CPU busy fraction at one telegram a second, cycles per P1
// byte. Written to measurements.json next to package.json and reported as diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Board } from '../lib/board.js';

const OUT = new URL('../measurements.json', import.meta.url).pathname;

test('measurements: latency, busy fraction, cycles per P1 byte', (t) => {
  const b = new Board();
  const m = b.machine;
  const clk = () => m.rp.clkSys;
  const cyc = (ns) => Math.round((ns * clk()) / 1e9);
  b.waitUsb();
  for (const [reg, v] of [
    [1010, 32000],
    [1000, 32000],
    [1020, 4000],
  ]) {
    b.write(reg, v);
  }
  b.write(1091, 1);
  b.meter.setCurrents([5, 5, 5]);
  b.until(() => b.charger.limits.includes(32000), 30000, '32 A');
  b.run(3000);

  // Busy fraction at one telegram a second (state 0, the charger polled, the host
  // reading both ports), over 10 s.
  const w0 = { busy: m.busyCycles, ns: m.nanos, bytes: b.meter.sent.length };
  b.run(10000);
  const w1 = { busy: m.busyCycles, ns: m.nanos, bytes: b.meter.sent.length };
  const busyFraction = (w1.busy - w0.busy) / cyc(w1.ns - w0.ns);
  // The same 10 s with the meter silent (well inside the 30 s fallback time): the
  // difference is what the telegrams cost.
  b.meter.stop();
  b.run(1000);
  const q0 = { busy: m.busyCycles, ns: m.nanos };
  b.run(10000);
  const q1 = { busy: m.busyCycles, ns: m.nanos };
  const idleBusy = (q1.busy - q0.busy) / cyc(q1.ns - q0.ns);
  const bytes = w1.bytes - w0.bytes;
  const cyclesPerByte = ((w1.busy - w0.busy) - (q1.busy - q0.busy)) / bytes;
  b.meter.start();
  b.run(3000);

  // Latency: the overload telegram starts the 1013 s (1 s) wait; the decrease goes out
  // after the telegram that ends it. Cycles from that telegram's last byte to the first
  // byte of the 0x4100 write.
  const n = b.charger.limitWrites.length;
  // Where the time goes: the reader accepting a telegram, the control tick.
  const finished = [];
  const ticks = [];
  m.onCall('TelegramReader$LT$_$GT$6finish', (ns) => finished.push(ns));
  m.onCall('Device13update_status', (ns) => ticks.push(ns));
  b.meter.setCurrents([30, 5, 5]);
  b.until(() => b.charger.limitWrites.slice(n).some((w) => w.ma !== 32000), 5000, 'decrease');
  const w = b.charger.limitWrites.slice(n).find((x) => x.ma !== 32000);
  const tg = b.meter.lastTelegramBefore(w.firstByteNs);
  const latencyCycles = cyc(w.firstByteNs - tg.lastByteNs);
  const after = (list) => list.find((x) => x >= tg.lastByteNs);
  const breakdown = {
    last_byte_to_telegram_accepted: cyc(after(finished) - tg.lastByteNs),
    last_byte_to_control_tick: cyc(after(ticks) - tg.lastByteNs),
    control_tick_to_first_byte_written: cyc(w.firstByteNs - after(ticks)),
  };
  // The timer ticks of the ramp: how far from the telegrams they land.
  const rampWrites = b.charger.limitWrites.filter((x) => x.ma > 0 && x.ma < 32000 && x.firstByteNs < w0.ns);
  const rampOffsets = rampWrites.map((x) => {
    const next = b.meter.telegrams.find((tt) => tt.lastByteNs > x.firstByteNs);
    return next ? (next.lastByteNs - x.firstByteNs) / 1e6 : null;
  });
  const result = {
    clk_sys_hz: clk(),
    telegram_bytes: b.meter.telegrams[0].bytes.length,
    latency_telegram_to_0x4100: { cycles: latencyCycles, ms: latencyCycles / (clk() / 1e3), breakdown_cycles: breakdown },
    ramp_writes_before_next_telegram_ms: rampOffsets,
    busy_fraction_1_telegram_per_s: busyFraction,
    busy_fraction_meter_silent: idleBusy,
    cycles_per_p1_byte: cyclesPerByte,
  };
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  t.diagnostic(JSON.stringify(result));
  assert.equal(w.ma, 32000 - 12500);
  assert.ok(latencyCycles <= 2e-3 * clk(), `goal ≤ 2 ms: ${latencyCycles} cycles`);
  assert.ok(busyFraction < 0.25, `busy ${busyFraction}`);
});
