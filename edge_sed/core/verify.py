"""`edge-sed verify`: re-check a bundle, or every bundle of a bundles directory, with
edge_sed.core.bundle.verify_bundle, and say in one line per bundle what was checked."""

from __future__ import annotations

import os
from pathlib import Path

from edge_sed.core.bundle import MANIFEST_FILE, load_bundle, verify_bundle
from edge_sed.core.errors import EdgeSedError, printable


def bundle_paths(path: str | os.PathLike) -> list[Path]:
    """``[path]`` when it is a bundle, else its bundle sub-directories (hidden ones skipped);
    EdgeSedError when there is none."""
    path = Path(path)
    paths = (
        [path]
        if (path / MANIFEST_FILE).exists()
        else sorted(
            p
            for p in path.iterdir()
            if p.is_dir() and (p / MANIFEST_FILE).exists() and not p.name.startswith(".")
        )
    )
    if not paths:
        raise EdgeSedError(f"{path}: no manifest.json here or in its sub-directories: not a bundle")
    return paths


def verify_bundles(path: str | os.PathLike, test_split=None):
    """Yield ``(bundle path, verify_bundle report)`` for every bundle at ``path``, in order (the
    first failure raises). ``test_split(provenance)``, when given, returns the test split (``.x``,
    ``.y``) that bundle's accuracy is re-measured on."""
    for bundle in bundle_paths(path):
        windows = y = None
        if test_split is not None:
            split = test_split(load_bundle(bundle).manifest["provenance"])
            windows, y = split.x, split.y
        yield bundle, verify_bundle(bundle, windows, y)


def verify_line(path, report: dict) -> str:
    """One line: what verify_bundle checked on the bundle at ``path``."""
    line = (
        f"{printable(str(path))}: OK  {report['level']} {report['form']}, {report['model_bytes']} "
        "bytes, "
        f"sha256 ok, manifest ok (semantic sha256 ok), ops ok ({sum(report['ops'].values())} ops)"
    )
    if "c_array" in report:
        line += ", C array ok"
    if "check_windows" in report:
        line += (
            f", {report['check_windows']} check windows within {report['tolerance']:.2g} "
            f"(max diff {report['max_diff_vs_conversion']:.2g}; "
            f"vs torch {report['max_diff_vs_torch']:.2g})"
        )
    if "test_windows" in report:
        line += (
            f", test overall error {report['overall_error']:.4f} (recorded "
            f"{report['recorded_overall_error']:.4f})"
        )
    return line
