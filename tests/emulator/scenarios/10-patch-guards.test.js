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
  const first = (sev) => {
    const b = new Board({ patches: { sev } });
    b.until(() => b.charger.limitWrites.length > 0, 500, 'first 0x4100 write');
    return b.charger.limitWrites[0].firstByteNs / 1e6;
  };
  const [withSev, without] = [first(true), first(false)];
  t.diagnostic(`first 0x4100 write at ${withSev.toFixed(3)} ms with SEV, ${without.toFixed(3)} ms without`);
  assert.ok(without - withSev >= 5, 'the RS485 task slept until the next timer interrupt');
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
