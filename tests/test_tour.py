"""The guided tour (docs/tour/) cannot drift: its excerpts equal the source, its links and images resolve, and
an op whose backward is broken makes the chapter that checks it fail. The chapters themselves run as tests
through docs/tour/conftest.py."""

import ast
import importlib.util
import re
import unittest
from pathlib import Path

import numpy as np
import pytest

import scratchnet.ops
import scratchnet.ops.losses
from scratchnet.tools import tour_figures

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "docs" / "tour"
CHAPTERS = sorted(TOUR.glob("[0-9][0-9]-*.md"))
PAGES = [TOUR / "README.md", *CHAPTERS, ROOT / "README.md"]

# <!-- source: PATH FUNCTION --> followed by a fenced block: the block is FUNCTION's text in PATH, verbatim.
EXCERPT = re.compile(r"<!-- source: (?P<path>\S+) (?P<name>[\w.]+) -->\n```py\n(?P<code>.*?)\n```", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def function_source(path, qualified_name):
    """The text of a function (or Class.method) in a source file, from its first decorator to its last line."""
    text = (ROOT / path).read_text()
    scope = ast.parse(text)
    node = None
    for part in qualified_name.split("."):
        node = next((n for n in scope.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part),
                    None)
        if node is None:
            raise LookupError(f"{path} has no {qualified_name}")
        scope = node
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    lines = text.splitlines()[first - 1 : node.end_lineno]
    indent = len(lines[0]) - len(lines[0].lstrip())
    return "\n".join(line[indent:] for line in lines)


def excerpts():
    for chapter in CHAPTERS:
        for match in EXCERPT.finditer(chapter.read_text()):
            yield pytest.param(match["path"], match["name"], match["code"], id=f"{chapter.stem}:{match['name']}")


def test_tour_has_its_chapters_and_every_chapter_quotes_or_runs_code():
    assert len(CHAPTERS) >= 4
    for chapter in CHAPTERS:
        assert "```python" in chapter.read_text(), f"{chapter.name} runs no code"


@pytest.mark.parametrize(("path", "name", "code"), list(excerpts()))
def test_tour_excerpt_equals_the_source(path, name, code):
    assert code == function_source(path, name), f"the excerpt of {name} no longer matches {path}"


def test_every_source_marker_is_followed_by_its_excerpt():
    for chapter in CHAPTERS:
        text = chapter.read_text()
        assert text.count("<!-- source:") == len(EXCERPT.findall(text)), f"a malformed excerpt in {chapter.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_tour_links_and_images_resolve(page):
    for match in LINK.finditer(page.read_text()):
        target = match["target"].split("#")[0]
        if not target or re.match(r"[a-z]+:", target):
            continue  # a web address or an anchor in the same page
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_every_tour_image_is_drawn_by_its_chapter():
    for chapter in CHAPTERS:
        text = chapter.read_text()
        for match in LINK.finditer(text):
            target = match["target"]
            if match.group(0).startswith("!") and target.startswith("img/"):
                assert f'img / "{target[4:]}"' in text, f"{chapter.name} shows {target} but no snippet draws it"


def _run_chapter(path):
    """Evaluate every example of one chapter in order, as pytest does, raising on the first failure."""
    spec = importlib.util.spec_from_file_location("tour_conftest", TOUR / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    document = conftest.sybil.parse(path)
    conftest.setup(document.namespace)
    try:
        for example in document.examples():
            example.evaluate()
    finally:
        conftest.teardown(document.namespace)


def _flip_dense_kernel(real):
    def flipped(dy, cache, need_dx=True):
        dx, dkernel, dbias = real(dy, cache, need_dx)
        return dx, -dkernel, dbias
    return flipped


def _flip_conv_input(real):
    def flipped(dy, cache, need_dx=True):
        dx, dkernel = real(dy, cache, need_dx)
        return -dx, dkernel
    return flipped


def _flip_single(real):
    def flipped(*args, **kwargs):
        return -real(*args, **kwargs)
    return flipped


# (chapter, module whose attribute the chapter imports, op name, how to break it)
BROKEN_OPS = [
    ("02-softmax.md", scratchnet.ops, "softmax_cross_entropy_backward", _flip_single),
    ("03-dense.md", scratchnet.ops, "dense_backward", _flip_dense_kernel),
    ("05-conv.md", scratchnet.ops, "conv2d_backward", _flip_conv_input),
    ("06-pooling.md", scratchnet.ops, "max_pool2d_backward", _flip_single),
    # logistic regression's op calls dense_backward through its own module: chapter 1 stops learning.
    ("01-one-neuron.md", scratchnet.ops.losses, "dense_backward", _flip_dense_kernel),
]


@pytest.mark.parametrize("chapter", sorted({chapter for chapter, *_ in BROKEN_OPS}))
def test_chapters_pass_with_the_real_ops(chapter):
    _run_chapter(TOUR / chapter)


@pytest.mark.parametrize(("chapter", "module", "name", "breaking"), BROKEN_OPS, ids=[b[2] for b in BROKEN_OPS])
def test_a_sign_flipped_in_a_backward_makes_its_chapter_fail(chapter, module, name, breaking, monkeypatch):
    monkeypatch.setattr(module, name, breaking(getattr(module, name)))
    with pytest.raises(Exception, match="did not evaluate as expected"):
        _run_chapter(TOUR / chapter)


def test_the_tensorflow_chapter_skips_with_its_reason_where_tensorflow_is_missing(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def without_tensorflow(name, *args, **kwargs):
        return None if name == "tensorflow" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_tensorflow)
    with pytest.raises(unittest.SkipTest, match="TensorFlow is not installed"):
        _run_chapter(TOUR / "10-tensorflow.md")


def test_figures_go_to_a_temporary_folder_unless_asked(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("tour_conftest", TOUR / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    monkeypatch.delenv("SCRATCHNET_TOUR_FIGURES", raising=False)
    assert conftest.figure_folder() != TOUR / "img"
    monkeypatch.setenv("SCRATCHNET_TOUR_FIGURES", str(tmp_path / "img"))
    assert conftest.figure_folder() == tmp_path / "img"
    assert np.all([(tmp_path / "img").is_dir()])


def test_tour_figures_redraws_a_chapters_figures_into_the_folder_given(tmp_path):
    assert tour_figures.main(["04", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["04-error-vs-step.png"]


def test_tour_figures_rejects_a_chapter_that_does_not_exist(tmp_path, capsys):
    assert tour_figures.main(["no-such-chapter", "--out", str(tmp_path)]) == 2
    assert "no chapter" in capsys.readouterr().err
