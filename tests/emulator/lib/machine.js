// One emulated Pico running the firmware ELF: loading, booting (by VTOR, or through
// the image's own boot2), the run loop on simulated time, the stand-in ROM, panic
// detection and the watchdog.
import { RP2040, ConsoleLogger, LogLevel } from 'rp2040js';
import { readElf, symbolize } from './elf.js';
import {
  buildRom,
  romLookup,
  ROM_FUNCTIONS,
  LOOKUP_BKPT,
  FLASH_TIMING,
} from './rom.js';
import { ALL_PATCHES, patchUart, plainUartTx, sevLogger, patchXipCtrl } from './patches.js';

export const FLASH_BASE = 0x10000000;
/** The boot ROM's vectored-boot magic in watchdog SCRATCH4 (its own reboots). */
export const ROM_VECTOR_MAGIC = 0xb007c0d3;
export const FLASH_SIZE = 2 * 1024 * 1024;
/** Where boot2 runs from when booting through it, and its stack top. */
export const BOOT2_RAM = 0x20041f00;
/** The flash's unique id as the emulated W25Q16 reports it (command 0x4B). */
export const UNIQUE_ID = [0xe6, 0x61, 0x41, 0x03, 0xe7, 0x45, 0x2d, 0x2f];
/** The expected USB serial number: the unique id in upper-case hex. */
export const SERIAL = UNIQUE_ID.map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();

export const DEFAULT_ELF =
  process.env.P1LB_FIRMWARE_ELF ??
  new URL('../../../firmware/target/thumbv6m-none-eabi/release/p1lb-firmware', import.meta.url)
    .pathname;

const elfCache = new Map();
function loadElf(path) {
  if (!elfCache.has(path)) elfCache.set(path, readElf(path));
  return elfCache.get(path);
}

/** CRC-32/MPEG-2, the checksum the boot ROM checks over boot2's first 252 bytes. */
export function crc32mpeg2(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b << 24;
    for (let i = 0; i < 8; i++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
  }
  return crc >>> 0;
}

