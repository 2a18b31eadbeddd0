"""`python -m bench.prepare NAME --archive FILE... --root DIR`: from the official downloads to a
checked dataset, offline.

Usage::

    python -m bench.prepare officehome --archive OfficeHomeDataset_10072016.zip --root /data/office_home
    python -m bench.prepare domainnet --archive clipart.zip ... sketch.zip clipart_train.txt clipart_test.txt ... \\
        --root /data/domainnet
    python -m bench.prepare minidomainnet --archive clipart.zip painting.zip real.zip sketch.zip splits_mini.zip \\
        --root /data/domainnet
    python -m bench.prepare domainnet --urls      # what to download (nothing is downloaded here)

Extracts the archives into DIR with the folder names our builders accept, never overwriting
a file of yours, resuming an interrupted extraction (datasets/archives.py), then runs the
check of `python -m bench.check` on the result: every image opened and each domain's count
against the published one.  Exit codes: 0 complete, 1 the tree loads but the check found
problems (a short copy, unreadable files), 2 it could not be prepared (one paragraph, no traceback).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from bench.check import dataset_dotlist, load_dataset_config
from bench.datasets.archives import DATASETS, extract, list_urls
from bench.datasets.dataset_report import check_dataset
from bench.datasets.published_counts import Expected
from bench.errors import EXIT_USER_ERROR, UserError
from bench.input_checks import check_writable


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=DATASETS, help="the dataset")
    p.add_argument("--archive", nargs="+", default=[], metavar="FILE", help="the downloaded zips and split lists")
    p.add_argument("--root", help="the folder to extract into (dataset.root of the runs)")
    p.add_argument("--urls", action="store_true", help="print the downloads this dataset needs and stop")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a dataset.KEY=VALUE override for the final check, e.g. --set domains=[clipart,real]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    return p


def main(argv: Sequence[str] | None = None, expected: Expected | None = None) -> int:
    """The command; `expected` replaces the published counts of the final check (tests)."""
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    print(f"{args.name} is prepared from these downloads (nothing is downloaded here):")
    for line in list_urls(args.name):
        print(f"  {line}")
    if args.urls:
        return 0
    if not args.root:
        print("error: --root DIR is required (the folder to extract into)", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        dataset_dotlist(args.set)  # every --set, and the root, before a file is written
        check_writable({"--root": args.root}, "bench.prepare")
        extract(args.name, args.archive, args.root, progress=False if args.no_progress else None)
        report = check_dataset(load_dataset_config(args.name, [f"root={args.root}", *args.set]), expected=expected)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(report.format())
    if report.ok:
        print(f"Ready: python -m bench.run dataset={args.name} dataset.root={args.root}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
