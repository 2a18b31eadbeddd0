"""The protocols a run can follow on one pipeline (`protocol`; DESIGN.md, fourth round).

* `multitask` (the default, the MmAP paper's): every domain trains, is validated and tested.
* `leave_one_out` (DomainBed's domain generalisation): `dataset.target` is held out; training
  and validation see the source domains only, the target is tested.  Model selection within a
  run (`train.selection`): `val` on the sources' validation splits (DomainBed's training-domain
  validation, the default), `oracle` on the target's validation split (an upper bound, labelled
  as such), `last` the last epoch.
* `sequential` (domains one after another in `dataset.task_order`, null: the dataset's order;
  the continual-learning setting of CMAP and ChordPrompt): stage k trains domain
  `task_order[k]` alone, starting from stage k-1's parameters, and selects on that domain's
  validation split (`stage_roles`); after every stage every domain's val and test accuracy is
  measured (the accuracy matrices; metrics: bench/continual.py; the stages: bench/sequential.py).

`task_roles` is the rule as data: which tasks each split serves.  The data pipeline
(bench/data.py) draws training batches from `train` only and evaluates each split on its own
tasks; the engine knows nothing of protocols.

A mode whose parameters can serve a domain they never saw is `mt` (one set shared by every
task; zero-shot trains nothing): `st` and MmAP `grouped` keep a set per task (and group) and
have nothing learned to apply to the held-out domain, so they are refused at start-up
(`UNSEEN_TARGET_MODES`).  DomainBed's leave-one-domain-out *selection* is not offered: it needs
extra runs that hold out a second (source) domain each, i.e. a run with two held-out domains
and a selection across runs of different data: see docs/protocols.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from bench.errors import ConfigError

PROTOCOLS = ("multitask", "leave_one_out", "sequential")
#: modes that can serve a domain no parameter was trained on
UNSEEN_TARGET_MODES = ("mt",)


@dataclass(frozen=True)
class TaskRoles:
    """The task names each split serves: `train` (training batches), `val` (the selection
    split), `test` (the reported split)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def of(self, split: str) -> tuple[str, ...]:
        return {"train": self.train, "val": self.val, "test": self.test}[split]


def task_roles(protocol: str, tasks: Sequence[str], target: Optional[str] = None,
               selection: str = "val") -> TaskRoles:
    """Which tasks train, select and are tested under `protocol` (`target`: the held-out
    domain of leave_one_out; `selection=oracle` selects on its validation split)."""
    tasks = tuple(tasks)
    if protocol != "leave_one_out":
        return TaskRoles(tasks, tasks, tasks)
    sources = tuple(t for t in tasks if t != target)
    return TaskRoles(sources, (target,) if selection == "oracle" else sources, tasks)


def stage_roles(order: Sequence[str], stage: int) -> TaskRoles:
    """Stage `stage` (from 0) of protocol=sequential: domain `order[stage]` alone trains and is
    validated (model selection within the stage); every domain is tested."""
    domain = order[stage]
    return TaskRoles((domain,), (domain,), tuple(order))


def resolved_task_order(task_order: Optional[Sequence[str]], domains: Sequence[str]) -> tuple[str, ...]:
    """`dataset.task_order`, or the dataset's domain order when it is null (checked)."""
    if task_order is None:
        return tuple(domains)
    check_task_order(task_order, domains)
    return tuple(task_order)


def check_task_order(task_order: Sequence[str], domains: Sequence[str]) -> None:
    """`task_order` names every domain of `domains` exactly once."""
    order, domains = list(task_order), list(domains)
    unknown = [d for d in order if d not in domains]
    repeated = sorted({d for d in order if order.count(d) > 1})
    missing = [d for d in domains if d not in order]
    if unknown or repeated or missing:
        wrong = "; ".join(part for part in (
            f"unknown: {', '.join(map(repr, unknown))}" if unknown else "",
            f"repeated: {', '.join(map(repr, repeated))}" if repeated else "",
            f"missing: {', '.join(map(repr, missing))}" if missing else "") if part)
        raise ConfigError(f"dataset.task_order={order} must name every domain of the dataset exactly once, in the "
                          f"order they are trained ({wrong}); the domains are {', '.join(domains)}. Pass e.g. "
                          f"dataset.task_order=[{','.join(domains)}] (quote a name with a space: "
                          "'dataset.task_order=[\"Real World\",Art]'), or leave it out for the dataset's order.")


