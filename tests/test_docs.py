"""The documentation runs as written: every code block of README.md and docs/**/*.md.

Each block is one test, ``test_block_runs[page:line-language]``. The blocks of
a page run in page order, in one folder and (for Python) one namespace, so a
block may use what an earlier block on its page defined or wrote; running one
block runs the blocks before it on its page first. The rules:

* ```` ```python ```` blocks run with the working directory a fresh folder per
  page holding the files that page's text assumes (``cells.tif``,
  ``my_data/train``, ...): ``PAGE_FILES`` says which, ``FILES`` how each is
  made from ``examples/data`` and a few DSB2018 images (``NUCLIB_DSB2018``, as
  for the other tests). Variables are never injected: a page defines what it
  uses, in a block a reader sees.
* ```` ```bash ```` / ``shell`` / ``console`` blocks: lines continued with
  ``\\`` are joined, a ``$ `` prompt and ``#`` comments dropped, ``&&`` chains
  split. Each ``nuclib ...`` command runs in the page's folder through
  ``nuclib.cli.main`` (what the console script calls, without a TensorFlow
  start per command; one test runs the installed script itself) and must exit
  0, or N where its line says ``# exit status N``. The only other commands
  allowed in a block that runs are those of ``OTHER_COMMANDS`` (creating and
  activating an environment, ``pip install``: CI's own steps in ``.ci/run``),
  which are not run; a block where no command runs must be marked.
* ```` ```toml ```` blocks are training recipes: loaded with
  ``nuclib.train.load_recipe``, their loss and model built. A block that is an
  mkdocs include (``--8<-- "path"``, from the repository root) is loaded from
  that file, so relative paths resolve as for the file itself.
* ```` ```text ```` blocks are output, not run; of the blocks generated at
  build time (``docs/gen_snippets.py``), the recipe defaults are checked here
  (the ``--help`` texts come from the parser itself). Any other language, or
  none, is an error.

Marks, in the page's Markdown source:

* ``<!-- not run in CI: REASON -->`` on the line before a block: the block is
  skipped with that reason, which may not be empty (downloads from the Hub,
  hours of training, CI's own steps).
* a line whose comment says ``not run in CI: REASON`` (Python or shell): that
  line alone is left out (a Python line becomes ``pass``).
* ``<!-- run in CI with: KEY = VALUE, ... -->`` on the line before a block:
  it runs with tiny settings. In Python, every keyword argument ``KEY=`` in
  the block gets the literal ``VALUE``, and every key must occur in the
  block; in a recipe, dotted TOML keys (``train.epochs = 1``) set or override
  recipe keys (``load_recipe`` refuses unknown ones), and the recipe is then
  also trained (``nuclib.train.train``).

Tiny settings, tiny data and the bundled models keep the whole module to
about two minutes on two CPU cores.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PAGES = ["README.md"] + sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))

KINDS = {"python": "python", "bash": "shell", "shell": "shell", "sh": "shell",
         "console": "shell", "toml": "toml", "text": None}
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
INCLUDE = re.compile(r'^\s*--8<--\s*"(?P<path>[^"]+)"\s*$')
BLOCK_MARK = re.compile(r"^\s*<!--\s*(?P<kind>not run in CI|run in CI with):(?P<text>.*?)-->\s*$")
LINE_MARK = re.compile(r"#.*?\bnot run in CI:(?P<reason>.*)$")
EXIT_STATUS = re.compile(r"#.*\bexit status (?P<status>\d+)")

# Shell commands that are not nuclib's, and why they are not run here.
OTHER_COMMANDS = [
    (r"python3? -m venv \S+", "creates a virtual environment: CI makes its own (.ci/run)"),
    (r"(\.|source) \S*bin/activate", "activates that environment: CI runs inside its own"),
    (r"pip install \S+", "installs nuclib: CI installs it with its extras (.ci/run)"),
]


@dataclass
class Block:
    page: str
    line: int              # 1-based line of the opening fence
    kind: str              # "python", "shell" or "toml"
    code: str              # dedented, includes read
    include: str | None    # the included file, when the block is just an include
    mark: str | None       # "not run in CI" / "run in CI with"
    mark_text: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}-{self.kind}"


def read_blocks(page: str) -> list[Block]:
    """The code blocks of one page that this test runs, in page order."""
    lines = (REPO / page).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        lang, indent = fence["lang"], len(fence["indent"])
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        if lang not in KINDS:
            raise ValueError(f"{page}:{i + 1}: a ```{lang} block; give it one of the "
                             f"languages {sorted(KINDS)}")
        body = [line[indent:] for line in lines[i + 1:end]]
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        mark = BLOCK_MARK.match(previous)
        include = INCLUDE.match("\n".join(body).strip()) if len(body) == 1 else None
        code = "\n".join((REPO / m["path"]).read_text() if (m := INCLUDE.match(line)) else line
                         for line in body) + "\n"
        if KINDS[lang]:
            blocks.append(Block(page, i + 1, KINDS[lang], code,
                                include["path"] if include else None,
                                mark["kind"] if mark else None,
                                mark["text"].strip() if mark else ""))
        i = end + 1
    return blocks


BLOCKS = {page: read_blocks(page) for page in PAGES}
ALL_BLOCKS = [block for blocks in BLOCKS.values() for block in blocks]


# ---------------------------------------------------------------------------
# What the pages assume: files a user of the page would have.

def _dsb_fields(dsb_root: Path, split: str, n: int) -> list[str]:
    """The first n 256 x 256 fluorescence images of a split with 10 to 60 nuclei."""
    with open(dsb_root / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split
                and r["modality"] == "fluorescence" and r["height"] == r["width"] == "256"
                and 10 <= int(r["n_nuclei"]) <= 60]
    return [r["id"] for r in rows[:n]]


def _copy_fields(dsb_root, split, n, images: Path | None, labels: Path | None):
    """Copy the images and/or labels of ``_dsb_fields`` (PNG, named by their ids)."""
    for name in _dsb_fields(dsb_root, split, n):
        for kind, folder in (("images", images), ("labels", labels)):
            if folder:
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(dsb_root / split / kind / f"{name}.png", folder)


def _as_tiff(source: str, compression="zlib"):
    def make(dest: Path, ctx):
        from nuclib.data.io import read_image, write_image

        write_image(dest, read_image(ctx["samples"] / source), compression=compression)
    return make


def _labels_tiff(source: str):
    def make(dest: Path, ctx):
        from nuclib.data.io import read_labels, write_labels

        write_labels(dest, read_labels(ctx["samples"] / source))
    return make


def _copy(source: str):
    return lambda dest, ctx: shutil.copy(ctx["samples"] / source, dest)


def _my_data(dest: Path, ctx):
    _copy_fields(ctx["dsb"], "train", 3, dest / "train" / "images", dest / "train" / "labels")
    _copy_fields(ctx["dsb"], "val", 2, dest / "val" / "images", dest / "val" / "labels")


def _dsb2018(dest: Path, ctx):
    _copy_fields(ctx["dsb"], "val", 2, None, dest / "val" / "labels")
    shutil.copy(ctx["dsb"] / "manifest.csv", dest)


def _val_tiff(index: int):
    def make(dest: Path, ctx):
        from nuclib.data.io import read_image, write_image

        name = _dsb_fields(ctx["dsb"], "val", 2)[index]
        write_image(dest, read_image(ctx["dsb"] / "val" / "images" / f"{name}.png"))
    return make


def _my_model(dest: Path, ctx):
    from nuclib.models import unet
    from nuclib.segmenter import Segmenter

    Segmenter(unet(depth=2, filters=4, name="my_model"),
              {"name": "my-model", "tiling": {"tile_size": 64}}).save(dest)


def _best_keras(dest: Path, ctx):
    from nuclib.models import unet

    dest.parent.mkdir(parents=True, exist_ok=True)
    unet(depth=4, filters=16, batch_norm=True, dropout=0.1).save(dest)


MY_RECIPE = """\
name = "my-recipe"
[model]
args = { depth = 2, filters = 4 }
[data]
train = "my_data/train"
crop_size = 64
batch_size = 2
[train]
epochs = 1
steps_per_epoch = 2
progress = false
"""

# name in the page folder -> (what it is, how to make it at that path)
FILES = {
    "examples/data": ("the repository's sample images",
                      lambda dest, ctx: shutil.copytree(ctx["samples"], dest)),
    "cells.tif": ("a fluorescence image (examples/data/fluorescence.png)",
                  _as_tiff("fluorescence.png")),
    "cells_labels.png": ("its hand-drawn labels", _copy("fluorescence_labels.png")),
    "my_cells.tif": ("the same fluorescence image", _as_tiff("fluorescence.png")),
    "my_cells_truth.tif": ("its hand-drawn labels", _labels_tiff("fluorescence_labels.png")),
    "slide.tif": ("a large image, uncompressed so that it maps (fluorescence_large.png)",
                  _as_tiff("fluorescence_large.png", compression=None)),
    "a.tif": ("a DSB2018 val image", _val_tiff(0)),
    "b.tif": ("another", _val_tiff(1)),
    "images": ("two DSB2018 val images",
               lambda dest, ctx: _copy_fields(ctx["dsb"], "val", 2, dest, None)),
    "my_folder": ("the same two images",
                  lambda dest, ctx: _copy_fields(ctx["dsb"], "val", 2, dest, None)),
    "ground_truth": ("their labels, same names",
                     lambda dest, ctx: _copy_fields(ctx["dsb"], "val", 2, None, dest)),
    "annotations": ("their labels, same names",
                    lambda dest, ctx: _copy_fields(ctx["dsb"], "val", 2, None, dest)),
    "dsb2018": ("their labels in val/labels, and the DSB2018 manifest.csv", _dsb2018),
    "my_data": ("train/ (3 DSB2018 pairs) and val/ (2) in the images/ + labels/ layout",
                _my_data),
    "my_recipe.toml": ("a tiny training recipe for my_data",
                       lambda dest, ctx: dest.write_text(MY_RECIPE)),
    "models/my-model": ("a model directory (a tiny U-Net)", _my_model),
    "models/dsb-3class": ("the bundled dsb-3class, as nuclib zoo download --dir writes it",
                          lambda dest, ctx: shutil.copytree(
                              REPO / "nuclib" / "zoo" / "bundled" / "dsb-3class", dest)),
    "runs/my-nuclei/best.keras": ("a checkpoint of the U-Net of dsb-3class, as training "
                                  "writes it", _best_keras),
}

PAGE_FILES = {
    "README.md": ["examples/data", "cells.tif", "cells_labels.png", "images",
                  "ground_truth"],
    "docs/index.md": ["examples/data", "cells.tif"],
    "docs/getting-started.md": ["examples/data", "my_cells.tif", "my_cells_truth.tif",
                                "my_folder", "images", "annotations"],
    "docs/guide/models.md": ["runs/my-nuclei/best.keras"],
    "docs/guide/data.md": ["cells.tif", "cells_labels.png", "my_data"],
    "docs/guide/postprocess.md": ["cells.tif", "cells_labels.png", "my_data", "slide.tif"],
    "docs/guide/metrics.md": ["examples/data"],
    "docs/guide/zoo.md": ["cells.tif", "models/dsb-3class"],
    "docs/guide/cluster.md": ["images", "slide.tif"],
    "docs/guide/cli.md": ["examples/data", "images", "a.tif", "b.tif", "models/my-model",
                          "ground_truth", "dsb2018", "my_recipe.toml", "my_data"],
    "docs/guide/training.md": ["my_data"],
    "docs/zoo.md": ["cells.tif"],
}


# ---------------------------------------------------------------------------
# Running a page.

@contextlib.contextmanager
def _in(folder: Path):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _keywords(text: str) -> dict:
    """``a=1, b="x"`` as a dict of Python literals."""
    call = ast.parse(f"f({text})", mode="eval").body
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def with_keywords(code: str, values: dict) -> str:
    """``code`` with the value of every keyword argument named in ``values`` replaced."""
    data = code.encode()
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    edits, used = [], set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.keyword) and node.arg in values:
            v = node.value
            edits.append((starts[v.lineno - 1] + v.col_offset,
                          starts[v.end_lineno - 1] + v.end_col_offset, repr(values[node.arg])))
            used.add(node.arg)
    missing = set(values) - used
    assert not missing, f"'run in CI with' names {sorted(missing)}, which the block does not use"
    for start, end, text in sorted(edits, reverse=True):
        data = data[:start] + text.encode() + data[end:]
    return data.decode()


def without_marked_lines(code: str) -> str:
    lines = []
    for line in code.splitlines():
        mark = LINE_MARK.search(line)
        if mark:
            assert mark["reason"].strip(), f"'not run in CI:' without a reason: {line!r}"
            line = line[: len(line) - len(line.lstrip())] + "pass  " + mark.group(0)
        lines.append(line)
    return "\n".join(lines) + "\n"


def shell_commands(code: str):
    """(argv, skip reason or None, expected exit status) for each command of a shell block."""
    for line in code.replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        mark = LINE_MARK.search(line)
        status = EXIT_STATUS.search(line)
        tokens = shlex.split(line, comments=True)
        assert not {";", "|", "||"} & set(tokens), f"only && chains are understood: {line!r}"
        while tokens:
            n = tokens.index("&&") if "&&" in tokens else len(tokens)
            yield (tokens[:n], mark["reason"].strip() if mark else None,
                   int(status["status"]) if status else 0)
            tokens = tokens[n + 1:]


def why_not_run(argv: list[str]) -> str:
    command = shlex.join(argv)
    for pattern, reason in OTHER_COMMANDS:
        if re.fullmatch(pattern, command):
            return reason
    raise AssertionError(f"a shell command this test does not know: {command!r}; run it "
                         "(a nuclib command), or add its kind to OTHER_COMMANDS with the "
                         "reason it cannot run, or mark it 'not run in CI: REASON'")


def run_nuclib(argv: list[str]) -> tuple[int, str]:
    from nuclib.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
    return status, out.getvalue()


class Page:
    """One page's folder, namespace and the outcome of each block that ran."""

    def __init__(self, page: str, folder: Path, template):
        self.page, self.folder = page, folder
        self.namespace = {"__name__": "__main__"}
        self.outcomes: dict[int, tuple[str, str]] = {}
        for name in PAGE_FILES.get(page, []):
            source, dest = template(name), folder / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest)
            else:
                shutil.copy(source, dest)

    def run(self, index: int) -> tuple[str, str]:
        """("ok" | "skip" | "fail", detail) of block ``index``, running earlier blocks first."""
        for i in range(index + 1):
            if i not in self.outcomes:
                self.outcomes[i] = self._run(BLOCKS[self.page][i])
        outcome = self.outcomes[index]
        failed = [BLOCKS[self.page][i].line for i in range(index) if self.outcomes[i][0] == "fail"]
        if outcome[0] == "fail" and failed:
            outcome = ("fail", outcome[1] + f"\n(blocks at lines {failed} of {self.page} failed "
                                            "before it, which may be why)")
        return outcome

    def _run(self, block: Block) -> tuple[str, str]:
        if block.mark == "not run in CI":
            return "skip", f"not run in CI: {block.mark_text}"
        try:
            with _in(self.folder):
                return getattr(self, f"_run_{block.kind}")(block)
        except Exception as err:  # noqa: BLE001  (reported as the test's failure)
            frames = [f for f in traceback.extract_tb(err.__traceback__)
                      if f.filename != __file__]
            return "fail", "".join(traceback.format_list(frames)
                                   + traceback.format_exception_only(err))
        finally:
            if "matplotlib.pyplot" in sys.modules:
                sys.modules["matplotlib.pyplot"].close("all")

    def _run_python(self, block: Block) -> tuple[str, str]:
        code = block.code
        if block.mark == "run in CI with":
            code = with_keywords(code, _keywords(block.mark_text))
        code = without_marked_lines(code)
        # Padded so that tracebacks give the page's own line numbers.
        exec(compile("\n" * block.line + code, str(REPO / block.page), "exec"), self.namespace)
        return "ok", ""

    def _run_shell(self, block: Block) -> tuple[str, str]:
        ran, not_run = 0, []
        for argv, reason, expected in shell_commands(block.code):
            if reason:
                not_run.append(f"{shlex.join(argv)}: not run in CI: {reason}")
            elif argv[0] == "nuclib":
                status, output = run_nuclib(argv[1:])
                assert status == expected, (f"{shlex.join(argv)} exited {status}, expected "
                                            f"{expected}:\n{output}")
                ran += 1
            else:
                not_run.append(f"{argv[0]} ...: {why_not_run(argv)}")
        assert ran, ("no command of this block runs here (" + "; ".join(not_run) + "): mark "
                     "it <!-- not run in CI: REASON --> in the page")
        return "ok", ""

    def _run_toml(self, block: Block) -> tuple[str, str]:
        from nuclib.train import build_loss, build_model, load_recipe, train

        path = REPO / block.include if block.include else Path(f"recipe-line{block.line}.toml")
        if not block.include:
            path.write_text(block.code)
        recipe = load_recipe(path)
        assert recipe["data"]["train"]
        build_loss(recipe)  # the loss and its arguments exist
        assert build_model(recipe).count_params() > 0  # and the model with its arguments
        if block.mark == "run in CI with":
            raw = tomllib.loads(block.code)
            for section, values in tomllib.loads(f"x = {{ {block.mark_text} }}")["x"].items():
                if isinstance(values, dict):
                    raw.setdefault(section, {}).update(values)
                else:
                    raw[section] = values
            result = train(raw)  # relative paths: to the folder, as for the file
            assert Path(result["checkpoint"]).is_file()
        return "ok", ""


