/**
 * Sizes of text as UTF-8, measured without encoding it: sizing a key or a frame happens
 * on the hot paths (every member of a conversation commit, every frame sent), where
 * `TextEncoder.encode` would allocate a buffer only to read its length.
 */

/**
 * How many bytes `text` takes as UTF-8, exactly as `TextEncoder` writes it: a surrogate
 * pair is one 4-byte character, a lone surrogate becomes U+FFFD (3 bytes).
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if ((code & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // Two units, one character of four bytes.
      bytes += 2;
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/**
 * Whether `text` fits in `max` bytes of UTF-8; three bytes per UTF-16 unit is the worst
 * case, so short text is not even measured.
 */
export const fitsUtf8 = (text: string, max: number): boolean =>
  text.length * 3 <= max || utf8Length(text) <= max;
