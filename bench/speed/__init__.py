"""`python -m bench.speed [--baseline|--fast|--compare] [overrides]`: how fast each method
trains and evaluates, with the exact speed-ups of bench/speedups.py on and off.

Per method and mode it measures, after warm-up: training images/s, evaluation images/s
(evaluation repeated as every epoch does: the first, warm-up evaluation fills the caches),
peak memory of a training step, and where a step's time goes (text tower, image tower,
backward, data loading; the rest is "other": optimiser, loss, prompt assembly).  `--compare`
(the default) runs the baseline path and the optimised path one after the other in this
process and prints their ratios, so a noisy machine affects both alike.

Peak memory is the growth over the measured training steps above the memory held before
them (weights, optimiser state and caches excluded): on CUDA `max_memory_allocated`, on CPU
the resident set's high-water mark (VmHWM, reset through /proc/self/clear_refs after
`malloc_trim`, so each phase is measured on its own in one process).

Data: `speed.data=synthetic` (default) draws random images for tasks that share Office-Home's
65 class names; `speed.data=real` uses dataset=...'s loaders (workers, pinned memory,
persistent workers from runtime.num_workers) and also times decoding + augmentation alone.
It also times the wrapper against open_clip (`speed.wrapper_rounds`): `PromptableCLIP`'s
encode_image / encode_text with no prompts against the model's own, forward + backward and
forward only, so a slowdown of the wrapper shows as a ratio in every run.
Rows are kept in results/speed.json (keyed by setting, so `-m` sweeps add up) and the table
is written to results/speed.md.

The package by concern: `workloads` (what is measured on), `instruments` (timers, peak
memory), `measure` (one method on one path; the wrapper against open_clip), `tables` (the
Markdown report), `benchmark` (`run_speed`, the whole run) and `__main__` (the command).
This package file imports nothing, so that `--help` and a config error answer without torch.
"""
