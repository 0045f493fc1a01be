"""``python -m trainer.bench`` (also ``lowmode-bench``): the per-step cost benchmark of :mod:`trainer.run.step_bench`.

``python -m trainer.bench --loop ...``: the step loop's cost per mode, the real trainer on synthetic
shards beside the step benchmark (:mod:`trainer.run.loop_bench`, also ``python -m trainer.run.loop_bench``).
"""

import sys

from trainer.run.step_bench import main


def cli(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--loop" in argv:
        from trainer.run.loop_bench import main as loop_main

        return loop_main([a for a in argv if a != "--loop"])
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(cli())
