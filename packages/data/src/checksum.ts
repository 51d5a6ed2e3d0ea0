// 32-bit FNV-1a over bytes, streaming: the shard payload checksum. Chosen for being a four-line spec that
// any reader (C, Python, JS) can re-implement; it is an integrity check against truncation, bit flips and
// mixed-up files, not a cryptographic hash (the tokenizer hash in the manifest is sha256).
// Reference: http://www.isthe.com/chongo/tech/comp/fnv/ (offset basis 2166136261, prime 16777619).

export const FNV1A32_INIT = 0x811c9dc5;

/** Folds `bytes` into a running FNV-1a 32 state; start from FNV1A32_INIT, the result is unsigned. */
export function fnv1a32Update(state: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let h = state | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

/** FNV-1a 32 of a whole buffer. */
export function fnv1a32(bytes: Uint8Array): number {
  return fnv1a32Update(FNV1A32_INIT, bytes);
}
