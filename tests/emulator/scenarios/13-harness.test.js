// The harness itself: panic detection (the firmware's panic handler executes `bkpt`),
// determinism, and the idle skipping that makes long scenarios cheap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';

test('a panic stops the run at the bkpt of the panic handler', () => {
  const b = new Board();
  b.waitUsb();
  const m = b.machine;
  const [, panicFmt] = [...m.elf.symbols].find(([n]) => n.endsWith('9panicking9panic_fmt'));
  // As if some code called core::panicking::panic_fmt.
  const core = m.rp.core;
  core.LR = core.PC | 1;
  core.PC = panicFmt;
  core.waiting = false;
  assert.throws(() => b.run(10), /firmware panic \(bkpt\) at .*panic_fmt/);
  assert.ok(m.halted);
});

test('runs are deterministic and idle time is skipped', (t) => {
  const run = () => {
    const t0 = process.hrtime.bigint();
    const b = new Board();
    b.waitUsb();
    b.run(5000);
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const m = b.machine;
    return { busy: m.busyCycles, total: m.totalCycles, writes: b.charger.limitWrites.map((w) => w.firstByteNs), wallMs };
  };
  const a = run();
  const c = run();
  assert.equal(a.busy, c.busy, 'identical instruction cycles');
  assert.deepEqual(a.writes, c.writes, 'identical timing on the bus');
  // Only the cycles the core was awake were executed; the rest was one clock jump
  // per sleep (wall time is load-dependent: reported, not asserted).
  t.diagnostic(`5 s simulated in ${a.wallMs.toFixed(0)} ms wall; ${a.busy} of ${a.total} cycles executed`);
  assert.ok(a.busy / a.total < 0.1, 'the core slept most of the time');
});
