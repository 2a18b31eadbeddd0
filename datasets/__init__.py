"""Multi-domain datasets for clip-prompt-bench (each domain is one task).

Installed as `bench.datasets` (pyproject.toml maps this folder there), so it never collides
with Hugging Face's `datasets`, present in most ML environments.  Imported under any other
name (from a checkout's root, `import datasets`), this folder hands the import over to the
installed package of that name, so Hugging Face's `datasets` still works there.

Public API::

    from bench.datasets import build_dataset, DATASETS, register_dataset
    from bench.datasets import Task, MultiDomainDataset, DatasetError
    from bench.datasets import readable_classname
    from bench.datasets.decoding import ImageListDataset, collate_skip_unreadable  # torch: the loaders' side
"""
if __name__ == "bench.datasets":
    from .base import DatasetError, MultiDomainDataset, Task
    from .registry import DATASETS, build_dataset, register_dataset
    from .splits import readable_classname

    # Importing the builder modules registers them.
    from . import domainnet, imagefolder, minidomainnet, officehome, toy  # noqa: F401

    __all__ = [
        "DATASETS", "DatasetError", "MultiDomainDataset", "Task", "build_dataset", "readable_classname",
        "register_dataset",
    ]
else:
    from bench.import_names import hand_over

    hand_over(__name__, __file__)
