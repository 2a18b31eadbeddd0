"""Every registered method's card: its typed settings (the `method` block's schema), its label
in tables, its sharing modes, the distribution of its settings worth tuning, and where its
implementation lives.

This module imports neither torch nor open_clip, so whatever only reads configs or records
(`--help`, a config error, `bench.report`, `bench.sweep ... status`) never pays for them: the
implementation (methods/<name>.py, an `nn.Module` marked `@implements(name)`) is imported when
a run builds the method (`MethodCard.load`).  The order of the cards here is the order of every
list of methods (reports, plots, sweeps, the speed benchmark, test matrices).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from bench.methods.registry import declare_method
from bench.schema import MethodConfig, setting
from bench.search_space import Choice, LogUniform, SearchSpace, Uniform


@dataclass
class TemplateConfig(MethodConfig):
    """The settings of a method whose text side is the hand-crafted template."""

    template: str = setting("a photo of a {}.", "class prompt of the text tower: template.format(class name)")


# ---- zeroshot: methods/zeroshot.py ------------------------------------------
@dataclass
class ZeroShotConfig(TemplateConfig):
    templates: Optional[list[str]] = setting(None, "several templates: their features are averaged (ensemble)",
                                             min_length=1)

declare_method("zeroshot", "bench.methods.zeroshot:ZeroShot", ZeroShotConfig, label="Zero-shot", modes=("mt",))


# ---- full: methods/full.py --------------------------------------------------
#: the settings worth tuning (bench/search_space.py), around the reference's:
#: AdamW lr 1e-5, decay 0.1
FULL_SEARCH = SearchSpace(
    {"train.lr": LogUniform(2e-6, 5e-5), "train.weight_decay": LogUniform(1e-2, 0.3)})

declare_method("full", "bench.methods.full:FullFineTuning", TemplateConfig,
               label="Full FT", modes=("mt", "st"), search=FULL_SEARCH)


# ---- coop: methods/coop.py --------------------------------------------------
@dataclass
class CoOpConfig(MethodConfig):
    n_ctx: int = setting(16, "context tokens (ignored with ctx_init)", min=1)
    ctx_init: Optional[str] = setting(None, 'e.g. "a photo of a" (then n_ctx = its token count); null: N(0, 0.02)')
    csc: bool = setting(False, "class-specific context: one context per class (name, in MT) instead of one for all")
    class_token_position: Literal["end", "middle", "front"] = setting(
        "end", "where the class name goes: after the context | in its middle | before it")


#: the settings worth tuning (bench/search_space.py), around the reference's:
#: paper: SGD lr 0.002, 16 tokens, decay 5e-4
COOP_SEARCH = SearchSpace(
    {"train.lr": LogUniform(4e-4, 1e-2), "method.n_ctx": Choice((4, 8, 16)),
     "train.weight_decay": LogUniform(5e-5, 5e-3)})

declare_method("coop", "bench.methods.coop:CoOp", CoOpConfig, label="CoOp", modes=("mt", "st"), search=COOP_SEARCH)


# ---- cocoop: methods/cocoop.py ----------------------------------------------
@dataclass
class CoCoOpConfig(MethodConfig):
    ctx_init: Optional[str] = setting("a photo of a", "context initialised from these words (M = their "
                                                      "token count); null: N(0, 0.02) with n_ctx tokens")
    n_ctx: int = setting(4, "context tokens when ctx_init is null", min=1)
    meta_reduction: int = setting(16, "meta-net hidden width = embedding width / meta_reduction", min=1)


#: the settings worth tuning (bench/search_space.py), around the reference's:
#: paper: SGD lr 0.002; its context comes from ctx_init
COCOOP_SEARCH = SearchSpace(
    {"train.lr": LogUniform(4e-4, 1e-2), "train.weight_decay": LogUniform(5e-5, 5e-3)})

declare_method("cocoop", "bench.methods.cocoop:CoCoOp", CoCoOpConfig,
               label="CoCoOp", modes=("mt", "st"), search=COCOOP_SEARCH)


# ---- vpt: methods/vpt.py ----------------------------------------------------
@dataclass
class VPTConfig(TemplateConfig):
    n_tokens: int = setting(8, "visual prompt tokens per layer (0: zero-shot CLIP exactly)", min=0)
    deep: bool = setting(True, "true: fresh tokens replace the prompts at every prompted layer | false: input only")
    prompt_depth: Optional[int] = setting(None, "prompted vision layers when deep (null: all of them)", min=1)
    init_std: float = setting(0.02, "prompts ~ N(0, init_std^2), as MaPLe's VPT", min=0)


#: the settings worth tuning (bench/search_space.py), around the reference's:
#: MaPLe's CLIP-VPT: SGD lr 0.0025, 8 tokens
VPT_SEARCH = SearchSpace(
    {"train.lr": LogUniform(5e-4, 1.25e-2), "method.n_tokens": Choice((4, 8, 16)),
     "train.weight_decay": LogUniform(5e-5, 5e-3)})

declare_method("vpt", "bench.methods.vpt:VPT", VPTConfig, label="VPT", modes=("mt", "st"), search=VPT_SEARCH)


# ---- maple: methods/maple.py ------------------------------------------------
@dataclass
class MaPLeConfig(MethodConfig):
    n_ctx: int = setting(2, "context tokens per prompted layer", min=1)
    prompt_depth: Optional[int] = setting(None, "prompted layers per tower; null: MaPLe's 9 (all layers of a "
                                                "shallower model)", min=1)
    ctx_init: Optional[str] = setting("a photo of a", "first layer's context from the first n_ctx tokens of this "
                                                      'text; null: "X X {class}." and N(0, init_std^2)')
    init_std: float = setting(0.02, "deeper text prompts ~ N(0, init_std^2)", min=0)


#: the settings worth tuning (bench/search_space.py), around the reference's:
#: paper: SGD lr 0.0035, 2 tokens (at most the 4 words of ctx_init)
MAPLE_SEARCH = SearchSpace(
    {"train.lr": LogUniform(7e-4, 1.75e-2), "method.n_ctx": Choice((2, 4)),
     "train.weight_decay": LogUniform(5e-5, 5e-3)})

declare_method("maple", "bench.methods.maple:MaPLe", MaPLeConfig,
               label="MaPLe", modes=("mt", "st"), search=MAPLE_SEARCH)


# ---- mmap: methods/mmap.py --------------------------------------------------
@dataclass
class GroupingConfig:
    """How MmAP's tasks are split into groups (methods/grouping.py)."""

    strategy: Literal["gradient", "lookahead", "manual", "one_group", "singletons"] = setting(
        "gradient", "gradient: cosine of task gradients on a shared warm-up MmAP | lookahead: Fifty et al. "
        "2021 | manual: `groups` | one_group | singletons")
    n_groups: int = setting(2, "groups to find (gradient, lookahead)", min=1)
    objective: Literal["mean", "sum"] = setting(
        "mean", "mean: sum over tasks of the mean affinity to its group-mates (TAG's total affinity) | "
        "sum: sum of intra-group pairwise affinities (favours big groups)")
    groups: Optional[list[list[str]]] = setting(
        None, 'manual: lists of task names, e.g. [[Art, Clipart], [Product, "Real World"]]', min_length=1)
    warmup_epochs: int = setting(1, "warm-up epochs of the shared MmAP that measures affinities", min=1)
    warmup_steps: Optional[int] = setting(None, "cap on warm-up steps (null: whole epochs)", min=1)
    affinity_file: Optional[str] = setting(None, "a previous run's grouping/groups.json or affinity.csv: "
                                                 "reuse it, no warm-up")


