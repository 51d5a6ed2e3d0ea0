// GPT-2 byte-level BPE building blocks shared by the trainer and its tests: the reversible byte <-> printable
// character table (`bytes_to_unicode` in openai/gpt-2 `encoder.py`, the `ByteLevel` component of HF
// tokenizers) and the GPT-2 pre-tokenization regex that HF's ByteLevel pre-tokenizer applies with
// `use_regex: true`.

/** The GPT-2 split regex, exactly as HF tokenizers' ByteLevel pre-tokenizer uses it. */
export const GPT2_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** A fresh global, unicode-mode RegExp for GPT2_SPLIT_PATTERN (RegExps with /g carry state: one per use). */
export function gpt2SplitRegex(): RegExp {
  return new RegExp(GPT2_SPLIT_PATTERN, "gu");
}

/** BYTE_TO_CHAR[b] is the printable character byte b is written as in a byte-level vocabulary. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table = new Array<string>(256);
  for (let i = 0; i < 256; i++) table[bs[i]!] = String.fromCharCode(cs[i]!);
  return table;
})();

/** The byte-level spelling of a string: its UTF-8 bytes, each mapped through BYTE_TO_CHAR. */
export function byteLevelSpelling(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}
