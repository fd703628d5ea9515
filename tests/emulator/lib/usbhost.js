// A USB host for the firmware's composite device: enumerates it, reads the
// configuration, sets the configuration and, for every CDC-ACM function (IAD pairs),
// SET_LINE_CODING and SET_CONTROL_LINE_STATE (DTR | RTS) on its communication
// interface. OUT data is sent only when some is queued; IN endpoints are read unless
// the test pauses one (the device then NAKs: its buffer stays armed).
import { routeUsb } from './patches.js';

const DESC_DEVICE = 1;
const DESC_CONFIG = 2;
const DESC_STRING = 3;
const DESC_INTERFACE = 4;
const DESC_ENDPOINT = 5;
const CDC_COMM = 2;
const CDC_DATA = 10;
/** Host turnaround between transactions. */
const GAP_NS = 20_000;
/** A control request not answered within this long counts as STALLed. */
const CONTROL_TIMEOUT_NS = 5_000_000;

function setup(bmRequestType, bRequest, wValue, wIndex, wLength) {
  const s = new Uint8Array(8);
  const v = new DataView(s.buffer);
  s[0] = bmRequestType;
  s[1] = bRequest;
  v.setUint16(2, wValue, true);
  v.setUint16(4, wIndex, true);
  v.setUint16(6, wLength, true);
  return s;
}

/** One CDC-ACM function as the host sees it. */
export class CdcPort {
  constructor(host, index, comm, data, inEp, outEp) {
    Object.assign(this, { host, index, comm, data, inEp, outEp });
    /** Every byte received, in order. */
    this.received = [];
    /** Arrival times (ns) of each IN packet: [ns, length]. */
    this.packets = [];
    this.onData = null;
  }

  /** Queues `bytes` for the device (64-byte packets). */
  write(bytes) {
    const b = Uint8Array.from(bytes);
    for (let i = 0; i < b.length; i += 64) this.host.queueOut(this.outEp, b.subarray(i, i + 64));
  }

  /** Stops reading this port (the device's IN buffer stays armed: NAK). */
  pause() {
    this.host.paused.add(this.inEp);
  }

  /** Reads this port again. */
  resume() {
    this.host.paused.delete(this.inEp);
    this.host.router.resumeIn(this.inEp);
  }

  /** Takes (and clears) the received bytes. */
  take() {
    const r = this.received;
    this.received = [];
    return r;
  }
}

export class UsbHost {
  /** Attaches to `machine`'s USB controller; `usbOut` is patch 3. */
  constructor(machine, { usbOut = machine.patches.usbOut } = {}) {
    this.machine = machine;
    const rp = machine.rp;
    this.usb = rp.usbCtrl;
    this.clock = rp.clock;
    this.usbOut = usbOut;
    this.paused = new Set();
    this.outQueues = new Map();
    this.armed = new Set();
    this.requests = [];
    this.current = null;
    this.ports = [];
    this.configured = false;
    this.configuredAt = null;
    this.stalls = 0;
    this.outBytesDelivered = 0;
    this.router = routeUsb(rp, this, usbOut);
    this.usb.onUSBEnabled = () => this.usb.resetDevice();
    this.usb.onResetReceived = () => this.after(GAP_NS, () => this.enumerate());
    this.usb.onEndpointWrite = (ep, buf) => this.onIn(ep, buf);
    // Unpatched OUT path (rp2040js asks for data as soon as the buffer is armed).
    this.usb.onEndpointRead = (ep) => {
      const q = this.outQueues.get(ep);
      if (q?.length) {
        const p = q.shift();
        this.outBytesDelivered += p.length;
        this.usb.endpointReadDone(ep, p);
      }
    };
  }

  after(ns, fn) {
    this.clock.createAlarm(fn).schedule(ns);
  }

  reading(ep) {
    return ep === 0 || !this.paused.has(ep);
  }

  /** Patch 3: the device armed OUT buffer `ep`. */
  outArmed(ep) {
    this.armed.add(ep);
    this.kick(ep);
  }

  queueOut(ep, packet) {
    if (!this.outQueues.has(ep)) this.outQueues.set(ep, []);
    this.outQueues.get(ep).push(Uint8Array.from(packet));
    this.kick(ep);
  }

  kick(ep) {
    if (!this.usbOut || !this.armed.has(ep) || !this.outQueues.get(ep)?.length) return;
    this.armed.delete(ep);
    this.after(GAP_NS, () => {
      const p = this.outQueues.get(ep).shift();
      if (!p) {
        this.armed.add(ep);
        return;
      }
      if (this.router.deliverOut(ep, p)) this.outBytesDelivered += p.length;
      else if (ep !== 0) this.outQueues.get(ep).unshift(p);
    });
  }

  /**
   * Queues a control request; `done({ status, data })` runs when it ends (inside the
   * simulation: no promises, the run loop is synchronous).
   */
  control(setupPacket, dataOut, done) {
    this.requests.push({ setup: setupPacket, dataOut, done });
    if (!this.current && !this.nextScheduled) this.next();
  }

