/** UTF-8 sizes measured without encoding: the same count as `TextEncoder`, every case. */

import assert from "node:assert/strict";
import { fitsUtf8, utf8Length } from "../src/utf8.ts";

const encoder = new TextEncoder();
const encoded = (text: string) => encoder.encode(text).byteLength;

Deno.test("utf8Length counts what TextEncoder writes, surrogates included", () => {
  const cases = [
    "",
    "relais",
    "conv-7b1d0c3e-2f4a-4c55-9a61-0d6f1f3b2a01",
    "é", // 2 bytes
    "€", // 3 bytes
    "😀", // a surrogate pair: 4 bytes
    "Élève 😀 n°1 — 日本",
    "\ud800", // lone high surrogate: U+FFFD, 3 bytes
    "a\udc00b", // lone low surrogate
    "\udc00\ud800", // a pair in the wrong order: two lone ones
    "x\ud83d", // a high surrogate at the very end
    "\u007f\u0080\u07ff\u0800\uffff",
  ];
  for (const text of cases) assert.equal(utf8Length(text), encoded(text), JSON.stringify(text));
  // Random UTF-16, lone and paired surrogates among them.
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 0x10000;
  for (let k = 0; k < 2000; k++) {
    const text = String.fromCharCode(...Array.from({ length: 1 + (k % 40) }, next));
    assert.equal(utf8Length(text), encoded(text), `random case ${k}`);
  }
});

Deno.test("fitsUtf8 answers by the encoded size at the edge", () => {
  assert.equal(fitsUtf8("a".repeat(10), 10), true);
  assert.equal(fitsUtf8("a".repeat(11), 10), false);
  assert.equal(fitsUtf8("é".repeat(5), 10), true);
  assert.equal(fitsUtf8("é".repeat(6), 10), false);
  assert.equal(fitsUtf8("😀😀", 8), true);
  assert.equal(fitsUtf8("😀😀", 7), false);
});
