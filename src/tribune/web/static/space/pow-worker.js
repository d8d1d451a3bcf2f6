// Attack mode's proof of work, off the page's thread: find n such that
// SHA-256(prefix + rand + ":" + n) starts with `bits` zero bits (the contract is in
// src/tribune/admission/pow.py). A module worker: pow.js starts it, posts
// { challenge, maxMs }, and gets back { pow, hashes, ms } (pow null when the challenge was
// not one we can solve, or time ran out: the caller asks for a new one).
//
// SHA-256 is @noble/hashes (npm; make copies it into static/vendor/, never committed),
// kept fast by hashing the fixed part once and, per try, only the last block on a copy of
// that midstate, with the counter's digits kept in place: no allocation, no string per try.
// Hashes per second in a Worker, headless Chromium 156, the 2-core development machine
// (AMD EPYC), a prefix as long as the origin's, 10^6 tries a run, two runs (2026-11-22):
//   crypto.subtle.digest, batches of 256 / 1,024 / 8,192 promises   181k / 163-173k / 151-169k
//   @noble/hashes sha256(message) per try                           186-191k
//   @noble/hashes midstate .clone() per try                         231-241k
//   @noble/hashes midstate _cloneInto + digestInto, String(n)       830-894k
//   the same, the digits counted in place (this file)               902-915k
//   hash-wasm (WebAssembly), midstate save/load, digits in place    1,181-1,194k
// crypto.subtle is async per call (a promise and a hop to another thread per hash): 5x
// slower however it is batched. hash-wasm is 1.3x faster but is WebAssembly, which a
// Content-Security-Policy must allow ('wasm-unsafe-eval'); @noble/hashes is plain audited
// JavaScript and already far inside the target: at 18 bits (median ln 2 x 2^18 = 182,000
// tries) ~0.2 s here, whereas crypto.subtle would take ~1 s. bench/pow_browser.py measures it.
import { sha256 } from "/static/vendor/noble-hashes/sha2.js";

const ALGORITHM = "sha256-leading-zero-bits";
const MAX_BITS = 40; // the origin asks for at most 32; more would never finish
const CHECK_EVERY = 1 << 14; // tries between looks at the clock
const RAND_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** 16 random characters of [A-Za-z0-9_-] (64 of them: a byte's low 6 bits is uniform). */
function randomToken(length = 16) {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += RAND_CHARS[b & 63];
  return out;
}

/** Whether ``digest`` starts with ``bits`` zero bits (the first byte's high bit first). */
function meets(digest, bits) {
  let i = 0;
  for (; bits >= 8; bits -= 8) if (digest[i++] !== 0) return false;
  return bits === 0 || digest[i] >> (8 - bits) === 0;
}

function usable(challenge) {
  return challenge?.algorithm === ALGORITHM
    && Number.isInteger(challenge.bits) && challenge.bits >= 0 && challenge.bits <= MAX_BITS
    && Number.isInteger(challenge.window) && challenge.window >= 0
    && typeof challenge.prefix === "string" && /^[\x20-\x7e]*$/.test(challenge.prefix);
}

/** { pow: "w:rand:n" | null, hashes, ms, reason } */
function solve(challenge, maxMs) {
  const started = performance.now();
  if (!usable(challenge)) return { pow: null, hashes: 0, ms: 0, reason: "unusable challenge" };
  const { bits, window, prefix } = challenge;
  const rand = randomToken();
  const base = sha256.create().update(new TextEncoder().encode(`${prefix}${rand}:`));
  const h = sha256.create();
  const out = new Uint8Array(32);
  // n in ASCII decimal, counted in place (the format allows up to 16 digits)
  const digits = new Uint8Array(16);
  digits[0] = 48;
  let len = 1;
  for (let n = 0; len <= 16; n++) {
    base._cloneInto(h);
    h.update(digits.subarray(0, len));
    h.digestInto(out);
    if (meets(out, bits)) {
      return { pow: `${window}:${rand}:${n}`, hashes: n + 1, ms: performance.now() - started };
    }
    if ((n & (CHECK_EVERY - 1)) === 0 && performance.now() - started > maxMs) {
      return { pow: null, hashes: n + 1, ms: performance.now() - started, reason: "out of time" };
    }
    let i = len - 1;
    while (i >= 0 && digits[i] === 57) digits[i--] = 48;
    if (i >= 0) digits[i] += 1;
    else { digits[0] = 49; digits[len] = 48; len += 1; } // 99 -> 100
  }
  return { pow: null, hashes: 0, ms: performance.now() - started, reason: "out of counters" };
}

self.onmessage = (event) => {
  const { challenge, maxMs } = event.data;
  self.postMessage(solve(challenge, maxMs ?? 60_000));
};
