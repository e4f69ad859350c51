"""Ray job: `spectrotune pipeline` with the same options (--config, --set, ...) and the same package function.

    python jobs/pipeline.py --help
    ray job submit --working-dir . -- python jobs/pipeline.py ...
"""

import sys

from spectrotune.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