export class Machine {
  /**
   * @param {object} o
   * @param {string} [o.elf] the firmware ELF
   * @param {Uint8Array} [o.flash] flash contents to start from (a reboot); else the ELF
   * @param {'vtor'|'boot2'} [o.boot]
   * @param {object} [o.patches] which of the five patches are on (default all)
   * @param {{eraseNsPerSector: number, programNsPerPage: number}} [o.flashTiming] how
   *   long the stand-in ROM's erase and program stall the core (default
   *   `FLASH_TIMING.typical`; `FLASH_TIMING.max`: the datasheet maxima)
   * @param {{reason: number, scratch: ArrayLike<number>}} [o.watchdog] the watchdog
   *   block's state after the previous life's reset (`watchdogState()`): the watchdog
   *   does not reset itself, so REASON and the scratch registers survive its reset
   *   (default: a power-on, all zero)
   */
  constructor(o = {}) {
    this.elfPath = o.elf ?? DEFAULT_ELF;
    this.elf = loadElf(this.elfPath);
    this.patches = { ...ALL_PATCHES, ...(o.patches ?? {}) };
    const rp = (this.rp = new RP2040());
    this.clock = rp.clock;
    this.log = [];
    const base = new ConsoleLogger(LogLevel.Error, false);
    const record = (level) => (name, msg) => {
      if (this.log.length < 1000) this.log.push(`${level} ${name}: ${msg}`);
    };
    rp.logger = sevLogger(rp, { info: record('info'), warn: record('warn'), error: record('error') }, this.patches.sev);
    void base;
    for (const uart of rp.uart) {
      if (this.patches.uart) patchUart(rp, uart);
      else plainUartTx(uart);
    }
    if (this.patches.xip) patchXipCtrl(rp);
    this.flashTiming = o.flashTiming ?? FLASH_TIMING.typical;
    this.rom = buildRom();
    if (this.patches.rom) rp.bootrom.set(new Uint32Array(this.rom.buffer));
    this.patchSsi();

    // Flash: the image, or the previous life's flash.
    if (o.flash) {
      rp.flash.set(o.flash.subarray(0, FLASH_SIZE));
    } else {
      for (const s of this.elf.segments) {
        if (s.paddr >= FLASH_BASE && s.paddr < FLASH_BASE + FLASH_SIZE) {
          rp.flash.set(s.data, s.paddr - FLASH_BASE);
        }
      }
    }

    this.halted = false;
    this.panic = null;
    this.watchdogFired = false;
    this.busyCycles = 0;
    this.romCalls = [];
    /** Called before each flash_range_program: (call index, addr, count) → 'cut' or undefined. */
    this.onFlashProgram = null;
    this.programCalls = 0;
    /** Flash erases and programs: { name: 'RE'|'RP', addr, count, startNs, endNs }. */
    this.flashOps = [];
    rp.onBreak = (imm) => this.onBreak(imm);
    const wd = rp.peripherals[0x40058];
    this.watchdog = wd;
    if (o.watchdog) {
      wd.reason = o.watchdog.reason;
      wd.scratchData.set(o.watchdog.scratch);
    }
    /** The core no longer executes (stuck); time and the peripherals run on. */
    this.stalled = false;
    wd.onWatchdogTrigger = () => {
      this.watchdogFired = true;
      this.halted = true;
      // The chip resets here (a new Machine is the next life). Stop the timer: rp2040js
      // 1.4.1 re-arms its alarm at the same instant after it fired (the counter reads
      // 2^32 at zero in decrement mode) and the clock would loop forever.
      wd.alarm.enable = false;
      wd.timer.enable = false;
      wd.enable = false;
    };

    const core = rp.core;
    if ((o.boot ?? 'vtor') === 'boot2') {
      // As the boot ROM does: boot2 (the first 256 bytes of flash) copied to the top of
      // SRAM and entered there; it sets up XIP, sets VTOR and jumps to the reset handler.
      const boot2 = rp.flash.subarray(0, 256);
      this.boot2CrcOk = crc32mpeg2(boot2.subarray(0, 252)) === new DataView(boot2.buffer, boot2.byteOffset + 252, 4).getUint32(0, true);
      rp.sram.set(boot2, BOOT2_RAM - 0x20000000);
      core.SP = BOOT2_RAM;
      core.PC = BOOT2_RAM;
      core.LR = 0;
    } else {
      core.VTOR = FLASH_BASE + 0x100;
      core.reset();
    }
  }

  /** Simulated nanoseconds since power-on. */
  get nanos() {
    return this.clock.nanos;
  }

  /** Simulated milliseconds since power-on. */
  get ms() {
    return this.clock.nanos / 1e6;
  }

  /** Cycles of clk_sys since power-on (simulated time × clk_sys). */
  get totalCycles() {
    return (this.clock.nanos * this.rp.clkSys) / 1e9;
  }

  /** The SSI answers the unique-id command (0x4B) with UNIQUE_ID after 4 dummy bytes. */
  patchSsi() {
    const ssi = this.rp.peripherals[0x18000];
    const queue = [];
    const origRead = ssi.readUint32.bind(ssi);
    const origWrite = ssi.writeUint32.bind(ssi);
    ssi.readUint32 = (offset) => {
      if (offset === 0x60 && queue.length) return queue.shift();
      return origRead(offset);
    };
    ssi.writeUint32 = (offset, value) => {
      if (offset === 0x60 && (value & 0xff) === 0x4b) {
        queue.length = 0;
        queue.push(0, 0, 0, 0, ...UNIQUE_ID);
      }
      origWrite(offset, value);
    };
  }

  onBreak(imm) {
    const { core } = this.rp;
    const pc = (core.PC - 2) >>> 0;
    if (this.patches.rom && pc < 0x1000) {
      this.romCall(imm);
      return;
    }
    this.panic = { pc, where: symbolize(this.elf.symbols, pc), lr: core.LR, at: this.nanos };
    this.halted = true;
  }

