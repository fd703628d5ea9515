// A stand-in for the RP2040 boot ROM, generated here (Raspberry Pi's ROM image is not
// used). It has the documented interface: magic 'Mu' 0x01 at 0x10, the version byte at
// 0x13, halfword pointers to the function table (0x14), the data table (0x16) and
// rom_table_lookup (0x18). Every function is a `BKPT #n; BX LR` trampoline; the harness
// runs function n in JavaScript on the break hook. Flash is plain memory in the
// emulator: erase fills 0xFF, program ANDs (like NOR flash), the XIP and cache
// functions do nothing.

const FUNC_TABLE = 0x100;
const DATA_TABLE = 0x1c0;
const LOOKUP = 0x1d0;
const TRAMPOLINES = 0x200;
/** BKPT immediate of rom_table_lookup (function n uses BKPT #n, n < 0x40). */
export const LOOKUP_BKPT = 0x7f;

/** The functions of the stand-in ROM, by their two-letter codes. */
export const ROM_FUNCTIONS = [
  'IF', // connect_internal_flash
  'EX', // flash_exit_xip
  'RE', // flash_range_erase
  'RP', // flash_range_program
  'FC', // flash_flush_cache
  'CX', // flash_enter_cmd_xip
  'MC', // memcpy
  'C4', // memcpy44
  'MS', // memset
  'S4', // memset4
  'P3', // popcount32
  'R3', // reverse32
  'L3', // clz32
  'T3', // ctz32
  'UB', // reset_to_usb_boot
];

const code = (s) => s.charCodeAt(0) | (s.charCodeAt(1) << 8);

/** The 4 KiB ROM image as bytes. */
export function buildRom() {
  const rom = new Uint8Array(4096);
  const v = new DataView(rom.buffer);
  rom.set([0x4d, 0x75, 0x01, 0x02], 0x10); // 'M' 'u' 0x01, version 2
  v.setUint16(0x14, FUNC_TABLE, true);
  v.setUint16(0x16, DATA_TABLE, true);
  v.setUint16(0x18, LOOKUP | 1, true);
  ROM_FUNCTIONS.forEach((name, n) => {
    const at = TRAMPOLINES + 4 * n;
    v.setUint16(at, 0xbe00 | n, true); // BKPT #n
    v.setUint16(at + 2, 0x4770, true); // BX LR
    v.setUint16(FUNC_TABLE + 4 * n, code(name), true);
    v.setUint16(FUNC_TABLE + 4 * n + 2, at | 1, true);
  });
  v.setUint32(FUNC_TABLE + 4 * ROM_FUNCTIONS.length, 0, true);
  v.setUint32(DATA_TABLE, 0, true);
  v.setUint16(LOOKUP, 0xbe00 | LOOKUP_BKPT, true);
  v.setUint16(LOOKUP + 2, 0x4770, true);
  return rom;
}

/** Looks `tag` up in the table at `table` of the ROM image (0 when absent). */
export function romLookup(rom, table, tag) {
  const v = new DataView(rom.buffer, rom.byteOffset);
  for (let at = table; at + 4 <= rom.length; at += 4) {
    const c = v.getUint16(at, true);
    if (c === 0) return 0;
    if (c === tag) return v.getUint16(at + 2, true);
  }
  return 0;
}

/** Modelled durations of the flash operations (typical W25Q16 datasheet values). */
export const ERASE_NS_PER_SECTOR = 45e6;
export const PROGRAM_NS_PER_PAGE = 0.7e6;

/**
 * Flash timings for `new Machine({ flashTiming })`: the typical values above, and the
 * W25Q16JV datasheet maxima (tSE 400 ms per 4 KiB sector, tPP 3 ms per page).
 */
export const FLASH_TIMING = Object.freeze({
  typical: Object.freeze({ eraseNsPerSector: ERASE_NS_PER_SECTOR, programNsPerPage: PROGRAM_NS_PER_PAGE }),
  max: Object.freeze({ eraseNsPerSector: 400e6, programNsPerPage: 3e6 }),
});
