"""CLIP methods: cosine logits over each task's classes, prompt hooks and feature caches.

`Method` implements the contract of methods/contract.py for every method here: logits =
logit_scale * cos(image feature, class text feature) over the sample's own task, with the
image and text features from the frozen `PromptableCLIP` and the method's prompts.
`TemplateMethod` is a `Method` whose class prompts are a hand-written template
(`TemplateConfig.template`, methods/settings.py).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from bench.clip import PromptableCLIP, TowerPrompts
from bench.schema import MethodConfig
from bench.speedups import SPEEDUPS, ImageFeatureCache
from bench.seeding import stable_seed
from bench.methods.contract import MethodContract, MethodError


def seeded_normal(shape: Sequence[int], std: float, *seed_parts: Any) -> torch.Tensor:
    """N(0, std^2) drawn from its own generator, so one parameter's init never shifts another's
    (DomainBed's per-name seeding): a task's ST parameters start where a single-task run's do."""
    generator = torch.Generator().manual_seed(stable_seed(*seed_parts))
    return torch.randn(*shape, generator=generator) * std


def seeded_uniform(shape: Sequence[int], bound: float, *seed_parts: Any) -> torch.Tensor:
    """U(-bound, bound) from its own generator (see `seeded_normal`); nn.Linear's default init
    of weight and bias is bound = 1/sqrt(fan_in)."""
    generator = torch.Generator().manual_seed(stable_seed(*seed_parts))
    return (torch.rand(*shape, generator=generator) * 2 - 1) * bound


def prompted_layers(cfg, default_depth: int, max_depth: int, method: str) -> int:
    """`prompt_depth` from the config (null: `default_depth`), checked against the model."""
    depth = default_depth if cfg.prompt_depth is None else cfg.prompt_depth
    if not 1 <= depth <= max_depth:
        raise MethodError(
            f"{method}: method.prompt_depth={depth}, but the model has {max_depth} prompt-able "
            f"layers, so the prompt depth must be between 1 and {max_depth}. Lower "
            f"method.prompt_depth (e.g. method.prompt_depth={max_depth}) or use a deeper model.")
    return depth


class Method(MethodContract):
    """Base of every CLIP method: logits = logit_scale * cos(image feature, class text feature)
    over the classes of each sample's own task.

    A method changes what it needs through one override point per concern, and every method
    with that concern overrides that point (the text side is one chain: the words are
    tokenized, `text_prompts` go into the tower, `text_features` runs it):

    | concern                        | override                                       | default                                   | overridden by                  |
    |--------------------------------|------------------------------------------------|-------------------------------------------|--------------------------------|
    | class prompt words             | `prompt_texts(task)`                           | `TemplateMethod`: its template; required  | CoOp, CoCoOp, MaPLe, MmAP      |
    | several templates, averaged    | `templates()` (`TemplateMethod`)               | `[cfg.template]`                          | zero-shot                      |
    | learned text prompts           | `text_prompts(tokens, row_task, row_class)`    | none                                      | CoOp, MaPLe, MmAP              |
    | the text tower's weights       | `text_features(tokens, row_task, row_class)`   | the frozen tower with `text_prompts`      | full fine-tuning               |
    | tasks sharing one text pass    | `text_key(task)` (a speed-up, never a result)  | the tasks of one parameter set            | MmAP (grouped), templates      |
    | visual prompts                 | `image_prompts(task_ids)`                      | none                                      | VPT, MaPLe, MmAP               |
    | the image tower's weights      | `image_features(images, task_ids)`             | the frozen tower with `image_prompts`     | full fine-tuning               |
    | after the image tower          | `adapt_image(features, task_ids)`              | unchanged                                 | CLIP-Adapter                   |
    | logit scale                    | `logit_scales(task_ids)`                       | the model's own                           | full fine-tuning               |

    The one exception is CoCoOp, whose class text depends on each image (its meta-net's
    bias on the context): one text pass per image, not per class list, so it implements
    `forward` itself with these same pieces.  LoRA and BitFit change the towers' layers
    themselves (methods/routed_layers.py) and override none of these.

    `text_depends_on_parameters` / `image_depends_on_parameters` (class flags) let the base
    compute frozen features once (bench/speedups.py).  Parameter sets are built here:
    `set_of_task[t]` is task t's set and `set_names` their stable names (MT: one shared set,
    ST: one per task, any other mode: one per task unless the method says otherwise), and
    `select_sets(params, rows)` picks each row's set from a (sets, ...) tensor.
    """

    #: False when class text features never change during training (no text prompts and a
    #: frozen text tower): they are then computed once and reused every step.
    text_depends_on_parameters: bool = True
    #: False when image features never change (frozen, unprompted image tower): they are then
    #: computed without autograd and cached per sample for fixed images (bench/speedups.py).
    image_depends_on_parameters: bool = True

    def __init__(self, clip: PromptableCLIP, tasks: Sequence, cfg: MethodConfig, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        counts = [len(t.classnames) for t in self.tasks]
        self.max_classes = max(counts)
        mask = torch.zeros(len(counts), self.max_classes, dtype=torch.bool)
        for t, count in enumerate(counts):
            mask[t, :count] = True
        self.register_buffer("class_mask", mask, persistent=False)
        if self.mode == "mt":
            self.set_of_task, self.set_names = [0] * len(self.tasks), ["shared"]
        else:
            self.set_of_task, self.set_names = list(range(len(self.tasks))), [t.name for t in self.tasks]
        self.register_buffer("set_index", torch.tensor(self.set_of_task), persistent=False)
        self._class_cache: torch.Tensor | None = None
        self._token_cache: dict[tuple[str, ...], torch.Tensor] = {}
        self.image_cache = ImageFeatureCache()

    def tasks_of_set(self, s: int) -> frozenset[int]:
        """The tasks whose parameter set is `s`."""
        return frozenset(t for t, of in enumerate(self.set_of_task) if of == s)

    def task_readers(self) -> dict:
        """With several sets (st): every trainable parameter stacked by set, (sets, ...), the layout
        of every method here, row s read by the tasks of set s.  Methods with another layout
        override this (CoOp's class-specific contexts, full fine-tuning's copies, MmAP's groups)."""
        n_sets = len(self.set_names)
        if n_sets == 1:
            return {}
        rows = [self.tasks_of_set(s) for s in range(n_sets)]
        return {name: rows for name, p in self.trainable_parameters() if p.dim() and p.shape[0] == n_sets}

    def select_sets(self, params: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The parameter set of each row's task from `params` (sets, ...): one shared set is
        broadcast (leading dim 1) instead of gathered per row."""
        return params[:1] if params.shape[0] == 1 else params[self.set_index[rows]]

    # ---- features and logits ------------------------------------------------------------
    def train(self, mode: bool = True):
        self.invalidate_cache()
        return super().train(mode)

    def on_state_loaded(self) -> None:
        self.invalidate_cache()

    def invalidate_cache(self) -> None:
        if self.text_depends_on_parameters:
            self._class_cache = None

    def class_features(self) -> torch.Tensor:
        """(T, C_max, E) normalised class text features (zero rows past a task's classes)."""
        if self._class_cache is not None:
            return self._class_cache
        features = self._compute_class_features()
        # Prompted or trained text changes every step; in evaluation (and for frozen text)
        # the features are fixed, so one pass serves every batch until the next train().
        if SPEEDUPS.enabled and (not self.training or not self.text_depends_on_parameters):
            self._class_cache = features.detach()
        return features

    def forward(self, images: torch.Tensor, task_ids: torch.Tensor,
                sample_ids: tuple[str, torch.Tensor] | None = None) -> torch.Tensor:
        """`sample_ids` (split, CPU indices of the batch's samples) marks the images as fixed
        (same pixels every time that index is seen), which lets a frozen image tower cache them."""
        image = self.image_embedding(images, task_ids, sample_ids)
        classes = self.class_features().to(image.dtype)
        n_tasks, n_classes, dim = classes.shape
        all_logits = (image @ classes.reshape(-1, dim).T).view(-1, n_tasks, n_classes)
        logits = all_logits[torch.arange(len(task_ids), device=image.device), task_ids]
        logits = self.logit_scales(task_ids).to(logits.dtype) * logits
        return logits.masked_fill(~self.class_mask[task_ids], float("-inf"))

    def image_embedding(self, images, task_ids, sample_ids=None) -> torch.Tensor:
        """`adapt_image` of the image features, taken from the per-sample cache where the image
        tower has no trainable input and the images are fixed."""
        if not SPEEDUPS.enabled or self.image_depends_on_parameters:
            return self.adapt_image(self.image_features(images, task_ids), task_ids)
        with torch.no_grad():  # no trainable input: nothing to differentiate through
            if sample_ids is None:
                features = self.image_features(images, task_ids)
            else:
                split, indices = sample_ids
                features = self.image_cache.features(split, indices, lambda: self.image_features(images, task_ids))
        return self.adapt_image(features, task_ids)

    def _compute_class_features(self) -> torch.Tensor:
        """One text pass over every distinct (prompt set, text key, class list), scattered to
        tasks; with several prompt sets (a template ensemble) the normalised features are
        averaged and renormalised."""
        ensemble = self._prompt_sets()
        features = None
        for member, texts_of in enumerate(ensemble):
            one = self._class_features_of(texts_of)
            features = one if features is None else features + one
        return F.normalize(features, dim=-1) if len(ensemble) > 1 else features

    def _class_features_of(self, texts_of: Callable[[int], list[str]]) -> torch.Tensor:
        passes: dict[tuple, list[int]] = {}
        for t, task in enumerate(self.tasks):
            # Baseline: one pass per task, even where tasks' prompts are identical.
            key = self.text_key(t) if SPEEDUPS.enabled else ("task", t)
            passes.setdefault((key, tuple(task.classnames)), []).append(t)
        tokens, rows_task, rows_class = [], [], []
        for (_, classnames), members in passes.items():
            tokens.append(self.tokenize(texts_of(members[0])))
            rows_task += [members[0]] * len(classnames)
            rows_class += range(len(classnames))
        device = self.class_mask.device
        tokens = self.truncated(torch.cat(tokens))
        features = self.text_features(tokens, torch.tensor(rows_task, device=device),
                                      torch.tensor(rows_class, device=device))
        out = features.new_zeros(len(self.tasks), self.max_classes, features.shape[-1])
        start = 0
        for (_, classnames), members in passes.items():
            block = features[start:start + len(classnames)]
            for t in members:
                out = out.index_put((torch.tensor([t], device=device),
                                     torch.arange(len(classnames), device=device)), block)
            start += len(classnames)
        return out

    def encode_text(self, tokens: torch.Tensor, prompts: TowerPrompts | None) -> torch.Tensor:
        """Normalised text features of CPU `tokens` with `prompts` inserted (room checked on
        the host tokens, so the step has no sync)."""
        if prompts is not None:
            self.clip.check_prompt_room(tokens, prompts.n_tokens, prompts.input_positions)
        return self.clip.encode_text(tokens.to(self.class_mask.device), prompts, truncate=False)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """CPU tokens of `texts`, tokenized once: prompted or trained text runs every step, and
        BPE on the host is not work to repeat per step."""
        texts = tuple(texts)
        if texts not in self._token_cache:
            self._token_cache[texts] = self.clip.tokenize(texts)
        return self._token_cache[texts]

    def tokenize_task(self, task: int) -> torch.Tensor:
        """CPU tokens of the task's class prompts (`prompt_texts`)."""
        return self.tokenize(self.prompt_texts(task))

    def truncated(self, tokens: torch.Tensor) -> torch.Tensor:
        """CPU tokens cut after the last EOT (exact: causal tower pooled at EOT); cut on the
        host so the step has no sync.  The baseline keeps the full context."""
        if not (SPEEDUPS.enabled and self.cfg.truncate_text):
            return tokens
        return tokens[:, : int(self.clip.eot_positions(tokens).max()) + 1]

    # ---- the override points (see the table above) -----------------------------------------
    def prompt_texts(self, task: int) -> list[str]:
        """The text of each class prompt of `task` (placeholder words where prompts go)."""
        raise NotImplementedError(f"{type(self).__name__} must say its class prompts (prompt_texts)")

    def _prompt_sets(self) -> list[Callable[[int], list[str]]]:
        """The prompt sets whose features are averaged: `prompt_texts` (TemplateMethod: one per
        template)."""
        return [self.prompt_texts]

    def text_key(self, task: int) -> Any:
        """Tasks with equal keys (and equal class lists) share one text pass."""
        return self.set_of_task[task]

    def text_prompts(self, tokens: torch.Tensor, row_task: torch.Tensor,
                     row_class: torch.Tensor) -> TowerPrompts | None:
        """The learned prompts of the text rows: `tokens` (CPU) row r is class row_class[r] of
        task row_task[r] (device tensors)."""
        return None

    def text_features(self, tokens: torch.Tensor, row_task: torch.Tensor,
                      row_class: torch.Tensor) -> torch.Tensor:
        """Normalised text features of class prompts (rows as in `text_prompts`)."""
        return self.encode_text(tokens, self.text_prompts(tokens, row_task, row_class))

    def image_prompts(self, task_ids: torch.Tensor) -> TowerPrompts | None:
        return None

    def image_features(self, images: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images, self.image_prompts(task_ids))

    def adapt_image(self, features: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        return features

    def logit_scales(self, task_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.logit_scale

    # ---- helpers for prompt methods -------------------------------------------------------
    def word_embeddings(self, text: str, n_tokens: int | None = None) -> torch.Tensor:
        """Token embeddings of `text` (without SOS/EOT), e.g. to initialise a context."""
        tokens = self.clip.tokenize([text])[0]
        n_words = int(self.clip.eot_positions(tokens[None])[0]) - 1
        n_tokens = n_words if n_tokens is None else n_tokens
        if n_tokens > n_words:
            raise MethodError(f"Cannot initialise {n_tokens} context tokens from '{text}', which "
                              f"has only {n_words} tokens. Lower the context length or change the "
                              "init text.")
        with torch.no_grad():
            return self.clip.token_embedding(tokens[1:1 + n_tokens].to(self.class_mask.device)).float().cpu()


class TemplateMethod(Method):
    """A method whose class prompts are the hand-written template of its `TemplateConfig`
    (`template.format(class name)`; `templates()` may give several, an ensemble).  Where the
    text tower is also frozen (`text_depends_on_parameters = False`) every task shares one
    text pass."""

    def templates(self) -> list[str]:
        """The hand templates whose class features are averaged (one: `cfg.template`)."""
        return [self.cfg.template]

    def _prompt_sets(self) -> list[Callable[[int], list[str]]]:
        return [functools.partial(self.prompt_texts, template=template) for template in self.templates()]

    def prompt_texts(self, task: int, template: str | None = None) -> list[str]:
        """`template` (default `cfg.template`) filled with each class name of `task`."""
        template = self.cfg.template if template is None else template
        return [template.format(name) for name in self.tasks[task].classnames]

    def text_key(self, task: int) -> Any:
        # A frozen, unprompted text tower gives every task the same class features.
        return "template" if not self.text_depends_on_parameters else super().text_key(task)
