// Real telegrams of several meters (tests/telegrams/, sent byte for byte at 115200):
// each one counts as valid (1115), none as rejected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';

const u32 = ([hi, lo]) => hi * 65536 + lo;

/** The 115200-baud samples (DSMR 4/5, e-MUCS, Smarty plaintext). */
const FILES = [
  'be-emucs171-fluvius.txt',
  'lu-smarty-sagemcom-t210dr-plain.txt',
  'nl-dsmr42-kaifa.txt',
  'nl-dsmr50-iskra-m550-two-mbus.txt',
  'nl-dsmr50-iskra-mt382.txt',
  'nl-dsmr50-warmtelink-unpadded-crc.txt',
  'nl-esmr50-sagemcom-t210d-seed.txt',
];

test('real telegrams of seven meters are all valid', (t) => {
  const b = new Board();
  b.waitUsb();
  b.run(1500);
  const results = [];
  for (const f of FILES) {
    const v0 = u32(b.read(1115, 2));
    const r0 = u32(b.read(1117, 2));
    b.meter.verbatim.push(f);
    const n = b.meter.telegrams.length + (b.meter.current ? 1 : 0);
    b.until(() => b.meter.telegrams.length > n, 3000, `${f} sent`);
    b.run(400);
    results.push([f, u32(b.read(1115, 2)) - v0, u32(b.read(1117, 2)) - r0]);
  }
  t.diagnostic(JSON.stringify(results));
  for (const [f, valid, rejected] of results) {
    assert.equal(rejected, 0, `${f} rejected`);
    assert.ok(valid >= 1, `${f} not counted as valid`);
  }
});