  next() {
    const req = this.requests.shift();
    this.current = req ?? null;
    if (!req) return;
    req.data = [];
    req.wLength = req.setup[6] | (req.setup[7] << 8);
    req.in = (req.setup[0] & 0x80) !== 0;
    req.timer = this.clock.createAlarm(() => this.finish('stall'));
    req.timer.schedule(CONTROL_TIMEOUT_NS);
    this.outQueues.set(0, []);
    this.usb.sendSetupPacket(req.setup);
    if (!req.in && req.dataOut) this.queueOut(0, req.dataOut);
  }

  finish(status) {
    const req = this.current;
    if (!req) return;
    req.timer.cancel();
    if (status === 'stall') this.stalls++;
    this.current = null;
    this.nextScheduled = true;
    this.after(GAP_NS, () => {
      this.nextScheduled = false;
      this.next();
    });
    req.done?.({ status, data: Uint8Array.from(req.data) });
  }

  onIn(ep, buf) {
    if (ep === 0) {
      const req = this.current;
      if (!req) return;
      if (req.in) {
        req.data.push(...buf);
        if (req.data.length >= req.wLength || buf.length < 64) {
          this.queueOut(0, new Uint8Array(0)); // status stage
          this.finish('ack');
        }
      } else if (buf.length === 0) {
        this.finish('ack');
      }
      return;
    }
    const port = this.ports.find((p) => p.inEp === ep);
    if (!port) return;
    port.packets.push([this.clock.nanos, buf.length]);
    for (const b of buf) port.received.push(b);
    port.onData?.(buf);
  }

  /** Runs `steps` one after the other; each gets the previous result and a `next`. */
  sequence(steps) {
    const run = (i, prev) => {
      if (i < steps.length) steps[i](prev, (r) => run(i + 1, r));
    };
    run(0, null);
  }

  enumerate() {
    if (this.enumerating) return;
    this.enumerating = true;
    const get = (type, index, length, lang = 0) => (_, next) =>
      this.control(setup(0x80, 6, (type << 8) | index, lang, length), null, next);
    const str = (field) => (_, next) => {
      const i = this.device[`i${field}`];
      if (!i) return next(null);
      get(DESC_STRING, i, 255, 0x0409)(null, (r) => {
        let s = '';
        for (let k = 2; k + 1 < r.data.length; k += 2) s += String.fromCharCode(r.data[k] | (r.data[k + 1] << 8));
        this.device[field.toLowerCase()] = s;
        next(s);
      });
    };
    const steps = [
      get(DESC_DEVICE, 0, 18),
      (r, next) => {
        const dv = new DataView(r.data.buffer);
        this.device = {
          vid: dv.getUint16(8, true),
          pid: dv.getUint16(10, true),
          iManufacturer: r.data[14],
          iProduct: r.data[15],
          iSerial: r.data[16],
        };
        this.control(setup(0x00, 5, 1, 0, 0), null, next); // SET_ADDRESS 1
      },
      get(DESC_CONFIG, 0, 9),
      (r, next) => get(DESC_CONFIG, 0, r.data[2] | (r.data[3] << 8))(null, next),
      (r, next) => {
        this.configDescriptor = r.data;
        next();
      },
      str('Product'),
      str('Serial'),
      str('Manufacturer'),
      (_, next) => this.control(setup(0x00, 9, 1, 0, 0), null, next), // SET_CONFIGURATION 1
      (_, next) => {
        this.ports = this.parsePorts(this.configDescriptor);
        const perPort = this.ports.flatMap((p) => [
          (_r, n) => this.control(setup(0x21, 0x20, 0, p.comm, 7), new Uint8Array([0x00, 0xc2, 0x01, 0x00, 0, 0, 8]), n),
          (_r, n) => this.control(setup(0x21, 0x22, 0x3, p.comm, 0), null, n), // DTR | RTS
        ]);
        this.sequence([...perPort, () => next()]);
      },
      () => {
        this.configured = true;
        this.configuredAt = this.clock.nanos;
      },
    ];
    this.sequence(steps);
  }

  /** The CDC-ACM functions: communication interface + data interface with bulk IN/OUT. */
  parsePorts(d) {
    const ports = [];
    let iface = null;
    let cls = null;
    let pending = null;
    for (let i = 0; i + 1 < d.length && d[i] >= 2; i += d[i]) {
      const type = d[i + 1];
      if (type === DESC_INTERFACE) {
        iface = d[i + 2];
        cls = d[i + 5];
        if (cls === CDC_COMM) pending = { comm: iface };
        if (cls === CDC_DATA && pending) pending.data = iface;
      } else if (type === DESC_ENDPOINT && cls === CDC_DATA && pending) {
        const addr = d[i + 2];
        if ((d[i + 3] & 3) === 2) {
          if (addr & 0x80) pending.in = addr & 0xf;
          else pending.out = addr & 0xf;
        }
        if (pending.in !== undefined && pending.out !== undefined) {
          ports.push(new CdcPort(this, ports.length, pending.comm, pending.data, pending.in, pending.out));
          pending = null;
        }
      }
    }
    return ports;
  }
}
