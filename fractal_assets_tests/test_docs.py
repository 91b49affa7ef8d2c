"""The docs cannot drift from the code: the CLI reference names every command and option of
the parser (and no other), the API reference is the generator's output, and the data model
names every table, column, index and Redis key format."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

from fractal_assets.cli import build_parser
from fractal_assets.hot.keys import Keys
from fractal_assets.warm.db import connect
from fractal_assets.warm.schema import migrate

DOCS = Path(__file__).resolve().parents[1] / "docs"
GLOBAL = "Global options"


def load_gen_api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sections(text: str, heading: str) -> dict[str, str]:
    """Title -> body of every level-2 section whose heading matches ``heading`` (one group)."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    out = {}
    for part in parts:
        title, _, body = part.partition("\n")
        match = re.fullmatch(heading, title.strip())
        if match:
            out[match.group(1)] = body
    return out


def code_words(text: str) -> set[str]:
    """Words (options included) inside `code spans`."""
    spans = re.findall(r"`([^`\n]+)`", text)
    return set(re.findall(r"--?[\w-]+|[\w-]+", " ".join(spans)))


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def documented_names(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """(names the doc must show, options that exist): options, positionals (upper case, or
    their choices); options hidden from --help exist but need no documentation."""
    required, existing = set(), set()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        existing.update(action.option_strings)
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            required.update(action.option_strings)
        elif action.choices:
            required.update(action.choices)
        else:
            required.add(action.dest.upper())
    return required, existing


def test_cli_md_documents_every_subcommand_and_option_and_no_other() -> None:
    parser = build_parser()
    text = (DOCS / "cli.md").read_text()
    documented = sections(text, r"`fractal ([\w-]+)`")
    documented[GLOBAL] = sections(text, f"({GLOBAL})")[GLOBAL]
    commands = {GLOBAL: parser, **subcommands(parser)}
    assert set(documented) == set(commands), "cli.md sections differ from the subcommands"
    for name, sub in commands.items():
        required, existing = documented_names(sub)
        words = code_words(documented[name])
        assert required <= words, f"cli.md, {name}: not documented: {sorted(required - words)}"
        options = {w for w in words if w.startswith("--")} - {"--help"}
        if name != GLOBAL:
            existing |= documented_names(parser)[1]
        assert options <= existing, f"cli.md, {name}: options that do not exist: {sorted(options - existing)}"


def test_api_md_is_the_generators_output() -> None:
    committed = (DOCS / "api.md").read_text()
    assert committed == load_gen_api().render(), "docs/api.md is out of date: run python docs/gen_api.py"


def test_data_model_md_names_every_table_column_index_and_key_format(tmp_path: Path) -> None:
    text = (DOCS / "data-model.md").read_text()
    conn = connect(tmp_path / "warm.db")
    migrate(conn)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ORDER BY name", ("fractal_%",))]
    assert tables
    for table in tables:
        section = re.search(rf"^### `{table}`\n(.*?)(?=^##)", text, flags=re.MULTILINE | re.DOTALL)
        assert section, f"data-model.md has no section for {table}"
        columns = [r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))]
        missing = [c for c in columns if f"| `{c}` |" not in section.group(1)]
        assert not missing, f"data-model.md, {table}: columns not listed: {missing}"
    indexes = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")]
    assert all(f"`{i}`" in text for i in indexes), indexes
    conn.close()

    keys = Keys()
    for name, method in inspect.getmembers(keys, inspect.ismethod):
        if name.startswith("_"):
            continue
        args = [p.upper() for p in inspect.signature(method).parameters]
        key = method(*args)
        assert f"`{key}`" in text, f"data-model.md does not show the key format of Keys.{name}: {key}"



def test_architecture_md_names_every_asset_check_job_sensor_and_schedule() -> None:
    from fractal_assets.definitions import defs

    text = (DOCS / "architecture.md").read_text()
    graph = defs.resolve_asset_graph()
    names = {k.to_user_string() for k in graph.get_all_asset_keys()}
    names |= {c.name for c in graph.asset_check_keys}
    names |= {d.name for d in (*defs.jobs, *defs.sensors, *defs.schedules)}
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"architecture.md does not name: {missing}"