@dataclass
class MmAPConfig(MethodConfig):
    mode: str = setting("grouped", "grouped: group-shared + task-specific MmAPs | mt: one MmAP | st: one per task")
    n_ctx: int = setting(8, "tokens of a group-shared (grouped) or the only (mt/st) MmAP", min=1)
    n_task_ctx: int = setting(8, "tokens of each task-specific MmAP (grouped mode; 0: none)", min=0)
    prompt_depth: Optional[int] = setting(None, "prompted layers per tower (null: every layer of the "
                                                "shallower tower)", min=1)
    source_dim: Optional[int] = setting(None, "d_s (null: gcd(d_text, d_vision), 256 for ViT-B/16)", min=1)
    init_std: float = setting(0.02, "source prompt ~ N(0, init_std^2)", min=0)
    factor_init: Literal["ones", "normal"] = setting("ones", "U_t and U_v start at ones | N(0, init_std^2)")
    template: str = setting("{}.", 'text after the placeholders: "X ... X {class}."')
    grouping: GroupingConfig = field(default_factory=GroupingConfig)

    def warmup_on_every_task(self) -> Optional[str]:
        """Grouped mode with a `gradient` or `lookahead` grouping and no affinity_file trains a shared
        warm-up MmAP on every task at once to measure the affinities (methods/grouping.py)."""
        if self.mode != "grouped" or self.grouping.affinity_file or self.grouping.strategy not in (
                "gradient", "lookahead"):
            return None
        return (f"MmAP's grouping warm-up (method.grouping.strategy={self.grouping.strategy}) trains a shared MmAP on "
                "every domain at once to measure the task affinities; choose the groups without it: "
                "method.grouping.strategy=one_group, singletons or manual (with method.grouping.groups), or "
                "method.grouping.affinity_file=<a multitask run's grouping/groups.json>")

    @classmethod
    def without_warmup_on_every_task(cls, mode: str) -> tuple[str, ...]:
        """protocol=sequential's default for grouped MmAP: one group (a shared MmAP carried through the
        stages) beside each domain's own task MmAP (docs/protocols.md)."""
        return ("method.grouping.strategy=one_group",) if mode == "grouped" else ()


