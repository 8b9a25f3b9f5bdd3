"""What a run's pictures show, read from the figures themselves (training.report).

Each plotting function hands its figure to `_save`; the tests catch it there and check what a
reader of the PNG sees: the data in each panel, labels, the colour map, tick labels that line
up, the size. Numbers are worked out by hand. Found by mutation testing: the PNG files were
only checked to exist.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from training import report


@pytest.fixture
def saved(monkeypatch):
    """The figures the code saves, by file name, instead of writing them."""
    figures = {}

    def keep(fig, path):
        figures[path.name] = fig

    monkeypatch.setattr(report, "_save", keep)
    yield figures
    plt.close("all")


def _ticks(axis):
    return [t.get_text() for t in axis.get_ticklabels()]


def test_confusion_matrix_picture(tmp_path, saved):
    # 5 cats right, 1 cat taken for a dog, 2 dogs right: accuracy 7/8
    cm = np.array([[5, 1], [0, 2]])
    report.write_confusion(tmp_path, cm, ("cat", "dog"))
    assert (tmp_path / "confusion.csv").read_bytes() == (
        b"true \\ predicted,cat,dog\ncat,5,1\ndog,0,2\n"
    )
    fig = saved["confusion.png"]
    assert tuple(fig.get_size_inches()) == (7, 6)
    ax, bar = fig.axes  # the matrix and its colour bar
    assert bar.get_ylim() == pytest.approx((0, 5))
    (image,) = ax.images
    assert image.get_cmap().name == "Blues" and image.get_array().tolist() == cm.tolist()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert ax.get_title() == "confusion matrix, accuracy 87.50%"
    assert _ticks(ax.xaxis) == ["cat", "dog"] and _ticks(ax.yaxis) == ["cat", "dog"]
    for label in ax.xaxis.get_ticklabels():  # slanted, ending under their column
        assert label.get_rotation() == 45 and label.get_horizontalalignment() == "right"
    cells = {t.get_position(): t for t in ax.texts}
    # text at (column j, row i) = count of true i predicted j; white on the dark half
    expected = {(0, 0): "5", (1, 0): "1", (0, 1): "0", (1, 1): "2"}
    assert {pos: t.get_text() for pos, t in cells.items()} == expected
    for t in cells.values():
        assert t.get_color() == ("white" if t.get_text() == "5" else "black")
        assert (t.get_ha(), t.get_va(), t.get_fontsize()) == ("center", "center", 7)


@pytest.mark.parametrize(
    "cm, accuracy",
    [([[0, 0], [0, 0]], "0.00%"), ([[1, 0], [0, 0]], "100.00%"), ([[0, 1], [0, 0]], "0.00%")],
)
def test_accuracy_in_the_title_of_an_empty_or_one_image_matrix(tmp_path, saved, cm, accuracy):
    report.write_confusion(tmp_path, np.array(cm), ("a", "b"))
    assert saved["confusion.png"].axes[0].get_title() == f"confusion matrix, accuracy {accuracy}"


def test_a_count_of_exactly_half_the_largest_stays_black(tmp_path, saved):
    report.write_confusion(tmp_path, np.array([[4, 2], [1, 3]]), ("a", "b"))
    colours = {t.get_text(): t.get_color() for t in saved["confusion.png"].axes[0].texts}
    assert colours == {"4": "white", "2": "black", "1": "black", "3": "white"}


def test_curves_picture(tmp_path, saved):
    history = [
        {"epoch": 1, "train_loss": 2.0, "test_loss": 1.8, "train_acc": 0.3, "test_acc": 0.35},
        {"epoch": 2, "train_loss": 1.5, "test_loss": 1.6, "train_acc": 0.45, "test_acc": 0.4},
    ]
    report.plot_curves(tmp_path, history, [0.05, 0.1, 0.02], [0.95, 0.85, 0.95])
    fig = saved["curves.png"]
    assert tuple(fig.get_size_inches()) == (19, 4)
    loss, acc, lr, mom = fig.axes
    boxes = [ax.get_position() for ax in fig.axes]  # one row of four panels, left to right
    assert len({round(b.y0, 6) for b in boxes}) == 1
    assert [b.x0 for b in boxes] == sorted(b.x0 for b in boxes)
    for ax, title, train, test in (
        (loss, "loss", [2.0, 1.5], [1.8, 1.6]),
        (acc, "accuracy", [0.3, 0.45], [0.35, 0.4]),
    ):
        assert (ax.get_title(), ax.get_xlabel()) == (title, "epoch")
        lines = ax.get_lines()
        assert [ln.get_label() for ln in lines] == ["train", "test"]
        assert [ln.get_xdata().tolist() for ln in lines] == [[1, 2], [1, 2]]
        assert [ln.get_ydata().tolist() for ln in lines] == [train, test]
        assert all((ln.get_marker(), ln.get_linestyle()) == ("o", "-") for ln in lines)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]
    for ax, title, steps in (
        (lr, "learning rate per step", [0.05, 0.1, 0.02]),
        (mom, "momentum per step", [0.95, 0.85, 0.95]),
    ):
        assert (ax.get_title(), ax.get_xlabel()) == (title, "step (batch)")
        (line,) = ax.get_lines()
        assert line.get_xdata().tolist() == [1, 2, 3] and line.get_ydata().tolist() == steps
    for ax in fig.axes:  # a light grid on every panel
        grid = ax.xaxis.get_gridlines()[0]
        assert grid.get_visible() and grid.get_alpha() == 0.3


def test_misclassified_gallery_picture(tmp_path, saved):
    images = np.zeros((7, 4, 4, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(7)  # each image marked with its index
    true = np.array([0, 1, 2, 0, 1, 2, 0])
    pred = np.array([1, 1, 0, 2, 1, 0, 0])  # wrong: images 0, 2, 3, 5
    assert report.plot_misclassified(tmp_path, images, true, pred, ["cat", "dog", "frog"]) == 4
    fig = saved["misclassified.png"]
    axes = fig.axes
    assert len(axes) == 4 and tuple(fig.get_size_inches()) == pytest.approx((8.8, 2.4))
    shown = [ax.images[0].get_array()[0, 0, 0] for ax in axes]
    assert shown == [0, 2, 3, 5]
    assert [ax.get_title() for ax in axes] == [
        "cat\n-> dog",
        "frog\n-> cat",
        "cat\n-> frog",
        "frog\n-> cat",
    ]
    for ax in axes:
        assert not ax.axison and ax.title.get_fontsize() == 8
        assert ax.images[0].get_interpolation() == "nearest"


def test_a_gallery_of_seven_fills_two_rows_of_five(tmp_path, saved):
    images = np.zeros((7, 2, 2, 3), dtype=np.uint8)
    report.plot_misclassified(tmp_path, images, np.zeros(7, int), np.ones(7, int), ["a", "b"])
    fig = saved["misclassified.png"]
    assert len(fig.axes) == 10 and tuple(fig.get_size_inches()) == pytest.approx((11, 4.8))
    assert [bool(ax.images) for ax in fig.axes] == [True] * 7 + [False] * 3
    assert not any(ax.axison for ax in fig.axes)  # the three empty places are blank too


def test_saved_pictures_are_tight_png_at_110_dpi_and_closed(tmp_path):
    fig = plt.figure(figsize=(4, 4))
    fig.text(0.5, 0.5, "x")  # a small mark in a big empty figure
    other = plt.figure()  # the current figure is another one
    # a user's matplotlibrc asking for PDFs does not change what the .png files hold
    with plt.rc_context({"savefig.format": "pdf"}):
        report._save(fig, tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        assert im.format == "PNG" and im.info["dpi"] == pytest.approx((110, 110), abs=0.1)
        assert max(im.size) < 110  # cropped to what is drawn (4 in at 110 dpi is 440 px)
    assert not plt.fignum_exists(fig.number)  # closed: a long run does not pile figures up
    assert plt.fignum_exists(other.number)  # and only that one


def test_a_long_list_of_mistakes_shows_25_spread_from_first_to_last(tmp_path, saved):
    images = np.zeros((60, 2, 2, 3), dtype=np.int64)
    images[:, 0, 0, 0] = np.arange(60)
    true = np.zeros(60, int)
    pred = np.tile([0, 1], 30)  # the odd images, 30 of them, are wrong
    assert report.plot_misclassified(tmp_path, images, true, pred, ["a", "b"]) == 25
    shown = [ax.images[0].get_array()[0, 0, 0] for ax in saved["misclassified.png"].axes]
    assert shown[0] == 1 and shown[-1] == 59  # the first and the last mistake
    gaps = np.diff(shown)
    assert len(set(shown)) == 25 and set(gaps.tolist()) <= {2, 4}  # every 1st or 2nd mistake


@pytest.mark.parametrize(
    "wrong, grid",
    [(1, (1, 1)), (5, (1, 5)), (6, (2, 5)), (10, (2, 5)), (11, (3, 5))],
)
def test_gallery_layout_rows_of_five(tmp_path, saved, wrong, grid):
    images = np.zeros((wrong, 2, 2, 3), dtype=np.uint8)
    shown = report.plot_misclassified(
        tmp_path, images, np.zeros(wrong, int), np.ones(wrong, int), ["a", "b"]
    )
    fig = saved["misclassified.png"]
    rows, cols = grid
    assert shown == wrong and len(fig.axes) == rows * cols
    assert sum(bool(ax.images) for ax in fig.axes) == wrong  # every mistake has its place
    assert tuple(fig.get_size_inches()) == pytest.approx((2.2 * cols, 2.4 * rows))