  /** Runs ROM function `n` (or rom_table_lookup) on the registers, as the ROM would. */
  romCall(n) {
    const rp = this.rp;
    const r = rp.core.registers;
    if (n === LOOKUP_BKPT) {
      r[0] = romLookup(this.rom, r[0] & 0xffff, r[1] & 0xffff);
      if (r[0] === 0) this.log.push(`error ROM: no function ${String.fromCharCode(r[1] & 0xff, (r[1] >> 8) & 0xff)}`);
      return;
    }
    const name = ROM_FUNCTIONS[n];
    this.romCalls.push(name);
    if (this.romCalls.length > 10000) this.romCalls.splice(0, 5000);
    const mem8 = (a) => rp.readUint8(a >>> 0);
    switch (name) {
      case 'RE': {
        const addr = r[0] & 0xffffff;
        const count = r[1];
        rp.flash.fill(0xff, addr, Math.min(addr + count, FLASH_SIZE));
        const startNs = this.nanos;
        this.spend(this.flashTiming.eraseNsPerSector * Math.ceil(count / 4096));
        this.flashOps.push({ name, addr, count, startNs, endNs: this.nanos });
        break;
      }
      case 'RP': {
        const addr = r[0] & 0xffffff;
        const data = r[1] >>> 0;
        const count = r[2];
        const index = this.programCalls++;
        const cut = this.onFlashProgram?.(index, addr, count) === 'cut';
        // A power cut lands half-way through the page programming.
        const n = cut ? count >> 1 : count;
        for (let i = 0; i < n; i++) rp.flash[addr + i] &= mem8(data + i);
        if (cut) {
          this.powerCut = { index, addr, count };
          this.halted = true;
        }
        const startNs = this.nanos;
        this.spend(this.flashTiming.programNsPerPage * Math.ceil(count / 256));
        this.flashOps.push({ name, addr, count, startNs, endNs: this.nanos });
        break;
      }
      case 'MC':
      case 'C4': {
        const [dst, src, len] = [r[0] >>> 0, r[1] >>> 0, r[2]];
        for (let i = 0; i < len; i++) rp.writeUint8(dst + i, mem8(src + i));
        break;
      }
      case 'MS':
      case 'S4': {
        const [dst, c, len] = [r[0] >>> 0, r[1] & 0xff, r[2]];
        for (let i = 0; i < len; i++) rp.writeUint8(dst + i, c);
        break;
      }
      case 'P3': {
        let v = r[0] >>> 0;
        let c = 0;
        while (v) {
          c += v & 1;
          v >>>= 1;
        }
        r[0] = c;
        break;
      }
      case 'R3': {
        let v = r[0] >>> 0;
        let o = 0;
        for (let i = 0; i < 32; i++) {
          o = (o << 1) | (v & 1);
          v >>>= 1;
        }
        r[0] = o >>> 0;
        break;
      }
      case 'L3':
        r[0] = Math.clz32(r[0]);
        break;
      case 'T3':
        r[0] = r[0] === 0 ? 32 : 31 - Math.clz32(r[0] & -r[0]);
        break;
      case 'UB':
        this.usbBoot = true;
        this.halted = true;
        break;
      default: // IF, EX, FC, CX: flash is plain memory here
        break;
    }
  }

  /** The core is busy in the ROM for `ns` (flash erase/program). */
  spend(ns) {
    this.busyCycles += (ns * this.rp.clkSys) / 1e9;
    this.clock.tick(ns);
  }

  /**
   * Runs until simulated time `targetNs`, or until halted. While the core sleeps in
   * WFE/WFI the clock jumps to the next alarm.
   */
  runTo(targetNs) {
    const { core } = this.rp;
    const clock = this.clock;
    let cycleNs = 1e9 / this.rp.clkSys;
    let n = 0;
    while (!this.halted && clock.nanosCounter < targetNs) {
      if (core.waiting || this.stalled) {
        const next = clock.nextAlarm ? clock.nextAlarm.nanos : Infinity;
        const to = Math.min(next, targetNs);
        clock.tick(Math.max(0, to - clock.nanosCounter));
        continue;
      }
      const c = core.executeInstruction();
      this.busyCycles += c;
      clock.tick(c * cycleNs);
      if ((++n & 0xffff) === 0) cycleNs = 1e9 / this.rp.clkSys;
    }
    return !this.halted;
  }

  /** Runs for `ms` of simulated time. */
  run(ms) {
    return this.runTo(this.clock.nanos + ms * 1e6);
  }

