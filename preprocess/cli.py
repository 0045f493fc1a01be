"""The ``lowmode-preprocess`` command: build, verify, info, show.

    lowmode-preprocess build --source fashion-mnist --out data/fmnist
    lowmode-preprocess build --source cifar10 --input cifar-10-python.tar.gz --out data/c10 --workers 2
    lowmode-preprocess build --source synthetic --out data/syn --num-train 512 --num-val 128 --size 32
    lowmode-preprocess build --source imagenette --input imagenette2-320 --out data/in --size 128 \
        --low-sizes 64,80,96,112
    lowmode-preprocess verify data/fmnist
    lowmode-preprocess info data/fmnist --json
    lowmode-preprocess show data/fmnist --split train --count 8 --out pairs.png

Bad input prints one line ``error: <file or option>: <what was expected>`` and exits with 2
(``--debug`` shows the traceback); so does a file-system error that names its file (disk full,
permission denied): ``error: <file>: <reason>``. Any other exception is a bug: a traceback, exit 1.
``verify`` exits with 1 when it finds problems.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Sequence

from preprocess.dataset_format import DatasetFormatError
from preprocess.errors import InputError

EXIT_BAD_INPUT = 2
EXIT_PROBLEMS = 1


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse hook
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {text!r}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    if not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers (low image heights, "
                                         f"e.g. 64,96), got {text!r}")
    return tuple(int(p) for p in parts)


def _part(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return int(index), int(count)


def _add_build(sub) -> None:
    from preprocess.dataset_format import ENCODINGS
    from preprocess.downsample import METHODS
    from preprocess.shards import TAR_WRITERS
    from preprocess.sources import CHANNELS, SOURCES
    from preprocess.sources.cifar import LABEL_SETS

    p = sub.add_parser("build", help="build a dataset directory of paired full/low shards")
    p.add_argument("--source", required=True, choices=SOURCES)
    p.add_argument("--input", help="archive or folder of the source (fashion-mnist: default "
                                   "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--out", required=True, help="dataset directory to write")
    p.add_argument("--ratio", type=_int_at_least(2), help="downsampling ratio r of the one low resolution "
                                                          "(default 2; not with --low-sizes)")
    p.add_argument("--low-sizes", type=_sizes, metavar="H[,H...]",
                   help="heights of the low resolutions, each below the full height (e.g. 64,80,96,112; widths "
                        "scale along): the first is 'low', each further one is stored as low<H>/")
    p.add_argument("--method", choices=METHODS, default="gaussian",
                   help="downsampling: gaussian (sigma=(s-1)/2 for scale s; integer r: keep every r-th pixel), "
                        "area, bilinear")
    p.add_argument("--encoding", choices=ENCODINGS, default="raw", help="image bytes in the tars (default raw)")
    p.add_argument("--samples-per-shard", type=_int_at_least(1), default=5000)
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="write-time shuffle seed")
    p.add_argument("--workers", type=_int_at_least(1), default=1, help="processes (output identical for any N)")
    p.add_argument("--overwrite", action="store_true", help="replace a directory built with another config")
    p.add_argument("--part", type=_part, help="I/N: build only shards k %% N == I, no manifest (job arrays)")
    p.add_argument("--label", choices=LABEL_SETS, help="cifar100 labels (default fine)")
    p.add_argument("--size", type=_int_at_least(1),
                   help="image side: synthetic (32), imagefolder centre-crop/resize (default: the images' "
                        "own side when they all share one square size)")
    p.add_argument("--channels", type=int, choices=CHANNELS,
                   help="synthetic (3), imagefolder (default: 1 if every image is grey, else 3)")
    p.add_argument("--num-train", type=_int_at_least(1), help="synthetic train samples (default 1024)")
    p.add_argument("--num-val", type=_int_at_least(0), help="synthetic val samples (default 256)")
    p.add_argument("--num-classes", type=_int_at_least(2), help="synthetic classes (default 10)")
    p.add_argument("--val-fraction", type=_fraction, help="imagefolder val share without split folders (0.1)")
    p.add_argument("--jpeg-quality", type=_int_at_least(1), default=95)
    p.add_argument("--tar-writer", choices=TAR_WRITERS, default="fast",
                   help="fast (default) or webdataset's TarWriter: the same bytes, TarWriter is ~15x slower")
    p.add_argument("--download", action="store_true", help="cifar, imagenette: download with torchvision into --input")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")


def _parser() -> argparse.ArgumentParser:
    from preprocess.dataset_format import SPLITS

    parser = _Parser(prog="lowmode-preprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_build(sub)
    p = sub.add_parser("verify", help="re-hash and cross-check every shard; exit 1 on any problem")
    p.add_argument("data")
    p = sub.add_parser("info", help="summarise a dataset directory")
    p.add_argument("data")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("show", help="write a PNG of full and low images side by side")
    p.add_argument("data")
    p.add_argument("--split", choices=SPLITS, default="train")
    p.add_argument("--count", type=_int_at_least(1), default=8)
    p.add_argument("--out", default="pairs.png")
    for p in sub.choices.values():  # --debug is accepted after the subcommand too
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def _build_config(args: argparse.Namespace):
    """The BuildConfig of ``build``'s arguments; an option of another source is reported, not ignored."""
    from preprocess.config import BuildConfig
    from preprocess.sources import SOURCE_OPTIONS, option_sources

    options = sorted({option for names in SOURCE_OPTIONS.values() for option in names})
    for option in options:
        value = getattr(args, option)
        if value not in (None, False) and args.source not in option_sources(option):
            raise InputError(f"--{option.replace('_', '-')}: only used by source "
                             f"{' or '.join(option_sources(option))}, not {args.source}")
    optional = {k: getattr(args, k) for k in options if getattr(args, k) is not None}
    return BuildConfig(source=args.source, out=args.out, input=args.input, ratio=args.ratio,
                       low_sizes=args.low_sizes, method=args.method,
                       encoding=args.encoding, samples_per_shard=args.samples_per_shard, seed=args.seed,
                       workers=args.workers, overwrite=args.overwrite, part=args.part,
                       jpeg_quality=args.jpeg_quality, tar_writer=args.tar_writer, **optional)


