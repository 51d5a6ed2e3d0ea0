// Module: a tree of named parameters, like torch.nn.Module without hooks. Children and parameters are
// registered under the names the HF checkpoint uses, so `namedParameters()` yields
// "model.layers.0.self_attn.q_proj.weight" and loading a checkpoint is a name lookup. A tensor registered
// under two names (a tied LM head) is reported once, under the first name, as torch does.

import { noGrad } from "@lrc-ts/tensor-core";
import type { DType, Tensor } from "@lrc-ts/tensor-core";

/** A problem loading a state dict or checkpoint; the message starts with the source and names the tensor. */
export class StateDictError extends Error {
  override readonly name = "StateDictError";
}

export interface LoadStateDictOptions {
  /** Fail on missing and unexpected names (default true). Shapes are always checked. */
  readonly strict?: boolean;
  /** Where the tensors came from (a file), named in errors. */
  readonly source?: string;
  /** Names that may be absent from / present in the input without being an error (e.g. a tied lm_head). */
  readonly optional?: readonly string[];
}

export type StateDict = Record<string, Tensor>;

/** What a module was built with: the parameter dtype, and a seed for random initialisation. */
export interface ModuleOptions {
  readonly dtype?: DType;
}

export abstract class Module {
  /** Training mode (no layer here behaves differently, but LRC and callers can read it). */
  training = true;
  private readonly paramMap = new Map<string, Tensor>();
  private readonly childMap = new Map<string, Module>();

  /** Registers a parameter under `name` (a path segment without dots) and returns it. */
  protected registerParameter(name: string, t: Tensor): Tensor {
    if (name.includes(".")) throw new Error(`registerParameter: name "${name}" must not contain "."`);
    this.paramMap.set(name, t);
    return t;
  }

  /** Registers a child module under `name` (a path segment, e.g. "self_attn" or "0") and returns it. */
  protected registerModule<M extends Module>(name: string, m: M): M {
    if (name.includes(".")) throw new Error(`registerModule: name "${name}" must not contain "."`);
    this.childMap.set(name, m);
    return m;
  }

  /** Replaces a registered parameter (used to tie weights). */
  protected replaceParameter(name: string, t: Tensor): void {
    if (!this.paramMap.has(name)) throw new Error(`replaceParameter: no parameter "${name}"`);
    this.paramMap.set(name, t);
  }

  /**
   * Makes every module that holds parameter `old` (under any name: a tied LM head too) hold `t` instead, in its
   * parameter map and in its field of the same name (`Linear.weight`, ...). A checkpoint loader's: a weight
   * matrix kept in its checkpoint dtype replaces the placeholder the model was built with.
   */
  swapParameter(old: Tensor, t: Tensor): void {
    if (old.shape.length !== t.shape.length || old.shape.some((d, i) => d !== t.shape[i]))
      throw new RangeError(`swapParameter: [${t.shape.join(", ")}] does not match [${old.shape.join(", ")}]`);
    for (const [, m] of this.namedModules())
      for (const [name, p] of m.paramMap) {
        if (p !== old) continue;
        m.paramMap.set(name, t);
        const fields = m as unknown as Record<string, unknown>;
        if (fields[name] === old) fields[name] = t;
      }
  }

  /** [name, module] for this module ("" + prefix) and every descendant, depth first. */
  namedModules(prefix = ""): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [n, c] of this.childMap) out.push(...c.namedModules(prefix === "" ? n : `${prefix}.${n}`));
    return out;
  }

  /** [HF name, tensor] for every parameter, each tensor once (first name wins), in registration order. */
  namedParameters(prefix = ""): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    const seen = new Set<Tensor>();
    const walk = (m: Module, p: string) => {
      for (const [n, t] of m.paramMap) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push([p === "" ? n : `${p}.${n}`, t]);
      }
      for (const [n, c] of m.childMap) walk(c, p === "" ? n : `${p}.${n}`);
    };
    walk(this, prefix);
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((s, t) => s + t.size, 0);
  }

  /** name -> tensor (the live parameters, not copies). */
  stateDict(): StateDict {
    return Object.fromEntries(this.namedParameters());
  }

  /**
   * Copies tensors into the parameters in place (so optimisers holding them keep working). Every name and
   * shape is checked first; nothing is modified when there is an error.
   */
  loadStateDict(sd: StateDict | ReadonlyMap<string, Tensor>, opts: LoadStateDictOptions = {}): void {
    const src: ReadonlyMap<string, Tensor> = sd instanceof Map ? sd : new Map(Object.entries(sd as StateDict));
    const source = opts.source ?? "state dict";
    const strict = opts.strict ?? true;
    const optional = new Set(opts.optional ?? []);
    const own = new Map(this.namedParameters());
    const missing = [...own.keys()].filter((n) => !src.has(n) && !optional.has(n));
    const unexpected = [...src.keys()].filter((n) => !own.has(n) && !optional.has(n));
    if (strict && missing.length > 0)
      throw new StateDictError(`${source}: missing tensor${missing.length > 1 ? "s" : ""} ${list(missing)}`);
    if (strict && unexpected.length > 0)
      throw new StateDictError(`${source}: unexpected tensor${unexpected.length > 1 ? "s" : ""} ${list(unexpected)}`);
    for (const [n, dst] of own) {
      const t = src.get(n);
      if (t === undefined) continue;
      if (t.shape.length !== dst.shape.length || t.shape.some((d, i) => d !== dst.shape[i]))
        throw new StateDictError(`${source}: tensor "${n}" has shape [${t.shape.join(", ")}], expected [${dst.shape.join(", ")}]`);
    }
    noGrad(() => {
      for (const [n, dst] of own) {
        const t = src.get(n);
        if (t !== undefined && t !== dst) dst.buf.set(t.buf);
      }
    });
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Sets requiresGrad on every parameter. */
  setRequiresGrad(flag: boolean): this {
    for (const t of this.parameters()) t.requiresGrad = flag;
    return this;
  }

  /** No parameter requires grad (a frozen teacher). */
  freeze(): this {
    return this.setRequiresGrad(false);
  }

  unfreeze(): this {
    return this.setRequiresGrad(true);
  }

  /** Clears accumulated `.grad` on every parameter. */
  zeroGrad(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = null;
    }
  }

  /** Frees every parameter buffer; the module cannot be used afterwards. */
  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}

function list(names: readonly string[]): string {
  const shown = names.slice(0, 8).map((n) => `"${n}"`).join(", ");
  return names.length > 8 ? `${shown} and ${names.length - 8} more` : shown;
}
