"""`edge-sed convert` (a trained run to bundles: convert.command) and `edge-sed verify` (re-check
bundles: edge_sed.core.verify)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edge_sed.cli.common import _emit_json, _import_extra, progress_bar
from edge_sed.core.settings import BUNDLE_NAMES


@click.command(context_settings={"max_content_width": 100})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Bundles directory: one sub-directory per level, plus convert-report.json.",
)
@click.option(
    "--levels",
    default="all",
    show_default=True,
    help=f"all, or a comma list of {', '.join(BUNDLE_NAMES)} (the -streaming forms are LSTM only).",
)
@click.option(
    "--data",
    "data_path",
    help="Where the run's data set is now (default: the path in its "
    "config.json); the test split measures accuracy, the training split calibrates int8.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the conversion report as JSON.")
def convert(run_dir, out_dir, levels, data_path, as_json):
    """Convert a trained run to TFLite bundles, one per quantization level, each proven against
    the torch model: Keras port parity (< 1e-5) is checked first, then every bundle's accuracy on
    the test split through LiteRT; the MCU bundles (int8, int8-streaming, int16x8-streaming) also
    get a tflite-micro arena size, a TFLM-vs-LiteRT comparison and model_data.h/.cc. Levels the
    converter cannot produce are listed as unsupported with its reason. Exits 2 if any failed."""
    command = _import_extra("convert.command", "convert")
    try:
        names = command.parse_levels(levels)
    except ValueError as exc:
        raise click.UsageError(str(exc))

    def log(message):
        if not as_json and not sys.stderr.isatty():
            click.echo(message, err=True)

    say = (lambda *a, **k: None) if as_json else click.echo
    with progress_bar("converting", 1, enabled=not as_json) as advance:
        report = command.convert(run_dir, out_dir, names, data=data_path, say=say, log=log, progress=advance)
    if as_json:
        _emit_json(report)
    else:
        click.echo(command.summary_line(report, out_dir))
    error = command.failed_error(report)
    if error is not None:
        raise error


@click.command(context_settings={"max_content_width": 100})
@click.argument(
    "bundle_path", metavar="BUNDLE", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--data",
    "data_path",
    help="Also re-measure accuracy on a test split: a data set path, or "
    "'run' for the one recorded in the manifest's provenance (needs the data on this machine).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verification report as JSON.")
def verify(bundle_path, data_path, as_json):
    """Re-check a bundle (or every bundle in a bundles directory): model.tflite's sha256 and size,
    the manifest's fields, the TFLite identifier and the model's inputs/outputs against the
    manifest, the operator list against the manifest's, the C array against model.tflite, the
    labels against the loaded model's outputs, and parity: the stored check windows (check.npz)
    re-run through LiteRT must match the conversion-time outputs (float levels within 1e-4,
    integer levels within 2 output steps, at least 1e-3). With --data, also the test-split
    accuracy (within 0.01 overall error of the recorded one). Needs no TensorFlow or torch."""
    from edge_sed.core.verify import verify_bundles, verify_line

    test_split = None
    if data_path:

        def test_split(provenance):
            train_data = _import_extra("train.data", "train")
            return train_data.run_test_split(provenance, None if data_path == "run" else data_path)

    reports = []
    for path, report in verify_bundles(bundle_path, test_split):
        reports.append(report)
        if not as_json:
            click.echo(verify_line(path, report))
    if as_json:
        _emit_json(reports if len(reports) > 1 else reports[0])
