"""``python -m actoros``: the same CLI as the ``actoros`` command."""

import sys

from actoros.cli import main

# The guard matters: vLLM's engine starts worker processes with multiprocessing, and a spawned
# child re-imports the main module; without the guard it would run the CLI again.
if __name__ == "__main__":
    sys.exit(main())