@pytest.fixture(scope="session")
def template(tmp_path_factory, dsb_root, sample_dir):
    """name -> path of that FILES entry, made once per session."""
    root = tmp_path_factory.mktemp("docs-files")
    ctx = {"dsb": dsb_root, "samples": sample_dir}

    def get(name: str) -> Path:
        dest = root / name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            FILES[name][1](dest, ctx)
        assert dest.exists(), f"FILES[{name!r}] made nothing"
        return dest
    return get


@pytest.fixture(scope="session")
def pages(tmp_path_factory, template):
    made: dict[str, Page] = {}

    def get(page: str) -> Page:
        if page not in made:
            folder = tmp_path_factory.mktemp(re.sub(r"\W+", "-", page))
            made[page] = Page(page, folder, template)
        return made[page]
    return get


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_block_runs(block, pages):
    page = pages(block.page)
    status, detail = page.run(BLOCKS[block.page].index(block))
    if status == "skip":
        pytest.skip(f"{block.id}: {detail}")
    if status == "fail":
        pytest.fail(detail, pytrace=False)


# ---------------------------------------------------------------------------
# The rules themselves.

def test_the_pages_have_their_blocks():
    kinds = {page: {b.kind for b in blocks} for page, blocks in BLOCKS.items()}
    assert {"python", "shell"} <= kinds["README.md"]
    assert kinds["docs/guide/training.md"] == {"python", "shell", "toml"}
    training = [b for b in BLOCKS["docs/guide/training.md"] if b.kind == "toml"]
    assert training[0].include == "recipes/dsb-3class.toml"
    assert any('fine_tune_from = "dsb-3class"' in b.code for b in training)
    assert set(PAGE_FILES) <= set(PAGES)
    assert {name for names in PAGE_FILES.values() for name in names} <= set(FILES)


