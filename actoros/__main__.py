"""``python -m actoros``: the same CLI as the ``actoros`` command."""

import sys

from actoros.cli import main

# A process multiprocessing spawns (vLLM's engine processes on CPU) re-imports its parent's
# main module, but skips one named ``*.__main__``: without a spec, it runs this file by path
# instead, as it does for the ``actoros`` command, and so imports actoros.cli, which arms the
# child to die with its parent (see actoros.inference.processes).
__spec__ = None

# The guard matters: vLLM's engine starts worker processes with multiprocessing, and a spawned
# child re-imports the main module; without the guard it would run the CLI again.
if __name__ == "__main__":
    sys.exit(main())
