// A minimal ELF32 little-endian reader: the PT_LOAD segments (to load into flash/RAM)
// and the symbol table (to name addresses in reports).
import { readFileSync } from 'node:fs';

/** Parses `path`; returns { entry, segments: [{paddr, vaddr, data}], symbols: Map }. */
export function readElf(path) {
  const buf = readFileSync(path);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0, false) !== 0x7f454c46 || buf[4] !== 1 || buf[5] !== 1) {
    throw new Error(`${path}: not an ELF32 little-endian file`);
  }
  const entry = v.getUint32(24, true);
  const phoff = v.getUint32(28, true);
  const shoff = v.getUint32(32, true);
  const phentsize = v.getUint16(42, true);
  const phnum = v.getUint16(44, true);
  const shentsize = v.getUint16(46, true);
  const shnum = v.getUint16(48, true);
  const segments = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (v.getUint32(o, true) !== 1) continue; // PT_LOAD
    const offset = v.getUint32(o + 4, true);
    const vaddr = v.getUint32(o + 8, true);
    const paddr = v.getUint32(o + 12, true);
    const filesz = v.getUint32(o + 16, true);
    if (filesz === 0) continue;
    segments.push({ paddr, vaddr, data: buf.subarray(offset, offset + filesz) });
  }
  const symbols = new Map();
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      type: v.getUint32(o + 4, true),
      offset: v.getUint32(o + 16, true),
      size: v.getUint32(o + 20, true),
      link: v.getUint32(o + 24, true),
      entsize: v.getUint32(o + 36, true),
    });
  }
  for (const s of sections) {
    if (s.type !== 2) continue; // SHT_SYMTAB
    const strtab = sections[s.link];
    for (let o = s.offset; o + 16 <= s.offset + s.size; o += 16) {
      const nameOff = v.getUint32(o, true);
      const value = v.getUint32(o + 4, true);
      const info = buf[o + 12];
      if ((info & 0xf) !== 2) continue; // STT_FUNC
      let end = strtab.offset + nameOff;
      while (buf[end] !== 0) end++;
      const name = buf.toString('latin1', strtab.offset + nameOff, end);
      symbols.set(name, value & ~1);
    }
  }
  return { entry, segments, symbols };
}

/** The name of the function symbol at or below `addr` (for panic reports). */
export function symbolize(symbols, addr) {
  let best = null;
  let bestAddr = -1;
  for (const [name, a] of symbols) {
    if (a <= addr && a > bestAddr) {
      best = name;
      bestAddr = a;
    }
  }
  return best ? `${best}+0x${(addr - bestAddr).toString(16)}` : `0x${addr.toString(16)}`;
}
