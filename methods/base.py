"""CLIP methods: cosine logits over each task's classes, prompt hooks and feature caches.

`Method` implements the contract of methods/contract.py for every method here: logits =
logit_scale * cos(image feature, class text feature) over the sample's own task, with the
image and text features from the frozen `PromptableCLIP` and the method's prompts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from bench.clip import PromptableCLIP, TowerPrompts
from bench.config import MethodConfig, setting
from bench.feature_cache import SPEEDUPS, ImageFeatureCache
from bench.seeding import stable_seed
from methods.contract import MethodContract, MethodError


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


@dataclass
class TemplateConfig(MethodConfig):
    """The settings of a method whose text side is the hand-crafted template."""

    template: str = setting("a photo of a {}.", "class prompt of the text tower: template.format(class name)")


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
    """Base of every method: cosine logits between image and class text features.

    Subclasses provide `image_features(images, task_ids)` and `compute_class_features()`,
    or, for prompt methods, just `text_prompts` / `image_prompts` / `prompt_texts`.
    """

    #: False when class text features never change during training (no text prompts and a
    #: frozen text tower): they are then computed once and reused every step.
    text_depends_on_parameters: bool = True
    #: False when image features never change (frozen, unprompted image tower): they are then
    #: computed without autograd and cached per sample for fixed images (bench/feature_cache.py).
    image_depends_on_parameters: bool = True

    def __init__(self, clip: PromptableCLIP, tasks: Sequence, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        counts = [len(t.classnames) for t in self.tasks]
        self.max_classes = max(counts)
        mask = torch.zeros(len(counts), self.max_classes, dtype=torch.bool)
        for t, count in enumerate(counts):
            mask[t, :count] = True
        self.register_buffer("class_mask", mask, persistent=False)
        self._class_cache: torch.Tensor | None = None
        self._token_cache: dict[tuple[str, ...], torch.Tensor] = {}
        self.image_cache = ImageFeatureCache()

    # ---- parameter sets (ST / MT) ------------------------------------------------------
    def use_sharing_sets(self) -> list[str]:
        """Map each task to a parameter set: ST gives each task its own, MT one shared set.

        Sets `set_of_task` (and the `set_index` buffer used by `select_sets`) and returns a
        stable name per set, used to seed that set's initialisation."""
        if self.mode == "st":
            self.set_of_task, names = list(range(len(self.tasks))), [t.name for t in self.tasks]
        elif self.mode == "mt":
            self.set_of_task, names = [0] * len(self.tasks), ["shared"]
        else:
            raise MethodError(f"Unknown sharing mode '{self.mode}'. Use method.mode=st (own parameters "
                              "per task) or method.mode=mt (one set shared by all tasks).")
        self.register_buffer("set_index", torch.tensor(self.set_of_task, device=self.class_mask.device),
                             persistent=False)
        return names

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
        features = self.compute_class_features()
        # Prompted or trained text changes every step; in evaluation (and for frozen text)
        # the features are fixed, so one pass serves every batch until the next train().
        if SPEEDUPS.enabled and (not self.training or not self.text_depends_on_parameters):
            self._class_cache = features.detach()
        return features

    def forward(self, images: torch.Tensor, task_ids: torch.Tensor,
                sample_ids: tuple[str, torch.Tensor] | None = None) -> torch.Tensor:
        """`sample_ids` (split, CPU indices of the batch's samples) marks the images as fixed
        (same pixels every time that index is seen), which lets a frozen image tower cache them."""
        image = self.fixed_or_computed_image_features(images, task_ids, sample_ids)
        classes = self.class_features().to(image.dtype)
        n_tasks, n_classes, dim = classes.shape
        all_logits = (image @ classes.reshape(-1, dim).T).view(-1, n_tasks, n_classes)
        logits = all_logits[torch.arange(len(task_ids), device=image.device), task_ids]
        logits = self.logit_scales(task_ids).to(logits.dtype) * logits
        return logits.masked_fill(~self.class_mask[task_ids], float("-inf"))

    def fixed_or_computed_image_features(self, images, task_ids, sample_ids=None) -> torch.Tensor:
        if not SPEEDUPS.enabled or self.image_depends_on_parameters:
            return self.image_features(images, task_ids)
        with torch.no_grad():  # no trainable input: nothing to differentiate through
            if sample_ids is None:
                return self.image_features(images, task_ids)
            split, indices = sample_ids
            return self.image_cache.features(split, indices, lambda: self.image_features(images, task_ids))

    def image_features(self, images: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images, self.image_prompts(task_ids))

    def logit_scales(self, task_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.logit_scale

    def compute_class_features(self) -> torch.Tensor:
        """One text pass over every distinct (text key, class list), scattered to tasks."""
        passes: dict[tuple, list[int]] = {}
        for t, task in enumerate(self.tasks):
            # Baseline: one pass per task, even where tasks' prompts are identical.
            key = self.text_key(t) if SPEEDUPS.enabled else ("task", t)
            passes.setdefault((key, tuple(task.classnames)), []).append(t)
        tokens, rows_task, rows_class = [], [], []
        for (_, classnames), members in passes.items():
            tokens.append(self.tokenize_task(members[0]))
            rows_task += [members[0]] * len(classnames)
            rows_class += range(len(classnames))
        device = self.class_mask.device
        tokens = self.truncated(torch.cat(tokens))
        features = self.class_text_features(tokens, torch.tensor(rows_task, device=device),
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

    def class_text_features(self, tokens: torch.Tensor, row_task: torch.Tensor,
                            row_class: torch.Tensor) -> torch.Tensor:
        """Normalised text features of class prompts: `tokens` (CPU) row r is class
        row_class[r] of task row_task[r].  Methods that give each class its own prompt (CoOp's
        csc) or route rows through per-task weights (bitfit, lora) override this."""
        return self.encode_prompted_text(tokens, self.text_prompts(row_task))

    def encode_prompted_text(self, tokens: torch.Tensor, prompts: TowerPrompts | None) -> torch.Tensor:
        if prompts is not None:  # checked on the host tokens, so the step has no sync
            self.clip.check_prompt_room(tokens, prompts.n_tokens)
        return self.clip.encode_text(tokens.to(self.class_mask.device), prompts, truncate=False)

    # ---- what prompt methods override ---------------------------------------------------
    def text_key(self, task: int) -> Any:
        """Tasks with equal keys (and equal class lists) share one text pass."""
        return task

    def prompt_texts(self, task: int) -> list[str]:
        template = self.cfg.template
        return [template.format(name) for name in self.tasks[task].classnames]

    def tokenize_task(self, task: int) -> torch.Tensor:
        """CPU tokens of the task's prompts, tokenized once: prompted or trained text runs
        every step, and BPE on the host is not work to repeat per step."""
        texts = tuple(self.prompt_texts(task))
        if texts not in self._token_cache:
            self._token_cache[texts] = self.clip.tokenize(texts)
        return self._token_cache[texts]

    def truncated(self, tokens: torch.Tensor) -> torch.Tensor:
        """CPU tokens cut after the last EOT (exact: causal tower pooled at EOT); cut on the
        host so the step has no sync.  The baseline keeps the full context."""
        if not (SPEEDUPS.enabled and self.cfg.truncate_text):
            return tokens
        return tokens[:, : int(self.clip.eot_positions(tokens).max()) + 1]

    def text_prompts(self, row_task: torch.Tensor) -> TowerPrompts | None:
        return None

    def image_prompts(self, task_ids: torch.Tensor) -> TowerPrompts | None:
        return None

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
