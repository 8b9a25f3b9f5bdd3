"""The intended edit of every exercise in the book, run by tests/book/test_chapters_nbclient.py
(inside each page's notebook run) and checked against the pages by test_exercises.py.

One `Exercise` per numbered item under a chapter's "## Exercises" heading, found by `text`,
a snippet of the item's own words (not its number, so adding an exercise elsewhere in the
list does not move it). An exercise that asks the reader to change a cell lists its `edits`:
each names the cell by a snippet of its source (`cell`, found in exactly one code cell of the
chapter) and replaces `old` by `new` there (every occurrence; `old` must occur). The page's
run pauses before the first edited cell, runs the edited cells and any cells between them,
and fails if one raises (unless the exercise's answer is that error: `raises` holds
a piece of its message, and the test fails if it does not come). `through_end` runs on to
the chapter's last cell ("run the notebook"). An exercise with no cell to edit says why in `none`.

`known_failure` marks an exercise whose intended edit crashes today for a reason its chapter's
editor is fixing: the test expects it to fail and fails once it passes (then delete the mark).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    """Replace `old` by `new` in the one code cell whose source contains `cell`."""

    cell: str
    old: str = ""
    new: str = ""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its chapter (file stem), a snippet of its text, and what to run."""

    chapter: str
    text: str
    edits: tuple[Edit, ...] = ()
    none: str = ""  # why there is nothing to run (a question, a derivation, the browser)
    through_end: bool = False
    raises: str = ""  # the answer is an error: its message holds this (the test pins it)
    known_failure: str = ""


QUESTION = "a question answered in words or by hand"
DERIVATION = "a derivation on paper, checked by the cells it names"
NEW_CODE = "new code the reader writes (its solution gives the answer in words)"
EXPLORER = "done in the explorer page in a browser (tests/rfcalc cover the explorer)"

