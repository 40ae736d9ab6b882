"""Run a benchmark: ``python -m benchmarks <name> [options]`` from the repository root.

``python -m benchmarks`` (or ``--list``) lists the benchmarks with the first line of their
docstrings; ``python -m benchmarks <name> --help`` shows a benchmark's options.

Adding a benchmark
------------------
Drop a module ``benchmarks/<name>.py`` (names starting with ``_`` are helpers, not
benchmarks). Its interface:

* a module docstring whose first line says what it measures (listed by ``--list``), and
  whose body says how to read the figures;
* ``main(argv: list[str] | None = None) -> None``: parse ``argv`` (argparse or typer;
  ``None`` means the command line), run, print the figures. A typer ``app`` without a
  ``main`` works too; a ``main()`` that reads ``sys.argv`` gets ``[name, *argv]`` there.
* results: write them to ``benchmarks/results/<name>*.json`` (``_common.write_results``
  adds the command line, the machine and the time), so that every figure in the docs
  names the command that regenerates it. Reuse the package's code
  (``textcat_kit.maths.metrics``, ``textcat_kit.evaluation``, ...): no private copies of
  metrics, and no ``sys.path`` edits (``benchmarks`` is a package; run from the
  repository root with the package installed);
* import heavy optional dependencies inside ``main`` so ``--list`` stays fast, and
  print, never assert, timings (tests may smoke-test a benchmark, never time it).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

from textcat_kit.errors import ConfigError, Errors

PACKAGE_DIR = Path(__file__).resolve().parent


def available() -> dict[str, str]:
    """Benchmark name -> first line of its docstring (read without importing it)."""
    found = {}
    for info in pkgutil.iter_modules([str(PACKAGE_DIR)]):
        if info.name.startswith("_"):
            continue
        found[info.name] = _summary(PACKAGE_DIR / f"{info.name}.py")
    return dict(sorted(found.items()))


def _summary(path: Path) -> str:
    import ast

    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf8"))) or ""
    except SyntaxError:
        return "(does not parse)"
    return doc.strip().splitlines()[0] if doc.strip() else ""


def run(name: str, argv: list[str]) -> None:
    """Import ``benchmarks.<name>`` and run it with ``argv``."""
    names = available()
    if name not in names:
        raise ConfigError(Errors.E252.format(name=name, available=", ".join(names)))
    module = importlib.import_module(f"{__package__ or 'benchmarks'}.{name}")
    main = getattr(module, "main", None)
    if main is not None and inspect.signature(main).parameters:
        main(argv)
        return
    sys.argv = [name, *argv]
    if main is not None:
        main()
    else:
        module.app(args=argv)


def cli(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("--list", "-l", "list"):
        for name, summary in available().items():
            print(f"{name:22s} {summary}")
        return
    if args[0] in ("-h", "--help"):
        print(__doc__)
        return
    try:
        run(args[0], args[1:])
    except ConfigError as error:
        print(error, file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    cli()
