"""The data package is cheap to import and exposes its public API lazily."""
from __future__ import annotations

import subprocess
import sys


def test_import_and_reading_do_not_load_fastai_or_torch(synthetic_dir):
    code = ("import sys, lesionkit.data as d; ds = d.load_dataset(sys.argv[1]); "
            "from lesionkit.data.splits import grouped_kfold; grouped_kfold(ds.df, 3); "
            "print(sorted(m for m in ('fastai', 'torch', 'albumentations', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(synthetic_dir)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_resolve():
    import lesionkit.data as d

    for name in ("load_dataset", "LesionDataset", "grouped_kfold", "grouped_holdout", "assert_no_group_leak",
                 "MetaEncoder", "check_dataset", "detect_format"):
        assert callable(getattr(d, name)) or isinstance(getattr(d, name), type)
    assert "image_dls" in dir(d)


def test_cli_entry_point(synthetic_dir):
    out = subprocess.run([sys.executable, "-m", "lesionkit", "data", "check", str(synthetic_dir), "--quick"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "format synthetic" in out.stdout and "OK: no errors" in out.stdout


def test_cli_reader_options(shared_data, capsys):
    from lesionkit.cli.data import main

    assert main(["check", str(shared_data / "ph2"), "--quick", "--opt", "target=asymmetry"]) == 0
    assert "class counts: 0 117, 1 31, 2 52" in capsys.readouterr().out