EXERCISES: tuple[Exercise, ...] = (
    # ------------------------------------------------------------------ 1 RF arithmetic
    Exercise("01_rf_arithmetic", "Add a 2×2 max-pool (stride 2) after `conv5`", none=QUESTION),
    Exercise("01_rf_arithmetic", "A 7×7 convolution with stride 2 and padding 3", none=QUESTION),
    Exercise("01_rf_arithmetic", "Why does a stride of 2 not change", none=QUESTION),
    Exercise(
        "01_rf_arithmetic",
        "In the pyramid cell, change the middle layer's stride",
        edits=(
            Edit(
                '("conv b (stride 2)", 3, 2, 1)',
                '("conv b (stride 2)", 3, 2, 1)',
                '("conv b (stride 2)", 3, 1, 1)',
            ),
        ),
    ),
    Exercise(
        "01_rf_arithmetic",
        'In the "small net" cell, give `conv5` `padding=1`',
        edits=(
            Edit(
                'small.add_module("conv5"',
                "nn.Conv2d(16, 16, 3))",
                "nn.Conv2d(16, 16, 3, padding=1))",
            ),
            # the check below it, fixed as the exercise asks (Solution 5's numbers)
            Edit(
                '"conv5": (6, 4, 24, Fraction(11, 2))',
                '"conv5": (6, 4, 24, Fraction(11, 2))',
                '"conv5": (8, 4, 24, Fraction(3, 2))',
            ),
        ),
    ),
    Exercise(
        "01_rf_arithmetic",
        "In the reach-map cell,",
        edits=(Edit("def reach_map(", "dilation = 1 ", "dilation = 2 "),),
    ),
    # ------------------------------------------------------------------ 1.1 closed forms
    Exercise("01_closed_forms", "Prove $r_L = 1 +", none=DERIVATION),
    Exercise("01_closed_forms", "Show that unit $u$'s field starts at", none=DERIVATION),
    Exercise("01_closed_forms", "Compute $r$, $S$ and $P$ by hand", none=QUESTION),
    Exercise(
        "01_closed_forms",
        "In the `rfcalc` check cell, change `conv3`'s stride",
        edits=(
            Edit(
                'chain.add_module("conv3"',
                "nn.Conv2d(8, 8, 5, stride=2, padding=2)",
                "nn.Conv2d(8, 8, 5, stride=1, padding=2)",
            ),
        ),
    ),
    Exercise(
        "01_closed_forms",
        'In the table cell, give `"VGG-16"` an input of 320',
        edits=(Edit("zoo = {", '"VGG-16": (tvm.vgg16, 224),', '"VGG-16": (tvm.vgg16, 320),'),),
    ),
    Exercise(
        "01_closed_forms",
        "In the widget's cell, set `start_s = (2, 2, 2)`",
        edits=(
            Edit(
                "def reached(",
                "start_k, start_s, start_d = (3, 3, 3), (1, 2, 1), (1, 1, 3)",
                "start_k, start_s, start_d = (3, 3, 3), (2, 2, 2), (1, 1, 1)",
            ),
        ),
    ),
    # ------------------------------------------------------------------ 2 dilated
    Exercise("02_dilated", "A 3×3 convolution with dilation 8 and no padding", none=QUESTION),
    Exercise("02_dilated", "How many layers with dilations", none=QUESTION),
    Exercise("02_dilated", "Would dilations (1, 2, 3) grid?", none=QUESTION),
    Exercise(
        "02_dilated",
        "In the gradient-map cell, replace `(1, 2, 5)`",
        edits=(Edit("cases = [(2, 2, 2, 2, 2)", "(1, 2, 5)]", "(1, 2, 8)]"),),
    ),
    Exercise(
        "02_dilated",
        "In the `rfcalc` cell, change both `(1, 2, 4, 8, 16)`",
        edits=(
            Edit('("dilated, p=0", (1, 2, 4, 8, 16), False)', "(1, 2, 4, 8, 16)", "(1, 3, 9, 27)"),
        ),
    ),
    # ------------------------------------------------------------------ 3 depthwise
    Exercise("03_depthwise", "For a $5 \\times 5$ kernel", none=QUESTION),
    Exercise("03_depthwise", "Would a ReLU between the two change", none=QUESTION),
    Exercise("03_depthwise", "Where does the separable layer's cost go", none=QUESTION),
    Exercise(
        "03_depthwise",
        "In the equal-budget cell, change `layers = 4`",
        edits=(Edit("budget = 150_000", "layers = 4", "layers = 8"),),
    ),
    Exercise(
        "03_depthwise",
        "In the timing cell, change `ch` from 64 to 256",
        edits=(Edit("ch, hw, batch = 64, 32, 16", "ch, hw, batch = 64,", "ch, hw, batch = 256,"),),
    ),
    # ------------------------------------------------------------------ 3.1 from scratch
    Exercise(
        "03_from_scratch",
        "In the cell that checks the loops, add the case",
        edits=(
            Edit(
                "cases = {",
                '    "grouped, g=2": (6, dict(padding=1, groups=2)),\n',
                '    "grouped, g=2": (6, dict(padding=1, groups=2)),\n'
                '    "all at once": (6, dict(stride=2, padding=2, dilation=2, groups=2)),\n',
            ),
        ),
    ),
    Exercise("03_from_scratch", "The Net's last transition t4 is a plain", none=QUESTION),
    Exercise("03_from_scratch", "Derive the folded weights and bias", none=DERIVATION),
    Exercise(
        "03_from_scratch",
        "In the bytes-against-MACs cell, change `ch, hw = 64, 32`",
        edits=(Edit("def costs(", "ch, hw = 64, 32", "ch, hw = 256, 32"),),
    ),
    Exercise(
        "03_from_scratch",
        "In the momentum cell, change `momentum = 0.1`",
        edits=(
            Edit("bn.reset_running_stats()", "momentum = 0.1\n", "momentum = 0.01\n"),
            Edit("bn.reset_running_stats()", "for t in range(60):", "for t in range(300):"),
        ),
    ),
    # ------------------------------------------------------------------ 4 skips
    Exercise("04_skip", "A branch with an unpadded 3×3 convolution cannot be added", none=QUESTION),
    Exercise("04_skip", "A merge adds a branch of field 7 to one of field 11", none=QUESTION),
    Exercise("04_skip", "Does a skip connection change the number", none=QUESTION),
    Exercise(
        "04_skip",
        "In the crop cell, add",
        edits=(
            Edit(
                "crops = {",
                '"x[2:] (off by one)": slice(2, None)}',
                '"x[2:] (off by one)": slice(2, None),\n'
                '         "x[:-2] (other side)": slice(0, -2)}',
            ),
            # the reader's prediction for the new crop, written into the check (Solution 4)
            Edit("crops = {", "== [True, False]", "== [True, False, False]"),
        ),
    ),
    Exercise(
        "04_skip",
        "In the first cell, change branch *b*'s padding",
        edits=(
            Edit("class Offset(", "nn.Conv2d(1, 1, 5)", "nn.Conv2d(1, 1, 7)"),
            Edit("class Offset(", "F.pad(x, (0, 4, 0, 4))", "F.pad(x, (0, 6, 0, 6))"),
            # the reader's prediction (Solution 5: b 7..13, the union 6..13)
            Edit(
                "class Offset(",
                '("b",): (7, 11), ("a", "b"): (6, 11)',
                '("b",): (7, 13), ("a", "b"): (6, 13)',
            ),
        ),
    ),
    Exercise(
        "04_skip",
        "In the residual-vs-plain cell, give `network` 6 blocks",
        edits=(
            Edit("def network(", "blocks: int = 4", "blocks: int = 6"),
            Edit("def network(", "== (17, 17)", "== (25, 25)"),  # Solution 6's field
        ),
    ),
    # ------------------------------------------------------------------ 4.1 ERF
    Exercise(
        "04_erf",
        "In the depth table, compare t2 and t3",
        none="read from the depth table; a cell checks Solution 1's numbers",
    ),
    Exercise(
        "04_erf",
        "The cell below builds a stack of 3×3 convolutions with every",
        edits=(Edit("dilations = (1, 1, 1, 1)", "(1, 1, 1, 1)", "(1,) * 8"),),
    ),
    Exercise(
        "04_erf",
        "In the same cell, set `dilations = (1, 2, 4, 8)`",
        edits=(Edit("dilations = (1, 1, 1, 1)", "(1, 1, 1, 1)", "(1, 2, 4, 8)"),),
    ),
    Exercise("04_erf", "In the explorer, pick `c3.0.conv.0`", none=EXPLORER),
    # ------------------------------------------------------------------ 5 budget
    Exercise(
        "05_budget",
        "change t4's dilation from 8 to 4",
        edits=(
            Edit("t4_dilation, t4_padding = (", "(\n    8,\n    0,\n)", "(\n    4,\n    0,\n)"),
        ),
    ),
    Exercise(
        "05_budget",
        "Give t4 a padding of 8 instead",
        edits=(
            Edit("t4_dilation, t4_padding = (", "(\n    8,\n    0,\n)", "(\n    8,\n    8,\n)"),
        ),
    ),
    Exercise("05_budget", "By how much does each of them reach past", none=QUESTION),
    Exercise("05_budget", "Removing the skips does not change any number", none=QUESTION),
    # ------------------------------------------------------------------ 5.1 memory
    Exercise("05_memory", "compute by hand the values written by `t1`", none=QUESTION),
    Exercise("05_memory", "A separable `ConvLayer` with a skip writes six maps", none=QUESTION),
    Exercise(
        "05_memory",
        "In the autograd cell, change `batch = 512`",
        edits=(Edit("def saved_bytes(", "batch = 512\n", "batch = 128\n"),),
    ),
    Exercise(
        "05_memory",
        "In the page-fault cell, change `limit = 32 * mib`",
        edits=(Edit("def big_tensors(", "limit = 32 * mib", "limit = 8 * mib"),),
    ),
    Exercise("05_memory", "Why does a forward pass for inference", none=QUESTION),
    # ------------------------------------------------------------------ 6 data
    Exercise(
        "06_data",
        "set the hole size to 8",
        edits=(
            Edit(
                "single = replace(AugConfig.off(), cutout_p=1.0",
                "cutout_p=1.0)",
                "cutout_p=1.0, cutout_size=8)",
            ),
        ),
    ),
    Exercise(
        "06_data",
        "replace the black image by a white one",
        edits=(
            Edit(
                "single = replace(AugConfig.off(), cutout_p=1.0",
                "np.zeros((32, 32, 3), dtype=np.uint8)",
                "np.full((32, 32, 3), 255, dtype=np.uint8)",
            ),
        ),
    ),
    Exercise("06_data", "Why is a horizontal flip a safe augmentation", none=QUESTION),
    Exercise("06_data", "A hole of 16×16 pixels hides a quarter", none=QUESTION),
    # ------------------------------------------------------------------ 7 training
    Exercise(
        "07_training",
        "Set `EPOCHS=2` and `SUBSET=2000`",
        edits=(
            Edit("EPOCHS = int(", 'int(os.environ.get("EPOCHS", 100 if CUDA else 3))', "2"),
            Edit(
                "EPOCHS = int(",
                'os.environ.get("SUBSET", "all" if CUDA else "5000")',
                '"2000"',
            ),
        ),
        through_end=True,  # "run the notebook"
    ),
    Exercise(
        "07_training",
        "Set `cfg = replace(cfg, pct_start=0.25)` in the recipe cell",
        edits=(
            Edit(
                "cfg = RECIPES[RECIPE](",
                "fast=True)\n",
                "fast=True)\ncfg = replace(cfg, pct_start=0.25)\n",
            ),
        ),
    ),
    Exercise("07_training", "Why not use the peak from the first step?", none=QUESTION),
    Exercise("07_training", "*higher* than train accuracy", none=QUESTION),
    Exercise(
        "07_training",
        "compare the spread of the two seeds' best accuracies",
        none="read from the printed numbers; the cells that print them run in the chapter test",
    ),
    # ------------------------------------------------------------------ 8 experiments
    Exercise(
        "08_experiments",
        "call a difference whenever the means differ",
        edits=(
            Edit(
                "MIN_SEEDS = 3",
                "    _, lo, hi = welch(a, b, level)\n"
                '    return "better" if lo > 0 else "worse" if hi < 0 else "no verdict"',
                "    gap = statistics.mean(a) - statistics.mean(b)\n"
                "    if abs(gap) > statistics.stdev(b):\n"
                '        return "better" if gap > 0 else "worse"\n'
                '    return "no verdict"',
            ),
        ),
    ),
    Exercise(
        "08_experiments",
        "Keep only seed 1 of every variant",
        edits=(
            Edit(
                "def last(rs: list)",
                "def last(rs: list)",
                "runs = {n: rs[:1] for n, rs in runs.items()}\n\n\ndef last(rs: list)",
            ),
        ),
    ),
    Exercise("08_experiments", "Two candidates differ only in skips", none=QUESTION),
    Exercise("08_experiments", "Why compare at equal parameters", none=QUESTION),
    Exercise("08_experiments", "Which runs would settle it?", none=QUESTION),
    # ------------------------------------------------------------------ 9 search
    Exercise(
        "09_search",
        "**A harsher rung.**",
        edits=(
            Edit(
                "def replay(",
                "stopped = sum(",
                "print(replay(rows, 3, [1], max_t))\nstopped = sum(",
            ),
        ),
    ),
    Exercise(
        "09_search",
        "**Order matters.**",
        edits=(
            Edit(
                "def replay(",
                "stopped = sum(",
                "print(replay(rows[::-1], eta, rungs, max_t))\nstopped = sum(",
            ),
        ),
    ),
    Exercise("09_search", "**Is a larger field a cost or a gain?**", none=NEW_CODE),
    Exercise("09_search", "**How many validation images?**", none=QUESTION),
    Exercise("09_search", "**An empirical distribution function.**", none=NEW_CODE),
)
