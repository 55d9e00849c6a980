"""edge_sed is what a Pi installs: it must import and run its CLI without torch, TensorFlow,
tflite-micro, and with sounddevice and matplotlib loaded only by the commands that use them."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {"torch", "tensorflow", "tf_keras", "keras", "tflite_micro", "jax",
               "sounddevice", "matplotlib", "scipy"}
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Blocker())
    """
)


def run_blocked(code: str, tmp_path):
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKER + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def test_every_edge_sed_module_imports_without_heavy_packages(tmp_path):
    result = run_blocked(
        """
        import importlib, pkgutil, edge_sed
        names = [m.name for m in pkgutil.walk_packages(edge_sed.__path__, "edge_sed.")]
        for name in names:
            importlib.import_module(name)
        heavy = BLOCKED & {n.split(".")[0] for n in sys.modules}
        assert not heavy, heavy
        print("imported", len(names))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_cli_help_and_data_commands_run_without_heavy_packages(tmp_path):
    result = run_blocked(
        f"""
        from edge_sed.cli import main
        for argv in (["--help"], ["data", "--help"], ["train", "--help"], ["listen", "--help"],
                     ["data", "synth", "--out", r"{tmp_path / "d"}", "--counts", "2:2:2:2", "--json"],
                     ["data", "stats", r"{tmp_path / "d"}", "--no-png", "--json"]):
            assert main(argv) == 0, argv
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


# The one-way rules between edge_sed's parts, read from the source (every import, also the ones
# inside functions). core is the device runtime: it imports only itself. Nothing imports the CLI.
# Outside the CLI (whose commands load train, convert or firmware_sim when they run), edge_sed
# imports none of the host packages: listen --profile's MCU view (firmware_sim.listen_mcu) and
# report's device simulation (firmware_sim.report_sim) are handed in by the CLI. The demo is the
# one orchestrator outside the CLI: it loads them by name (importlib) when it runs, and an import
# by name counts as an import here.
ORCHESTRATORS = ("edge_sed.cli", "edge_sed.demo")
IMPORT_BY_NAME = {"import_module", "_import_extra", "_extra"}


def _imports(path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import (edge_sed uses absolute imports)")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in IMPORT_BY_NAME and isinstance(node.args[0].value, str):
                yield node.args[0].value


def test_the_import_rules_between_edge_sed_parts_hold():
    from pathlib import Path

    import edge_sed

    root = Path(edge_sed.__file__).parent
    broken = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(("edge_sed", *parts)).removesuffix(".__init__")
        for name in _imports(path):
            top = name.split(".")[0]
            in_core = module.startswith("edge_sed.core")
            if in_core and top == "edge_sed" and not name.startswith("edge_sed.core"):
                broken.append(f"{module} (core) imports {name}")
            if name.startswith("edge_sed.cli") and not module.startswith("edge_sed.cli"):
                broken.append(f"{module} imports the CLI ({name})")
            host = top in {"train", "convert", "firmware_sim"}
            if host and not module.startswith(ORCHESTRATORS):
                broken.append(f"{module} imports {name}")
    assert not broken, broken
