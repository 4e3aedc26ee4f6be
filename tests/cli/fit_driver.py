"""Run ``mendlight`` in a real subprocess, logging each training step's records; optionally die at a step.

Usage: ``python fit_driver.py TRAIL KILL_STEP SIGNAL -- <mendlight arguments>``. After the training step that
reaches global step ``KILL_STEP`` (0: never) the process sends itself ``SIGNAL`` (``KILL``, ``TERM`` or
``INT``). Each step appends ``<global step>\t<record ids>`` to ``TRAIL`` (flushed at once, so a killed run
keeps every line it wrote).
"""

from __future__ import annotations

import os
import signal
import sys

from pytorch_lightning import Callback

import mendlight.cli as cli


class Trail(Callback):
    def __init__(self, path: str, kill_step: int, signum: int) -> None:
        self.path, self.kill_step, self.signum = path, kill_step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero:
            with open(self.path, "a") as fh:
                fh.write(f"{trainer.global_step}\t{','.join(batch['meta']['ids'])}\n")
                fh.flush()
        if trainer.global_step == self.kill_step:
            os.kill(os.getpid(), self.signum)


def main() -> None:
    trail, kill_step, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, "SIG" + sys.argv[3])
    args = sys.argv[sys.argv.index("--") + 1 :]
    original = cli.MendLightCLI._instantiate_trainer

    def with_trail(self, config, callbacks):
        return original(self, config, [*callbacks, Trail(trail, kill_step, sig)])

    cli.MendLightCLI._instantiate_trainer = with_trail
    sys.argv = ["mendlight", *args]
    cli.main(args)


if __name__ == "__main__":
    main()