#: the settings worth tuning (bench/search_space.py), around the reference's:
#: MaPLe's training, lr 0.0035; our default 8 tokens
MMAP_SEARCH = SearchSpace(
    {"train.lr": LogUniform(7e-4, 1.75e-2), "method.n_ctx": Choice((4, 8, 16)),
     "train.weight_decay": LogUniform(5e-5, 5e-3)})

declare_method("mmap", "bench.methods.mmap:MmAP", MmAPConfig,
               label="MmAP", modes=("grouped", "mt", "st"), search=MMAP_SEARCH)


# ---- clip_adapter: methods/clip_adapter.py ----------------------------------
@dataclass
class CLIPAdapterConfig(TemplateConfig):
    ratio: float = setting(0.2, "residual ratio a: f' = a adapter(f) + (1 - a) f", min=0.0, max=1.0)
    reduction: int = setting(4, "bottleneck width = embedding width / reduction", min=1)


#: the settings worth tuning (bench/search_space.py), around the reference's:
#: CoOp's training, lr 0.002; the paper's ratio 0.2
CLIP_ADAPTER_SEARCH = SearchSpace(
    {"train.lr": LogUniform(4e-4, 1e-2), "method.ratio": Uniform(0.1, 0.6),
     "train.weight_decay": LogUniform(5e-5, 5e-3)})

declare_method("clip_adapter", "bench.methods.clip_adapter:CLIPAdapter", CLIPAdapterConfig,
               label="CLIP-Adapter", modes=("mt", "st"), search=CLIP_ADAPTER_SEARCH)


# ---- bitfit: methods/bitfit.py ----------------------------------------------
#: the settings worth tuning (bench/search_space.py), around the reference's:
#: BitFit's grid 1e-4..1e-3 and below; no decay (it would pull biases to 0)
BITFIT_SEARCH = SearchSpace(
    {"train.lr": LogUniform(2e-5, 1e-3)})

declare_method("bitfit", "bench.methods.bitfit:BitFit", TemplateConfig,
               label="BitFit", modes=("mt", "st"), search=BITFIT_SEARCH)


# ---- lora: methods/lora.py --------------------------------------------------
@dataclass
class LoRAConfig(TemplateConfig):
    rank: int = setting(2, "rank r of each low-rank update B A", min=1)
    alpha: float = setting(1.0, "LoRA alpha: the update is scaled by alpha / sqrt(r) or alpha / r", above=0)
    scaling: Literal["sqrt_rank", "rank"] = setting(
        "sqrt_rank", "s = alpha / sqrt(r) (CLIP-LoRA's released code) | alpha / r (Hu et al.)")
    dropout: float = setting(0.25, "dropout on the LoRA input while training (one mask per projection)",
                             min=0.0, max=0.99)


#: the settings worth tuning (bench/search_space.py), around the reference's:
#: CLIP-LoRA: AdamW lr 2e-4, rank 2, decay 0.01
LORA_SEARCH = SearchSpace(
    {"train.lr": LogUniform(4e-5, 1e-3), "method.rank": Choice((1, 2, 4, 8)),
     "train.weight_decay": LogUniform(1e-3, 0.1)})

declare_method("lora", "bench.methods.lora:LoRA", LoRAConfig, label="LoRA", modes=("mt", "st"), search=LORA_SEARCH)