@pytest.mark.parametrize("page", PAGES)
def test_every_mark_is_on_a_block_and_says_why(page):
    lines = (REPO / page).read_text().splitlines()
    for i, line in enumerate(lines):
        if BLOCK_MARK.match(line):
            after = next((lines[j] for j in range(i + 1, len(lines)) if lines[j].strip()), "")
            assert FENCE.match(after), f"{page}:{i + 1}: a mark not followed by a code block"
    for block in BLOCKS[page]:
        if block.mark == "not run in CI":
            assert block.mark_text, f"{block.id}: 'not run in CI:' needs a reason"
        elif block.mark == "run in CI with":
            assert block.kind in ("python", "toml"), f"{block.id}: tiny settings for {block.kind}"
            if block.kind == "python":
                assert _keywords(block.mark_text), block.id
            else:
                assert tomllib.loads(f"x = {{ {block.mark_text} }}")["x"], block.id
        for line in block.code.splitlines():
            mark = LINE_MARK.search(line)
            assert not mark or mark["reason"].strip(), f"{block.id}: {line.strip()!r}: why?"


def test_the_readme_trains_as_the_training_guide_does():
    # The README's block is marked not run: the guide's runs, so they must stay the same.
    readme = next(b for b in BLOCKS["README.md"] if "model.fit(" in b.code)
    guide = next(b for b in BLOCKS["docs/guide/training.md"]
                 if b.kind == "python" and "model.fit(" in b.code)
    assert readme.mark == "not run in CI" and "docs/guide/training.md" in readme.mark_text
    assert guide.mark == "run in CI with"
    assert readme.code == guide.code


