"""Ray job: `spectrotune train` with the same options (--config, --set, ...) and the same package function.

    python jobs/train.py --help
    ray job submit --working-dir . -- python jobs/train.py ...
"""

import sys

from spectrotune.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
