/**
 * A WebSocket spoken by hand over a TCP connection, for tests that need a client which
 * stops reading (no WebSocket API lets a client leave bytes unread in the kernel).
 */

const encoder = new TextEncoder();

/** A client text frame, masked as RFC 6455 requires of clients. */
export function clientTextFrame(text: string): Uint8Array {
  const data = encoder.encode(text);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const header = data.length < 126
    ? [0x81, 0x80 | data.length]
    : [0x81, 0x80 | 126, data.length >> 8, data.length & 0xff];
  const out = new Uint8Array(header.length + 4 + data.length);
  out.set(header, 0);
  out.set(mask, header.length);
  for (let i = 0; i < data.length; i++) out[header.length + 4 + i] = data[i] ^ mask[i % 4];
  return out;
}

/** Server frames (unmasked) parsed as bytes stream in: text payloads and the close code. */
export function frameReader() {
  let buffer = new Uint8Array(0);
  return {
    /** Adds bytes; returns the complete frames they finish. */
    push(bytes: Uint8Array): { text?: string; close?: number }[] {
      const next = new Uint8Array(buffer.length + bytes.length);
      next.set(buffer);
      next.set(bytes, buffer.length);
      buffer = next;
      const out: { text?: string; close?: number }[] = [];
      while (buffer.length >= 2) {
        const opcode = buffer[0] & 0x0f;
        let length = buffer[1] & 0x7f;
        let header = 2;
        if (length === 126) {
          if (buffer.length < 4) break;
          length = (buffer[2] << 8) | buffer[3];
          header = 4;
        } else if (length === 127) {
          if (buffer.length < 10) break;
          length = Number(new DataView(buffer.buffer, buffer.byteOffset + 2, 8).getBigUint64(0));
          header = 10;
        }
        if (buffer.length < header + length) break;
        const payload = buffer.subarray(header, header + length);
        if (opcode === 0x1) out.push({ text: new TextDecoder().decode(payload) });
        if (opcode === 0x8) out.push({ close: (payload[0] << 8) | payload[1] });
        buffer = buffer.slice(header + length);
      }
      return out;
    },
  };
}