def test_shell_lines_are_understood():
    argv = list(shell_commands(
        "python3 -m venv .venv && . .venv/bin/activate && \\\n"
        "    nuclib segment a.png --out out/   # comment\n"
        "$ nuclib zoo push d --repo-id o/n   # not run in CI: needs a token\n"
        "nuclib evaluate --true t --pred p  # exit status 1\n"))
    assert argv == [(["python3", "-m", "venv", ".venv"], None, 0),
                    ([".", ".venv/bin/activate"], None, 0),
                    (["nuclib", "segment", "a.png", "--out", "out/"], None, 0),
                    (["nuclib", "zoo", "push", "d", "--repo-id", "o/n"], "needs a token", 0),
                    (["nuclib", "evaluate", "--true", "t", "--pred", "p"], None, 1)]
    assert "CI makes its own" in why_not_run(argv[0][0])
    with pytest.raises(AssertionError, match="does not know"):
        why_not_run(["rm", "-rf", "out"])


def test_tiny_settings_replace_keyword_arguments():
    code = "f(x, epochs=40, depth=4)  # é\ng(epochs=n)\n"
    assert with_keywords(code, {"epochs": 1, "depth": 2}) == (
        "f(x, epochs=1, depth=2)  # é\ng(epochs=1)\n")
    with pytest.raises(AssertionError, match="does not use"):
        with_keywords(code, {"filters": 4})
    assert without_marked_lines("if x:\n    f()  # not run in CI: slow\n") == (
        "if x:\n    pass  # not run in CI: slow\n")


def test_the_generated_recipe_defaults_are_toml_of_the_defaults():
    sys.path.insert(0, str(REPO / "docs"))
    try:
        from gen_snippets import recipe_defaults
    finally:
        sys.path.remove(str(REPO / "docs"))
    from nuclib.train import DEFAULTS

    shown = tomllib.loads(recipe_defaults())
    expected = {k: ({s: v for s, v in value.items() if v is not None}
                    if isinstance(value, dict) else value) for k, value in DEFAULTS.items()}
    assert shown == expected


def test_the_console_script_runs_a_documented_command(tmp_path):
    """The installed ``nuclib`` script (the blocks call ``main``): the README's zoo list."""
    argv = next(a for b in BLOCKS["README.md"] if b.kind == "shell"
                for a, _, _ in shell_commands(b.code) if a[:3] == ["nuclib", "zoo", "list"])
    script = (shutil.which("nuclib", path=str(Path(sys.executable).parent))
              or shutil.which("nuclib"))
    assert script, "the nuclib console script is not installed"
    done = subprocess.run([script, *argv[1:]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dsb-3class" in done.stdout