def check_protocol(protocol: str, target: Optional[str], task_order: Optional[Sequence[str]],
                   domains: Optional[Sequence[str]], selection: str, method: str, mode: str,
                   modes: Sequence[str]) -> None:
    """Every rule of the protocol settings, as one ConfigError paragraph each; `domains` are
    the dataset's domains when known (the config lists them, or the data was listed), None
    otherwise (then `check_target` runs once the data is listed).  Cheap: before anything loads."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol={protocol!r} is not a protocol: it must be one of {', '.join(PROTOCOLS)} "
                          "(multitask: train and test every domain, the default | leave_one_out: hold out "
                          "dataset.target | sequential: train the domains one after another in "
                          "dataset.task_order). Fix it on the command line (protocol=...).")
    if protocol != "leave_one_out" and target is not None:
        trains = "every domain in turn (dataset.task_order)" if protocol == "sequential" else "and tests every domain"
        raise ConfigError(f"dataset.target={target!r} is set, but protocol={protocol} trains {trains}: there is "
                          f"nothing to hold out. Pass protocol=leave_one_out to hold {target!r} out, or remove "
                          "dataset.target.")
    if protocol == "sequential":
        if selection == "oracle":
            raise _oracle_refused("under protocol=sequential each stage selects on its own domain's validation "
                                  "split (train.selection=val) or takes its last epoch (last). Use "
                                  "train.selection=val or last.")
        if task_order is not None and domains is not None:
            check_task_order(task_order, domains)
        return
    if task_order is not None:
        raise ConfigError(f"dataset.task_order={list(task_order)} is set, but protocol={protocol}: the order of "
                          "the domains only means something under protocol=sequential. Remove dataset.task_order.")
    if protocol == "multitask":
        if selection == "oracle":
            raise _oracle_refused("use train.selection=val or last, or pass protocol=leave_one_out "
                                  "dataset.target=<domain>.")
        return
    if target is None:
        names = f" ({', '.join(domains)})" if domains else ""
        raise ConfigError("protocol=leave_one_out needs the held-out domain: pass dataset.target=<domain>, one of "
                          f"the dataset's domains{names}.")
    if mode not in UNSEEN_TARGET_MODES:
        working = [m for m in modes if m in UNSEEN_TARGET_MODES]
        raise ConfigError(f"method.mode={mode} of {method} keeps a parameter set per task (and group), so under "
                          f"protocol=leave_one_out it has nothing learned to apply to the held-out domain "
                          f"{target!r}, which no set was trained on. Modes of {method} that serve an unseen "
                          f"domain: {', '.join(working) or 'none'} (one set shared by every domain). Pass "
                          f"method.mode={working[0] if working else 'mt'}.")
    if domains is not None:
        check_target(target, domains)


def _oracle_refused(instead: str) -> ConfigError:
    return ConfigError("train.selection=oracle selects on the held-out domain's validation split, which only "
                       f"protocol=leave_one_out has; {instead}")


def check_target(target: str, domains: Sequence[str]) -> None:
    """The held-out domain is one of `domains` and leaves at least one source domain."""
    domains = list(domains)
    if target not in domains:
        raise ConfigError(f"dataset.target={target!r} is not a domain of this dataset: its domains are "
                          f"{', '.join(domains)}. Pass dataset.target=<one of them> (quote a name with a space: "
                          "'dataset.target=\"Real World\"').")
    if len(domains) < 2:
        raise ConfigError(f"dataset.target={target!r} leaves no source domain to train on: the dataset's domains "
                          f"are only {', '.join(domains)}. protocol=leave_one_out needs at least two domains "
                          "(dataset.domains lists them; null: every sub-folder).")
