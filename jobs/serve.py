"""Ray job: `spectrotune serve` with the same options (BUNDLE, --host, --port, --replicas, ...), on the cluster the
job runs on: Serve's HTTP proxy listens on --host/--port of the cluster's nodes; `ray job stop` ends it (our
application is deleted, Serve and other applications stay).

    python jobs/serve.py --help
    ray job submit --working-dir . -- python jobs/serve.py s3://bucket/runs/gtzan/bundle --replicas 2 --host 0.0.0.0

For `serve run` / `serve deploy`, Serve's own CLI, use jobs/serve.yaml instead.
"""

import sys

from spectrotune.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
