// The five changes rp2040js 1.4.1 needs to run embassy firmware (see
// /work/shared/design/emulator.md). Each can be switched off so that a guard
// scenario shows the failure it prevents. They touch rp2040js internals: the package
// is pinned to exactly 1.4.1.
import { BasePeripheral } from 'rp2040js';

/** All patches on. */
export const ALL_PATCHES = Object.freeze({ uart: true, sev: true, usbOut: true, xip: true, rom: true });

const UARTDR = 0x00;
const UARTFR = 0x18;
const UARTLCR_H = 0x2c;
const UARTIFLS = 0x34;
const UARTICR = 0x44;
const UARTDMACR = 0x48;
const TXINTR = 1 << 5;
const RXINTR = 1 << 4;
const RTINTR = 1 << 6;
const FR_BUSY = 1 << 3;
const FR_RXFE = 1 << 4;
const FR_TXFF = 1 << 5;
const FR_RXFF = 1 << 6;
const FR_TXFE = 1 << 7;
const TX_FIFO = 32;

/**
 * Patch 1, UART: UARTDMACR and UARTIFLS become plain storage (they read 0xffffffff,
 * so embassy's buffered handler believes RX DMA is on and never services the FIFO),
 * and TXRIS is no longer re-raised on every interrupt check (the IRQ never deasserts).
 * The transmitter is modelled at the line rate: a 32-entry FIFO and a shift register,
 * BUSY while either holds data, TXFF when full, TXRIS once when the FIFO level falls to
 * the IFLS threshold, cleared by UARTICR. `onByte` gets each byte when its stop bit has
 * left the line; `onTxWrite(byte)` when the firmware writes it to UARTDR.
 * The receiver as the PL011's: RXRIS when the RX FIFO reaches the IFLS level, RTRIS
 * when it holds data and nothing arrived for 32 bit periods (rp2040js raises RXRIS on
 * every byte, which overstates the cost per byte).
 */
export function patchUart(rp, uart) {
  const clock = rp.clock;
  const state = { dmacr: 0, ifls: 0x12, fifo: [], shifting: false, rxOverruns: 0 };
  uart.patchState = state;
  uart.checkInterrupts = function () {
    rp.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
  };
  const charNanos = () => {
    const lcr = uart.lineCtrlRegister;
    const bits = 1 + uart.wordLength + (lcr & 2 ? 1 : 0) + (lcr & 8 ? 2 : 1);
    return (bits * 1e9) / (uart.baudRate || 115200);
  };
  const threshold = () => [4, 8, 16, 24, 28][state.ifls & 7] ?? 16;
  const fifoOn = () => (uart.lineCtrlRegister & (1 << 4)) !== 0;
  const rxThreshold = () => (fifoOn() ? ([4, 8, 16, 24, 28][(state.ifls >> 3) & 7] ?? 16) : 1);
  const rxTimeout = clock.createAlarm(() => {
    if (!uart.rxFIFO.empty) {
      uart.interruptStatus |= RTINTR;
      uart.checkInterrupts();
    }
  });
  uart.feedByte = (value) => {
    // A full FIFO drops the byte (the PL011's overrun; counted, the OE flag is not set).
    if (uart.rxFIFO.full) state.rxOverruns++;
    uart.rxFIFO.push(value);
    if (uart.rxFIFO.itemCount >= rxThreshold()) uart.interruptStatus |= RXINTR;
    rxTimeout.schedule((32 * 1e9) / (uart.baudRate || 115200));
    uart.checkInterrupts();
  };
  const alarm = clock.createAlarm(() => {
    const byte = state.fifo.shift();
    state.shifting = state.fifo.length > 0;
    if (state.fifo.length === threshold()) {
      uart.interruptStatus |= TXINTR;
      uart.checkInterrupts();
    }
    uart.onByte?.(byte);
    if (state.shifting) alarm.schedule(charNanos());
  });
  const origRead = uart.readUint32.bind(uart);
  const origWrite = uart.writeUint32.bind(uart);
  uart.readUint32 = (offset) => {
    switch (offset) {
      case UARTDR: {
        const value = uart.rxFIFO.pull();
        if (uart.rxFIFO.itemCount < rxThreshold()) uart.interruptStatus &= ~RXINTR;
        if (uart.rxFIFO.empty) uart.interruptStatus &= ~RTINTR;
        uart.checkInterrupts();
        return value;
      }
      case UARTFR:
        return (
          (uart.rxFIFO.full ? FR_RXFF : 0) |
          (uart.rxFIFO.empty ? FR_RXFE : 0) |
          (state.fifo.length === 0 ? FR_TXFE : 0) |
          (state.fifo.length >= TX_FIFO ? FR_TXFF : 0) |
          (state.fifo.length > 0 ? FR_BUSY : 0)
        );
      case UARTIFLS:
        return state.ifls;
      case UARTDMACR:
        return state.dmacr;
      default:
        return origRead(offset);
    }
  };
  uart.writeUint32 = (offset, value) => {
    switch (offset) {
      case UARTDR: {
        const byte = value & 0xff;
        uart.onTxWrite?.(byte);
        if (state.fifo.length < TX_FIFO) state.fifo.push(byte);
        if (!state.shifting) {
          state.shifting = true;
          alarm.schedule(charNanos());
        }
        break;
      }
      case UARTIFLS:
        state.ifls = value & 0x3f;
        break;
      case UARTDMACR:
        state.dmacr = value & 7;
        break;
      case UARTICR:
      case UARTLCR_H:
      default:
        origWrite(offset, value);
    }
  };
}

