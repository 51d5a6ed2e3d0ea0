// Task adapters on hand-written rows in the Hub datasets' own field layout: the context, choices and gold
// lm-evaluation-harness's templates give (lm_eval/tasks/<task>), and malformed rows naming the field.

import { describe, expect, it } from "vitest";
import { TASKS, TaskRowError, hellaswagPreprocess, taskDoc } from "./eval-tasks.js";

function doc(task: string, row: Record<string, unknown>) {
  return taskDoc(TASKS.get(task)!, row);
}

describe("task adapters", () => {
  it("arc_easy / arc_challenge: Question/Answer, choices.text, answerKey in choices.label", () => {
    const row = {
      id: "Mercury_7175875", question: "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect of this increase in rotation?",
      choices: { text: ["Planetary density will decrease.", "Planetary years will become longer.", "Planetary days will become shorter.", "Planetary gravity will become stronger."], label: ["A", "B", "C", "D"] },
      answerKey: "C",
    };
    const expected = {
      context: "Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect of this increase in rotation?\nAnswer:",
      choices: row.choices.text, gold: 2,
    };
    expect(doc("arc_easy", row)).toEqual(expected);
    expect(doc("arc_challenge", { ...row, choices: { ...row.choices, label: ["1", "2", "3", "4"] }, answerKey: "3" })).toEqual(expected);
    expect(TASKS.get("arc_challenge")!.paperMetric).toBe("acc_norm");
    expect(TASKS.get("arc_easy")!.paperMetric).toBe("acc");
  });

  it("sciq: support.lstrip(), the correct answer last", () => {
    expect(doc("sciq", {
      question: "What type of organism is commonly used in preparation of foods such as cheese and yogurt?",
      distractor3: "viruses", distractor1: "protozoa", distractor2: "gymnosperms", correct_answer: "mesophilic organisms",
      support: "  \nMesophiles grow best in moderate temperature. ",
    })).toEqual({
      context: "Mesophiles grow best in moderate temperature. \nQuestion: What type of organism is commonly used in preparation of foods such as cheese and yogurt?\nAnswer:",
      choices: ["protozoa", "gymnosperms", "viruses", "mesophilic organisms"], gold: 3,
    });
  });

  it("piqa and boolq: integer labels", () => {
    expect(doc("piqa", { goal: "How do I ready a guinea pig cage?", sol1: "Put bedding in it.", sol2: "Put jam in it.", label: 0 }))
      .toEqual({ context: "Question: How do I ready a guinea pig cage?\nAnswer:", choices: ["Put bedding in it.", "Put jam in it."], gold: 0 });
    expect(doc("boolq", { question: "do iran and afghanistan speak the same language", passage: "Persian language -- Persian is spoken in Iran.", idx: 0, label: 1 }))
      .toEqual({ context: "Persian language -- Persian is spoken in Iran.\nQuestion: do iran and afghanistan speak the same language?\nAnswer:", choices: ["no", "yes"], gold: 1 });
  });

  it("winogrande: partial scoring, the text after the blank stripped", () => {
    expect(doc("winogrande", {
      sentence: "Sarah was a much better surgeon than Maria so _ always got the harder cases.", option1: "Sarah", option2: "Maria", answer: "1",
    })).toEqual({
      contexts: ["Sarah was a much better surgeon than Maria so Sarah", "Sarah was a much better surgeon than Maria so Maria"],
      target: "always got the harder cases.", gold: 0,
    });
  });

  it("logiqa: passage, question, lettered options; label is a letter", () => {
    expect(doc("logiqa", { label: "c", context: "All men are mortal.", question: "Which follows?", options: ["w", "x", "y", "z"] })).toEqual({
      context: "Passage: All men are mortal.\nQuestion: Which follows?\nChoices:\nA. w\nB. x\nC. y\nD. z\nAnswer:",
      choices: ["w", "x", "y", "z"], gold: 2,
    });
    expect(TASKS.get("logiqa")!.paperMetric).toBe("acc_norm");
  });

  it("mmlu: the subject's description first, letters as choices", () => {
    expect(doc("mmlu", { question: " Find the degree of the extension. ", subject: "abstract_algebra", choices: ["0", "4", "2", "6"], answer: 1 })).toEqual({
      context: "The following are multiple choice questions (with answers) about abstract algebra.\n\nFind the degree of the extension.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:",
      choices: ["A", "B", "C", "D"], gold: 1,
    });
  });

  it("commonsense_qa: five lettered options", () => {
    expect(doc("commonsense_qa", {
      id: "075e483d21c29a511267ef62bedc0461", question: "The sanctions against the school were a punishing blow, and they seemed to what the efforts the school had made to change?",
      question_concept: "punishing", choices: { label: ["A", "B", "C", "D", "E"], text: ["ignore", "enforce", "authoritarian", "yell at", "avoid"] }, answerKey: "A",
    })).toEqual({
      context: "Question: The sanctions against the school were a punishing blow, and they seemed to what the efforts the school had made to change?\nA. ignore\nB. enforce\nC. authoritarian\nD. yell at\nE. avoid\nAnswer:",
      choices: ["A", "B", "C", "D", "E"], gold: 0,
    });
  });

  it("hellaswag: preprocess, ctx_b capitalized (rest lower-cased), string label", () => {
    expect(hellaswagPreprocess("  A man [title] is  [header] here. ")).toBe("A man. is  here."); // Python: strip, replace, re.sub, replace
    expect(doc("hellaswag", {
      ind: 4, activity_label: "Removing ice from car", ctx_a: "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.",
      ctx_b: "then, the MAN", ctx: "", endings: [", the man adds wax to the windshield.", " [header] the man continues  removing the snow on his car."], label: "1", split: "val",
    })).toEqual({
      context: "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles. Then, the man",
      choices: [", the man adds wax to the windshield.", " the man continues removing the snow on his car."], gold: 1,
    });
  });

  it("openbookqa: question_stem, answerKey.lstrip()", () => {
    expect(doc("openbookqa", { id: "7-980", question_stem: "The sun is responsible for", choices: { text: ["puppies learning new tricks", "plants sprouting"], label: ["A", "B"] }, answerKey: " B" }))
      .toEqual({ context: "The sun is responsible for", choices: ["puppies learning new tricks", "plants sprouting"], gold: 1 });
  });

  it("mc: the generic format", () => {
    expect(doc("mc", { context: "2 + 2 =", choices: ["3", "4"], gold: 1 })).toEqual({ context: "2 + 2 =", choices: ["3", "4"], gold: 1 });
  });

  it("malformed rows name the field", () => {
    const bad = (task: string, row: Record<string, unknown>, field: string, msg: RegExp) => {
      let e: unknown;
      try {
        doc(task, row);
      } catch (x) {
        e = x;
      }
      expect(e, `${task}: ${JSON.stringify(row)}`).toBeInstanceOf(TaskRowError);
      expect((e as TaskRowError).field).toBe(field);
      expect((e as Error).message).toMatch(msg);
    };
    bad("arc_easy", { question: "q", choices: { text: ["a", "b"] }, answerKey: "A" }, "choices.label", /missing field 'choices.label'/);
    bad("arc_easy", { question: "q", choices: { text: ["a", "b"], label: ["A", "B"] }, answerKey: "C" }, "answerKey", /"C", not one of/);
    bad("piqa", { goal: "g", sol1: "a", label: 0 }, "sol2", /missing field 'sol2'/);
    bad("piqa", { goal: "g", sol1: "a", sol2: "b", label: "x" }, "label", /must be an integer/);
    bad("winogrande", { sentence: "no blank", option1: "a", option2: "b", answer: "1" }, "sentence", /no '_'/);
    bad("mmlu", { question: "q", choices: ["a", "b", "c", "d"], answer: 0 }, "subject", /missing field 'subject'/);
    bad("mmlu", { question: "q", subject: "s", choices: ["a", "b", "c"], answer: 0 }, "choices", /at least 4/);
    bad("mc", { context: "c", choices: ["a", "b"], gold: 2 }, "gold", /answer index 2/);
    bad("mc", { context: "c", choices: ["a"], gold: 0 }, "choices", /at least 2/);
    bad("mc", { context: null, choices: ["a", "b"], gold: 0 }, "context", /missing field 'context'/);
  });
});
