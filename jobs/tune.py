"""Ray job: `spectrotune tune` with the same options (--config, --set, --out, --resume, --cv) and the same function.

    python jobs/tune.py --help
    ray job submit --working-dir . -- python jobs/tune.py configs/sweep.yaml --set sources.gtzan=/data/gtzan ...
"""

import sys

from spectrotune.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
