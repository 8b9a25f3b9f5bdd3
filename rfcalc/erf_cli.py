"""`rfcalc erf` and `rfcalc explore`: their arguments and what each run does (rfcalc.cli only
wires them in). Errors are ERFError (an RFError) or the kit's UserError, which the CLI prints
as one line, exit 2; output files go through the kit's checks (rfkit_base.commandline)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from rfcalc.geometry import RFError
from rfkit_base.commandline import (
    add_progress_flag,
    check_output,
    prints_to_stderr,
    progress_bar,
    whole_number,
    write_output,
)

__all__ = ["add_erf_arguments", "add_explore_arguments", "run_erf", "run_explore", "INIT"]

INIT = "init"  # in --compare: the model as initialised
INIT_SEED = 0  # torch.manual_seed before the model is built: "as initialised" is repeatable


_positive = whole_number(1, " must be at least 1")


def add_erf_arguments(sub: argparse.ArgumentParser) -> None:
    from rfcalc.render.erf import FORMATS, SCALES

    sub.add_argument(
        "--weights",
        metavar="CKPT",
        help="a state_dict, or a checkpoint written by rftrain (best.pt, last.pt); "
        "default: the model as initialised (torch.manual_seed(0))",
    )
    sub.add_argument(
        "--compare",
        nargs=2,
        metavar=("CKPT_A", "CKPT_B"),
        help=f"two ERFs side by side on one colour scale; '{INIT}' is the model as initialised",
    )
    sub.add_argument(
        "--images",
        metavar="DIR",
        help="a folder of images (searched recursively); default: Gaussian noise",
    )
    sub.add_argument("--n", type=_positive, default=100, help="how many images (default 100)")
    sub.add_argument(
        "--layer",
        metavar="NAME",
        help="the row (or module path) whose centre unit is measured; default: "
        "the output, or the last row with a spatial map",
    )
    sub.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="also draw the heatmap with the theoretical box (.png, .svg, .pdf)",
    )
    sub.add_argument(
        "--scale",
        choices=SCALES,
        default="linear",
        help="colour scale of the picture (default linear)",
    )
    sub.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    sub.add_argument("--format", choices=FORMATS, default="text")
    add_progress_flag(sub)


def add_explore_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--weights",
        metavar="CKPT",
        help="trained weights; the page then shows the ERF trained and at init",
    )
    sub.add_argument(
        "--image",
        metavar="PATH",
        help="the picture under the grid of units (default: a plain grid)",
    )
    sub.add_argument(
        "--images", metavar="DIR", help="images for the ERF heatmaps (default: Gaussian noise)"
    )
    sub.add_argument(
        "--n", type=_positive, default=100, help="how many images for the ERF (default 100)"
    )
    sub.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="explore.html",
        help="the page to write (default explore.html)",
    )
    sub.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_progress_flag(sub)


def _model(target: str, weights: Optional[str]):
    """A fresh model, seeded so that 'as initialised' is the same every run; weights loaded."""
    import torch

    from rfcalc.erf import load_weights
    from rfcalc.load import load_target

    with prints_to_stderr():
        torch.manual_seed(INIT_SEED)
        model = load_target(target)
    if weights is not None and weights != INIT:
        load_weights(model, weights)
    return model.eval()


def _analysis(model, target: str, shape):
    from rfcalc import analyze
    from rfcalc.erf import ERFError

    try:
        with prints_to_stderr():
            return analyze(model, shape)
    except RFError as exc:
        raise ERFError(f"{target} at input {','.join(map(str, shape))}: {exc}") from None


def inputs_for(args: argparse.Namespace, shape):
    """The ERF inputs: --images (a seeded sample, standardised) or Gaussian noise."""
    from rfcalc.erf import load_images, noise_images, noise_words

    if args.images:
        return load_images(args.images, shape, args.n)
    return noise_images(shape, args.n), noise_words(args.n)


def run_erf(args: argparse.Namespace) -> int:
    from rfcalc.erf import ERFError, erf
    from rfcalc.render.erf import PICTURE_FORMATS, figure_bytes, render

    out = None
    if args.output is not None:
        out = check_output(
            args.output, force=args.force, example="erf.png", formats=PICTURE_FORMATS
        )
    if args.compare and args.weights:
        raise ERFError("give either --weights or --compare, not both")
    sources = list(args.compare) if args.compare else [args.weights]
    for s in sources:
        if s not in (None, INIT) and not Path(s).is_file():
            raise ERFError(f"{s}: no such checkpoint file")
    shape = args.input
    models = [_model(args.target, s) for s in sources]
    analysis = _analysis(models[0], args.target, shape)
    images, words = inputs_for(args, shape)
    results = []
    for model, source in zip(models, sources):
        label = "" if source in (None, INIT) else str(source)
        desc = "ERF" if len(sources) == 1 else f"ERF ({source or INIT})"
        bar = progress_bar(total=len(images), desc=desc, unit="img", show=args.progress)
        with prints_to_stderr(), bar:
            results.append(
                erf(
                    model,
                    images,
                    args.layer,
                    analysis=analysis,
                    inputs=words,
                    weights=label,
                    progress=bar.update,
                )
            )
    if out is not None and len(shape) != 3:
        raise ERFError("-o draws 2-D inputs only; use --format text|json here")
    sys.stdout.write(render(results, args.format))
    if out is not None:
        picture = figure_bytes(results, out.suffix.lower().lstrip("."), args.scale)
        write_output(out, picture, force=args.force)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def run_explore(args: argparse.Namespace) -> int:
    from rfcalc.erf import ERFError
    from rfcalc.explore import build_page

    out = check_output(
        args.output, force=args.force, example="explore.html", formats=("html", "htm")
    )
    if args.image and not Path(args.image).is_file():
        raise ERFError(f"{args.image}: no such image file")
    shape = args.input
    if len(shape) != 3:
        raise ERFError("explore draws 2-D inputs (C,H,W) only")
    trained = _model(args.target, args.weights) if args.weights else None
    init = _model(args.target, None)
    analysis = _analysis(init, args.target, shape)
    images, words = inputs_for(args, shape)
    with prints_to_stderr():
        page = build_page(
            init,
            analysis,
            images,
            words,
            trained=trained,
            weights=args.weights or "",
            image=args.image,
            title=args.target,
            progress=args.progress,
        )
    write_output(out, page, force=args.force)
    print(f"wrote {out} ({len(page.encode('utf-8')) / 1e6:.2f} MB)")
    return 0
