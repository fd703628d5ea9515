// Modbus RTU framing for the tests: CRC, requests, replies.

/** CRC-16/MODBUS of `bytes`. */
export function crc16(bytes) {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** `pdu` with unit and CRC (low byte first). */
export function frame(unit, pdu) {
  const body = [unit, ...pdu];
  const c = crc16(body);
  return Uint8Array.from([...body, c & 0xff, c >> 8]);
}

/** Whether `f` ends in a correct CRC. */
export function crcOk(f) {
  if (f.length < 4) return false;
  const c = crc16(f.subarray(0, f.length - 2));
  return f[f.length - 2] === (c & 0xff) && f[f.length - 1] === c >> 8;
}

const be16 = (v) => [(v >> 8) & 0xff, v & 0xff];

/** FC 03 request. */
export const readHolding = (unit, addr, count) => frame(unit, [3, ...be16(addr), ...be16(count)]);
/** FC 06 request. */
export const writeSingle = (unit, addr, value) => frame(unit, [6, ...be16(addr), ...be16(value)]);
/** FC 16 request. */
export const writeMultiple = (unit, addr, values) =>
  frame(unit, [16, ...be16(addr), ...be16(values.length), values.length * 2, ...values.flatMap(be16)]);

/**
 * The length of the request at the start of `b` (server side), or 0 when more bytes
 * are needed, -1 when the function is unknown.
 */
export function requestLength(b) {
  if (b.length < 2) return 0;
  switch (b[1]) {
    case 3:
    case 4:
    case 6:
      return 8;
    case 16:
      return b.length < 7 ? 0 : 9 + b[6];
    default:
      return -1;
  }
}

/** The length of the reply at the start of `b` (client side), as `requestLength`. */
export function replyLength(b) {
  if (b.length < 2) return 0;
  if (b[1] & 0x80) return 5;
  switch (b[1]) {
    case 3:
    case 4:
      return b.length < 3 ? 0 : 5 + b[2];
    case 6:
    case 16:
      return 8;
    default:
      return -1;
  }
}

/** Parses a reply: { unit, fc, exception?, values? }. */
export function parseReply(f) {
  const r = { unit: f[0], fc: f[1] & 0x7f, crcOk: crcOk(f) };
  if (f[1] & 0x80) r.exception = f[2];
  else if (f[1] === 3 || f[1] === 4) {
    r.values = [];
    for (let i = 0; i < f[2]; i += 2) r.values.push((f[3 + i] << 8) | f[4 + i]);
  }
  return r;
}
