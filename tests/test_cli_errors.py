"""The CLI speaks to people: coded errors without tracebacks, repeated warnings once."""

from __future__ import annotations

import warnings

import pytest
import typer

from textcat_kit import cli
from textcat_kit.errors import DataError


def _fake_app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run(fail: bool = False) -> None:
        for _ in range(58):
            warnings.warn("[W001] Label 'x' has 1 positive example(s)", UserWarning, stacklevel=1)
        warnings.warn("[W002] something else", UserWarning, stacklevel=1)
        if fail:
            raise DataError("[E005] data.csv:3: malformed record (x). Fix the record.")

    return app


def test_error_prints_code_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "app", _fake_app())
    monkeypatch.delenv("TEXTCAT_KIT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--fail"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "error: [E005] data.csv:3" in err
    assert "Traceback" not in err
    assert "--debug" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_traceback(
    how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "app", _fake_app())
    args = ["--fail"]
    if how == "flag":
        args.append("--debug")
    else:
        monkeypatch.setenv("TEXTCAT_KIT_DEBUG", "1")
    with pytest.raises(SystemExit):
        cli.main(args)
    err = capsys.readouterr().err
    assert "Traceback" in err and "[E005]" in err


def test_repeated_warnings_summarised_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "app", _fake_app())
    cli.main([])
    err = capsys.readouterr().err
    assert err.count("[W001] Label 'x'") == 4  # three live, once in the summary line
    assert "[W009]" in err and "occurred 58 times" in err
    assert err.count("[W002]") == 1


def test_usage_errors_keep_click_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["tune", "/no/such/model"])
    assert exit_.value.code == 2
