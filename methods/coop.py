"""CoOp: Context Optimization (Zhou, Yang, Loy, Liu; "Learning to Prompt for
Vision-Language Models", IJCV 2022).

The text prompt of class c is  [SOS] v_1 ... v_M [CLASS_c] . [EOT]  where the context
vectors v_1..v_M (M = `n_ctx`, width d_text) are the only parameters; the class token
sits at the end.  Context is initialised N(0, 0.02^2) or, with `ctx_init`, from the word
embeddings of that text (then M = its number of tokens).  The image tower is untouched.

Where we differ on purpose from the published code: the reference counts `ctx_init` in words
(M = number of words) and, when a word splits into several BPE tokens, trains only the first
M token positions while the extra sub-word tokens stay fixed embeddings in the prompt; we
train every BPE token of `ctx_init` (M = its number of tokens).  The two agree for
"a photo of a" (four words, four tokens) and differ for words that split.

The reference's variants:
* `class_token_position`: `end` (above), `middle`: [SOS] v_1..v_{M/2} [CLASS] v_{M/2+1}..v_M . [EOT]
  (M/2 rounded down), `front`: [SOS] [CLASS] v_1..v_M . [EOT].
* `csc: true` (class-specific context): every class has its own M context vectors (all from
  N(0, 0.02^2), or all from `ctx_init`'s words: the reference then silently falls back to one
  generic context, we keep the class-specific one).  In MT mode a class is one class *name*,
  shared by every task that has it (Office-Home's domains share all 65); in ST every task's
  classes have their own.

Modes: MT (one context shared by all tasks) and ST (one context per task).
Trainable parameters: M x d_text per set, so MT = M d_text, ST = T M d_text
(ViT-B/16, M=16: 8,192 for MT, 32,768 for ST over Office-Home's 4 tasks); with csc, times the
number of classes (65 on Office-Home: 532,480 for MT, 2,129,920 for ST).
"""
from __future__ import annotations

import torch
from torch import nn

from bench.clip import TowerPrompts
from bench.methods.base import Method, seeded_normal
from bench.methods.registry import implements


@implements("coop")
class CoOp(Method):
    image_depends_on_parameters = False

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        set_names = self.set_names
        self.position = cfg.class_token_position
        # One context per entry: a set (default), or a (set, class name) with csc.
        entries = {}
        for task, set_name in zip(self.tasks, [set_names[s] for s in self.set_of_task]):
            for name in task.classnames if cfg.csc else [None]:
                entries.setdefault((set_name, name), len(entries))
        if cfg.ctx_init:
            context = self.word_embeddings(cfg.ctx_init)
            self.n_ctx = context.shape[0]
            contexts = [context.clone() for _ in entries]
        else:
            self.n_ctx = cfg.n_ctx
            contexts = [seeded_normal((self.n_ctx, clip.text_width), 0.02, seed, "coop", *[p for p in key if p])
                        for key in entries]
        self.context = nn.Parameter(torch.stack(contexts))  # (entries, M, d_text)
        self.entry_readers = [frozenset(t for t in range(len(self.tasks)) if set_names[self.set_of_task[t]] == key[0]
                                        and (key[1] is None or key[1] in self.tasks[t].classnames))
                              for key in entries]
        self.csc = cfg.csc
        if self.csc:  # entry of class c of task t
            rows = torch.zeros(len(self.tasks), self.max_classes, dtype=torch.long)
            for t, task in enumerate(self.tasks):
                for c, name in enumerate(task.classnames):
                    rows[t, c] = entries[(set_names[self.set_of_task[t]], name)]
            self.register_buffer("context_entry", rows.to(self.class_mask.device), persistent=False)

    def task_readers(self) -> dict:
        """Each context entry is read by the tasks of its set (with csc: those with its class name)."""
        every = frozenset(range(len(self.tasks)))
        return {} if all(r == every for r in self.entry_readers) else {"context": self.entry_readers}

    def prompt_texts(self, task: int) -> list[str]:
        context = ["X"] * self.n_ctx
        half = self.n_ctx // 2
        words = {"end": lambda name: [*context, name], "front": lambda name: [name, *context],
                 "middle": lambda name: [*context[:half], name, *context[half:]]}[self.position]
        return [" ".join(words(name)) + "." for name in self.tasks[task].classnames]

    def text_prompts(self, tokens, row_task, row_class) -> TowerPrompts:
        """Each row's context (its set's; with csc its class's) in the placeholders: right after
        SOS (`end`), or around the class name, whose token count k varies by class, at
        positions read from the row's tokens (`front`: 1+k.., `middle`: 1.. and 1+k+M/2..)."""
        context = self.context[self.context_entry[row_task, row_class]] if self.csc else \
            self.select_sets(self.context, row_task)                                # (N or 1, M, d)
        if self.position == "end":
            return TowerPrompts(input=context)
        name_lengths = (self.clip.eot_positions(tokens) - self.n_ctx - 2)[:, None]  # [SOS] M + k [.] [EOT]
        slots = torch.arange(self.n_ctx)
        after = name_lengths if self.position == "front" else torch.where(slots >= self.n_ctx // 2, name_lengths, 0)
        return TowerPrompts(input=context, input_positions=1 + slots + after)
