// The exported student as one download: a zip holding one folder (`lrc-student-d<d>/`) with the HF model
// files, so unzipping gives a directory `transformers` and `lrc generate` load. JSON files are deflated; the
// safetensors weights are stored (floats barely compress and deflating them would hold up the page).

import { unzipSync, zipSync } from "fflate";
import type { Zippable } from "fflate";

/** The zip's name and its single folder's name for a student of width d. */
export function studentZipName(hiddenSize: number): { file: string; folder: string } {
  const folder = `lrc-student-d${hiddenSize}`;
  return { file: `${folder}.zip`, folder };
}

/** Zips `files` ([name, bytes]) into `<folder>/<name>`. */
export function studentZip(files: ReadonlyArray<readonly [string, Uint8Array]>, hiddenSize: number): { name: string; bytes: Uint8Array } {
  const { file, folder } = studentZipName(hiddenSize);
  const entries: Zippable = {};
  for (const [name, bytes] of files) entries[`${folder}/${name}`] = [bytes, { level: name.endsWith(".safetensors") ? 0 : 6 }];
  return { name: file, bytes: zipSync(entries) };
}

/** The files of a zip made by studentZip, by their names inside the folder (for the end-to-end test and checks). */
export function unzipStudent(zip: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [name, bytes] of Object.entries(unzipSync(zip))) if (!name.endsWith("/")) out.set(name.slice(name.indexOf("/") + 1), bytes);
  return out;
}
