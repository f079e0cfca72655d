"""``python -m bench._worker module:function '{json kwargs}'``: one benchmark in a fresh process.

Prints ``BENCH-RESULT {json}`` as its last line of stdout.
"""

from __future__ import annotations

import importlib
import json
import sys

from bench.common import RESULT_TAG


def main() -> int:
    target, raw = sys.argv[1], sys.argv[2]
    module, func = target.split(":")
    result = getattr(importlib.import_module(module), func)(**json.loads(raw))
    sys.stdout.write("\n" + RESULT_TAG + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
