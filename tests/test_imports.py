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