def _cmd_build(args: argparse.Namespace) -> int:
    from preprocess.build import run_build

    config = _build_config(args)
    result = run_build(config, progress=sys.stderr.isatty() and not args.quiet)
    if not args.quiet:
        print(_summary(result))
    return 0


def _summary(result) -> str:
    """One line: samples, shards, bytes, seconds, images/s."""
    total_bytes = sum(r[res]["bytes"] for r in result.records for res in result.resolutions)
    samples = sum(r["num_samples"] for r in result.records)
    rate = result.samples_written / result.seconds if result.seconds > 0 else 0.0
    what = "dataset" if result.manifest is not None else "part (no manifest)"
    shards = "shard pairs" if len(result.resolutions) == 2 else f"shards x {len(result.resolutions)} resolutions"
    return (f"{what}: {samples} samples in {len(result.records)} {shards} ({result.built} built, "
            f"{result.kept} kept), {total_bytes / 1e6:.1f} MB, {result.seconds:.1f} s, {rate:.0f} images/s")


def _cmd_verify(args: argparse.Namespace) -> int:
    from preprocess.verify import verify_dataset

    problems = verify_dataset(args.data)
    for problem in problems:
        print(problem)
    if problems:
        print(f"verify: {len(problems)} problem(s) in {args.data}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"verify: {args.data} OK")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from preprocess.show import print_info

    print_info(args.data, as_json=args.json)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from preprocess.show import write_pairs_png

    path = write_pairs_png(args.data, args.split, args.count, args.out)
    print(f"wrote {path}")
    return 0


_COMMANDS = {"build": _cmd_build, "verify": _cmd_verify, "info": _cmd_info, "show": _cmd_show}
_NO_SPACE = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota full"}


def _os_error(exc: OSError) -> str:
    """``<file>: <reason>`` of a file-system error; a full disk also says how to go on."""
    if exc.errno in _NO_SPACE:
        return (f"{exc.filename}: {_NO_SPACE[exc.errno]} ({exc.strerror}); "
                "free space and rerun the same command (a build resumes where it stopped)")
    return f"{exc.filename}: {exc.strerror}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 verify found problems, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (InputError, DatasetFormatError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        if args.debug or exc.filename is None:  # no file to name: a bug, keep the traceback (exit 1)
            raise
        print(f"error: {_os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130
