// Scenario 9: boot through the image's own boot2 (copied to 0x20041f00 with SP there,
// as the boot ROM does): checks the `.boot2` placement and its checksum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Board } from '../lib/board.js';

test('boot through the image’s boot2', () => {
  const b = new Board({ boot: 'boot2' });
  assert.equal(b.machine.boot2CrcOk, true, 'boot2 checksum (CRC-32/MPEG-2) as the ROM checks it');
  b.waitUsb();
  assert.equal(b.machine.rp.core.VTOR, 0x10000100, 'boot2 set VTOR to the vector table');
  b.until(() => b.charger.limitWrites.length > 0, 2000, 'first 0x4100 write');
  assert.equal(b.read(1010)[0], 16000);
});