/**
 * Unpatched UART TX: bytes are reported when written (`onTxWrite` then `onByte`), as
 * rp2040js does.
 */
export function plainUartTx(uart) {
  const origWrite = uart.writeUint32.bind(uart);
  uart.writeUint32 = (offset, value) => {
    if (offset === UARTDR) uart.onTxWrite?.(value & 0xff);
    origWrite(offset, value);
  };
}

/** Patch 2, SEV: rp2040js only logs 'SEV'; set the core's event register instead. */
export function sevLogger(rp, base, enabled) {
  return {
    debug() {},
    info(name, msg) {
      if (msg === 'SEV') {
        if (enabled) rp.core.eventRegistered = true;
        return;
      }
      base.info(name, msg);
    },
    warn: (name, msg) => base.warn(name, msg),
    error: (name, msg) => base.error(name, msg),
  };
}

/**
 * Patch 4, XIP_CTRL (0x14000000): unmapped in rp2040js (reads 0xffffffff, so the flash
 * driver spins on STREAM_CTR forever). A stub: STAT reads FLUSH_READY | FIFO_EMPTY,
 * everything else reads 0, writes are ignored.
 */
export function patchXipCtrl(rp) {
  class XipCtrl extends BasePeripheral {
    readUint32(offset) {
      return offset === 0x08 ? 0x3 : 0;
    }
    writeUint32() {}
  }
  rp.peripherals[(0x14000000 >>> 14) << 2] = new XipCtrl(rp, 'XIP_CTRL');
}

/** Offsets of the USB buffer-control words in the DPRAM. */
const EP0_IN_BUFFER_CONTROL = 0x80;
const EP15_OUT_BUFFER_CONTROL = 0xfc;
/** Buffer-control bits. */
export const BUF_AVAILABLE = 1 << 10;
export const BUF_FULL = 1 << 15;
export const BUF_LEN = 0x3ff;

/**
 * USB device side: routes the firmware's buffer arming to `host`.
 * - Patch 3 (`usbOut`): an OUT buffer keeps AVAILABLE set until the host delivers a
 *   packet (`host.outArmed(ep, len)`; the host calls `deliverOut`). Unpatched, rp2040js
 *   clears AVAILABLE at once and embassy "receives" the stale buffer.
 * - Not a patch but the host's flow control: an IN buffer on an endpoint the host is
 *   not reading stays AVAILABLE (NAK) until the host reads again (`resumeIn`).
 */
export function routeUsb(rp, host, usbOut) {
  const usb = rp.usbCtrl;
  const orig = usb.DPRAMUpdated.bind(usb);
  const deferred = new Map();
  usb.DPRAMUpdated = (offset, value) => {
    if (
      usb.hostMode ||
      !(value & BUF_AVAILABLE) ||
      offset < EP0_IN_BUFFER_CONTROL ||
      offset > EP15_OUT_BUFFER_CONTROL
    ) {
      return orig(offset, value);
    }
    const ep = (offset - EP0_IN_BUFFER_CONTROL) >> 3;
    const out = (offset & 4) !== 0;
    if (!out && !host.reading(ep)) {
      deferred.set(ep, offset);
      return undefined;
    }
    if (out && usbOut) {
      host.outArmed(ep, value & BUF_LEN);
      return undefined;
    }
    return orig(offset, value);
  };
  return {
    /** The host takes the IN buffers it held back on `ep`. */
    resumeIn(ep) {
      const offset = deferred.get(ep);
      if (offset === undefined) return;
      deferred.delete(ep);
      const value = rp.usbDPRAMView.getUint32(offset, true);
      if (value & BUF_AVAILABLE) orig(offset, value);
    },
    /** Patch 3: a packet from the host into the armed OUT buffer of `ep`. */
    deliverOut(ep, data) {
      const ctrl = EP0_IN_BUFFER_CONTROL + ep * 8 + 4;
      let value = rp.usbDPRAMView.getUint32(ctrl, true);
      if (!(value & BUF_AVAILABLE)) return false;
      const len = Math.min(data.length, value & BUF_LEN);
      rp.usbDPRAM.set(data.subarray(0, len), usb.getEndpointBufferOffset(ep, true));
      value = (value & ~(BUF_AVAILABLE | BUF_LEN)) | BUF_FULL | len;
      rp.usbDPRAMView.setUint32(ctrl, value, true);
      usb.indicateBufferReady(ep, true);
      return true;
    },
  };
}
