"""Ray job: prepare a corpus into a Parquet dataset (same options and function as ``spectrotune prepare``).

    python jobs/prepare.py --config gtzan --source /data/gtzan --out /data/gtzan-prepared
    ray job submit --working-dir . -- python jobs/prepare.py --config gtzan --source ... --out ...
"""

import sys

from spectrotune.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
