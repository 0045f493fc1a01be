"""``python -m trainer.bench`` (also ``lowmode-bench``): the per-step cost benchmark of :mod:`trainer.report.bench`."""

from trainer.report.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