  /**
   * Runs until `pred()` holds (checked every `stepMs`), at most `timeoutMs`; returns
   * whether it held.
   */
  runUntil(pred, timeoutMs, stepMs = 0.1) {
    const end = this.clock.nanos + timeoutMs * 1e6;
    while (!pred()) {
      if (this.halted || this.clock.nanos >= end) return false;
      this.runTo(Math.min(end, this.clock.nanos + stepMs * 1e6));
    }
    return true;
  }

  /** Throws when the firmware panicked or the watchdog fired. */
  assertAlive() {
    if (this.panic) {
      throw new Error(`firmware panic (bkpt) at ${this.panic.where} after ${this.panic.at / 1e6} ms`);
    }
    if (this.watchdogFired) throw new Error(`watchdog reset at ${this.ms} ms`);
  }

  /**
   * Calls `cb(nanos)` whenever the firmware calls (BL/BLX) a function whose symbol
   * contains `part` (for timing breakdowns; functions inlined by LTO are not seen).
   */
  onCall(part, cb) {
    const addrs = new Set([...this.elf.symbols].filter(([n]) => n.includes(part)).map(([, a]) => a));
    if (!addrs.size) throw new Error(`no function symbol contains ${part}`);
    this.callHooks = this.callHooks ?? [];
    this.callHooks.push({ addrs, cb });
    this.rp.core.blTaken = (core) => {
      for (const h of this.callHooks) if (h.addrs.has(core.PC)) h.cb(this.clock.nanos);
    };
  }

  /**
   * The core hangs from now on (as in a fault handler's endless loop after a panic
   * without a debugger): nothing executes, time and the peripherals run on, so the
   * watchdog fires once it is no longer fed. Clears a halt by a panic's `bkpt`.
   */
  stall() {
    this.stalled = true;
    if (this.halted && this.panic && !this.watchdogFired) this.halted = false;
  }

  /**
   * What the RP2040 boot ROM's `watchdog_reboot(pc, sp, delay_ms)` does (pico-bootrom
   * usb_device_tiny/runtime.c; used after a UF2 copy with pc = 0 for a flash image,
   * and with a vector by `reset_usb_boot` and for RAM images): disable the watchdog,
   * SCRATCH4 = 0xb007c0d3 with SCRATCH5–7 = the vector when pc ≠ 0, else SCRATCH4 = 0;
   * load `delay_ms`, enable; the core waits (the ROM's `while (true) __wfi();`) until
   * the watchdog's timer resets the chip (REASON = timer).
   */
  bootRomReboot({ pc = 0, sp = 0x20042000, delayMs = 10 } = {}) {
    const wd = this.watchdog;
    const CTRL = 0x00;
    const LOAD = 0x04;
    const SCRATCH = (n) => 0x0c + 4 * n;
    const ENABLE = 1 << 30;
    wd.writeUint32(CTRL, wd.readUint32(CTRL) & ~(ENABLE | (7 << 24)));
    if (pc) {
      const entry = (pc | 1) >>> 0;
      wd.writeUint32(SCRATCH(4), ROM_VECTOR_MAGIC);
      wd.writeUint32(SCRATCH(5), (entry ^ -ROM_VECTOR_MAGIC) >>> 0);
      wd.writeUint32(SCRATCH(6), sp);
      wd.writeUint32(SCRATCH(7), entry);
    } else {
      wd.writeUint32(SCRATCH(4), 0);
    }
    // The ROM ticks the watchdog at 1 MHz (RP2040-E1: it counts down twice a tick).
    wd.writeUint32(LOAD, delayMs * 1000);
    wd.writeUint32(CTRL, wd.readUint32(CTRL) | ENABLE);
    this.stall();
  }

  /** The watchdog block's state to carry over a watchdog reset (`o.watchdog`). */
  watchdogState() {
    return { reason: this.watchdog.reason, scratch: Array.from(this.watchdog.scratchData) };
  }

  /** A copy of the flash (for a reboot). */
  flashCopy() {
    return this.rp.flash.slice(0, FLASH_SIZE);
  }

  /** GPIO pin `n`. */
  gpio(n) {
    return this.rp.gpio[n];
  }
}
