// Guard runs: each emulator patch switched off in turn, showing the failure it
// prevents (so a patch that stops being needed, or stops working, is noticed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';

const busy = (m) => m.busyCycles / m.totalCycles;

test('patch 1 (UART DMACR/IFLS, TXRIS once): without it an interrupt storm, no output, LED frozen', () => {
  const b = new Board({ patches: { uart: false } });
  b.machine.run(300);
  assert.equal(b.charger.txBytes.length, 0, 'nothing sent on UART1');
  assert.ok(b.led.edges.length <= 1, 'LED frozen');
  assert.equal(b.host.configured, false, 'USB starved');
  assert.ok(busy(b.machine) > 0.99, 'the core never sleeps');
  assert.ok(b.machine.log.some((l) => /UART1: Unimplemented peripheral read from 0x48/.test(l)), 'UARTDMACR read');
  const ok = new Board();
  ok.machine.run(300);
  assert.ok(ok.charger.txBytes.length > 0, 'patched: UART1 sends');
  assert.ok(ok.led.edges.length > 1, 'patched: LED blinks');
  assert.ok(busy(ok.machine) < 0.5, `patched: the core sleeps (busy ${busy(ok.machine)})`);
});

test('patch 2 (SEV sets the event register): without it a thread-mode wake waits for an unrelated interrupt', (t) => {
  const boot = (sev) => {
    const b = new Board({ patches: { sev } });
    b.machine.run(500);
    // The first frame on RS485: DE on, its last byte on the line, DE off.
    const on = b.de.edges.find((e) => e.high);
    const off = b.de.edges.find((e) => !e.high && e.ns > on.ns);
    const frameEnd = b.charger.requests[0].ns;
    return { b, startMs: on.ns / 1e6, holdMs: (off.ns - frameEnd) / 1e6 };
  };
  const [withSev, without] = [boot(true), boot(false)];
  t.diagnostic(
    `first RS485 frame at ${withSev.startMs.toFixed(3)} ms with SEV, ${without.startMs.toFixed(3)} ms without; ` +
      `DE released ${withSev.holdMs.toFixed(3)} / ${without.holdMs.toFixed(3)} ms after its last byte`,
  );
  assert.ok(without.startMs - withSev.startMs >= 5, 'the RS485 task slept until the next timer interrupt');
  assert.ok(withSev.holdMs < 0.1 && without.holdMs >= 5, 'and so did the release of the driver enable');
  assert.equal(withSev.b.charger.collisions.length, 0);
  assert.ok(without.b.charger.collisions.length > 0, 'the reply was lost to the board’s own driver (DE and /RE tied)');
  assert.ok(withSev.b.charger.limitWrites.length > 0, 'with SEV the limit is written');
  assert.equal(without.b.charger.limitWrites.length, 0, 'without it the charger’s setup is still being retried');
});

test('patch 3 (USB OUT keeps AVAILABLE): without it stale packets, enumeration fails', () => {
  const b = new Board({ patches: { usbOut: false } });
  b.machine.run(300);
  assert.equal(b.host.configured, false, 'not enumerated');
  assert.ok(busy(b.machine) > 0.99, 'the firmware spins on phantom packets');
});

test('patch 4 (XIP_CTRL stub): without it the flash driver spins on STREAM_CTR at boot', () => {
  const b = new Board({ patches: { xip: false } });
  b.machine.run(300);
  assert.ok(b.machine.log.some((l) => /invalid memory address: 14000018/.test(l)), 'STREAM_CTR read');
  assert.equal(b.led.edges.length, 0, 'never got past the unique-id read');
  assert.equal(b.host.configured, false);
});

test('patch 5 (stand-in ROM): without it rom_table_lookup jumps into zeros', () => {
  const b = new Board({ patches: { rom: false } });
  b.machine.run(20);
  assert.ok(
    b.machine.log.some((l) => /Instruction at 4000 is not implemented/.test(l)),
    'ran off the end of the all-zero ROM',
  );
  assert.equal(b.led.edges.length, 0);
  assert.equal(b.host.configured, false);
});
