"""Multi-domain datasets for clip-prompt-bench (each domain is one task).

Note: this top-level package is named ``datasets`` like the Hugging Face
library; inside this repository ``import datasets`` is ours. Never import the
Hugging Face one from here.

Public API::

    from datasets import build_dataset, DATASETS, register_dataset
    from datasets import Task, MultiDomainDataset, DatasetError
    from datasets import ImageListDataset, collate_skip_unreadable, readable_classname
"""
from .base import DatasetError, ImageListDataset, MultiDomainDataset, Task, collate_skip_unreadable
from .registry import DATASETS, build_dataset, register_dataset
from .splits import readable_classname

# Importing the builder modules registers them.
from . import imagefolder, minidomainnet, officehome, toy  # noqa: E402,F401

__all__ = [
    "DATASETS", "DatasetError", "ImageListDataset", "MultiDomainDataset", "Task",
    "build_dataset", "collate_skip_unreadable", "readable_classname", "register_dataset",
]
