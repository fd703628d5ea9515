// Scenario 8: GPIO 7 (RS485 driver enable) is high during every UART1 transmission —
// from before the first byte is written until the last stop bit has left — and low
// otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';
import { readHolding } from '../lib/modbus.js';

test('driver enable brackets every RS485 frame', (t) => {
  const b = new Board();
  b.waitUsb();
  b.run(3000);
  b.modbus(readHolding(1, 0x4000, 4)); // a gateway frame too
  b.run(3000);
  const { txBytes, lineBytes } = b.charger;
  assert.ok(txBytes.length > 50, `${txBytes.length} bytes sent`);
  assert.ok(txBytes.every((x) => x.deHigh === true), 'DE high whenever a byte is written');
  assert.ok(lineBytes.every((x) => x.deHigh === true), 'DE still high when each stop bit ends');
  // Every high period holds a transmission and ends soon after its last stop bit.
  // From the first rise on (before it: the pin being set up as a low output).
  const edges = b.de.edges.slice(b.de.edges.findIndex((e) => e.high));
  assert.ok(edges.length > 10, 'DE toggles');
  let maxTail = 0;
  for (let i = 0; i + 1 < edges.length; i += 2) {
    const [rise, fall] = [edges[i], edges[i + 1]];
    assert.ok(rise.high && !fall.high, 'edges alternate');
    const inside = lineBytes.filter((x) => x.ns > rise.ns && x.ns <= fall.ns);
    assert.ok(inside.length > 0, `DE high ${rise.ns / 1e6}–${fall.ns / 1e6} ms without a byte`);
    const tail = fall.ns - inside[inside.length - 1].ns;
    maxTail = Math.max(maxTail, tail);
  }
  // Nothing on the line while DE is low: every byte lies inside a high period.
  for (const x of lineBytes) {
    const last = edges.filter((e) => e.ns <= x.ns).pop();
    assert.ok(last?.high || last?.ns === x.ns, `byte at ${x.ns / 1e6} ms with DE low`);
  }
  t.diagnostic(`DE released at most ${(maxTail / 1e3).toFixed(1)} µs after the last stop bit`);
  assert.ok(maxTail < 500e3, 'released within half a millisecond');
});
