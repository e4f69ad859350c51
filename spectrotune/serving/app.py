"""``spectrotune serve``: a model bundle behind HTTP on Ray Serve (the only module of this room that imports ``ray``).

:class:`GenreServer` is the Serve deployment. Each replica loads the bundle once
(:class:`~spectrotune.serving.inference.ModelService`) and answers every route of
:data:`spectrotune.serving.http.ROUTES` itself (plain Starlette requests, no framework): the page, ``/healthz``,
``/v1/model``, ``/v1/predict`` and ``/v1/embed``. An upload is read with the size limit enforced as it arrives,
decoded in a worker thread, and its windows join those of the other requests waiting at that replica in one forward
pass (``@serve.batch``, up to ``max_batch_size`` requests or ``batch_wait_s`` s), so a GPU replica runs full batches.

Back-pressure, in two layers: a replica handling ``max_concurrent_uploads`` uploads answers the next at once with 429
(JSON, ``Retry-After``); Serve's proxy queues at most ``max_queued_requests`` requests for busy replicas and answers
503 beyond that. Errors a client causes are JSON 4xx (:class:`~spectrotune.serving.http.HttpError`); anything else is
logged and answered 500, and the replica goes on serving.

Three ways to run it, one app (:func:`build_app`):

- ``spectrotune serve BUNDLE`` (:func:`serve_bundle`): a local Ray on loopback (or ``RAY_ADDRESS``), Serve's HTTP proxy
  on ``--host``/``--port`` (127.0.0.1:8000 unless told otherwise), until Ctrl-C or SIGTERM;
- ``python jobs/serve.py BUNDLE ...``: the same, as a Ray job;
- ``serve run jobs/serve.yaml`` / ``serve deploy jobs/serve.yaml``: Serve's own CLI, with
  ``import_path: spectrotune.serving.app:build_app`` and the bundle and options as ``args``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ray import serve
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from spectrotune.errors import ConfigError
from spectrotune.serving.http import STATIC, BodyLimit, HttpError, json_bytes, parse_top_k, parse_upload, route
from spectrotune.serving.inference import Clip, ModelService
from spectrotune.serving.options import ServeOptions

__all__ = ["APP_NAME", "GenreServer", "build_app", "serve_bundle"]

logger = logging.getLogger(__name__)
#: The Serve application name (``serve status`` lists it).
APP_NAME = "spectrotune"
_JSON = "application/json"


@serve.deployment(name="GenreServer", max_ongoing_requests=ServeOptions().max_ongoing_requests)
class GenreServer:
    """One replica: the bundle loaded once, the routes, the upload limit and the batched forward pass."""

    def __init__(self, bundle: str, options: Mapping[str, Any]) -> None:
        import torch
        from threadpoolctl import threadpool_limits

        self.options = ServeOptions.from_args(options)
        _replica_grpc_on_loopback()
        threads = max(1, int(self.options.num_cpus))
        # One replica per reserved CPU: more BLAS/torch threads would only fight the neighbouring replicas.
        torch.set_num_threads(threads)
        self._limits = threadpool_limits(threads)
        self.service = ModelService(bundle, self.options)
        static = resources.files("spectrotune.serving") / "static"
        self.static = {path: ((static / name).read_bytes(), ctype) for path, (name, ctype) in STATIC.items()}
        self.uploads = 0  # uploads in progress at this replica (the event loop is single-threaded: no lock needed)
        self._predict.set_max_batch_size(self.options.max_batch_size)
        self._predict.set_batch_wait_timeout_s(self.options.batch_wait_s)
        self._embed.set_max_batch_size(self.options.max_batch_size)
        self._embed.set_batch_wait_timeout_s(self.options.batch_wait_s)

    def __del__(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.close()

    async def __call__(self, request: Request) -> Response:
        try:
            endpoint = route(request.method, request.url.path)
            if endpoint in ("page", "static"):
                body, ctype = self.static[request.url.path.rstrip("/") or "/"]
                return Response(body, media_type=ctype, headers={"Cache-Control": "no-cache"})
            if endpoint == "health":
                return _json({"status": "ok", "model": self.service.model_info["name"],
                              "version": self.service.version, "uploads_in_progress": self.uploads})
            if endpoint == "model":
                return _json(self.service.model_info)
            return await self._upload(endpoint, request)
        except HttpError as e:
            return _json(e.body(), status=e.status, headers=e.headers)
        except ClientDisconnect:  # the client went away mid-upload: nobody reads this reply
            return _json({"error": {"status": 400, "code": "disconnected", "message": "client disconnected"}},
                         status=400)
        except Exception:  # noqa: BLE001 - a bug answers 500 and is logged; the replica keeps serving
            logger.exception("%s %s failed", request.method, request.url.path)
            return _json({"error": {"status": 500, "code": "internal_error",
                                    "message": "the server failed on this request; its log has the traceback"}},
                         status=500)

    async def _upload(self, endpoint: str, request: Request) -> Response:
        if endpoint == "embed" and not self.service.can_embed:
            raise self.service.no_embedding()
        top_k = parse_top_k(request.url.query, default=self.options.top_k, n_labels=len(self.service.labels))
        if self.uploads >= self.options.max_concurrent_uploads:
            raise HttpError(429, "busy", f"this replica is already handling {self.uploads} uploads (the limit, "
                            "spectrotune serve --max-concurrent-uploads); retry shortly", headers={"Retry-After": "1"})
        self.uploads += 1
        try:
            t0 = time.perf_counter()
            limit = BodyLimit(self.options.max_upload_bytes, request.headers.get("content-length"))
            async for chunk in request.stream():
                limit.add(chunk)
            upload = parse_upload(request.headers.get("content-type"), limit.body(),
                                  filename=request.headers.get("x-filename", ""))
            clip = await asyncio.to_thread(self.service.decode, upload)
            if endpoint == "embed":
                reply = self.service.embed_reply(clip, await self._embed(clip), seconds=time.perf_counter() - t0)
            else:
                proba = None if clip.silent else await self._predict(clip)  # silence gets no genre, as in predict
                reply = self.service.reply(clip, proba, top_k=top_k, seconds=time.perf_counter() - t0)
            return _json(reply)
        finally:
            self.uploads -= 1

    @serve.batch(max_batch_size=ServeOptions().max_batch_size, batch_wait_timeout_s=ServeOptions().batch_wait_s)
    async def _predict(self, clips: list[Clip]) -> list[Any]:
        return await asyncio.to_thread(self.service.forward, clips)

    @serve.batch(max_batch_size=ServeOptions().max_batch_size, batch_wait_timeout_s=ServeOptions().batch_wait_s)
    async def _embed(self, clips: list[Clip]) -> list[Any]:
        return await asyncio.to_thread(self.service.embed, clips)


def _replica_grpc_on_loopback() -> None:
    """On a loopback-only node, make this replica's inter-deployment gRPC server listen on 127.0.0.1 too.

    Ray 2.60's replica binds that server (unused unless ``RAY_SERVE_USE_GRPC_BY_DEFAULT=1``) to ``[::]:0``, every
    interface, whatever the node's address; it does so after this constructor runs, through the name its module
    imported, which is what is replaced here. A node with a routable address (a cluster) is left as Ray made it.
    """
    import ray
    from ray.serve._private import replica

    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or ray.util.get_node_ip_address() != "127.0.0.1":
        return

    def on_loopback(server: Any, address: str) -> int:
        return original(server, address.replace("[::]", "127.0.0.1", 1))

    replica.add_port_to_grpc_server = on_loopback


def _json(obj: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json_bytes(obj), status_code=status, media_type=_JSON, headers=dict(headers or {}))


def build_app(args: Mapping[str, Any]) -> serve.Application:
    """The Serve application for ``args``: ``bundle`` (a folder or URI every replica can read) plus any
    :class:`~spectrotune.serving.options.ServeOptions` field. ``serve run``/``serve deploy`` call it through
    ``import_path: spectrotune.serving.app:build_app``; ``host``/``port`` there are the config's ``http_options``."""
    args = dict(args)
    bundle = args.pop("bundle", None)
    if not bundle:
        raise ConfigError("serve args: 'bundle' is required (the model bundle folder or URI)")
    options = ServeOptions.from_args(args, origin="serve args")
    deployment = GenreServer.options(
        num_replicas=options.replicas,
        max_ongoing_requests=options.max_ongoing_requests,
        max_queued_requests=options.max_queued_requests,
        ray_actor_options={"num_cpus": options.num_cpus, "num_gpus": options.num_gpus},
    )
    return deployment.bind(str(bundle), options.to_args())


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e} (choose another --port)") from None


def serve_bundle(bundle: str | Path, options: ServeOptions, *, log: Callable[[str], None] = logger.info,
                 block: bool = True) -> str:
    """Serve ``bundle`` with ``options`` on a local Ray (or ``RAY_ADDRESS``) until Ctrl-C / SIGTERM.

    The bundle is loaded here first, so a bad bundle is one clear error before Ray starts. Returns the URL (at once
    when ``block`` is False; Serve then keeps running until :func:`ray.serve.shutdown`).
    """
    import ray

    from spectrotune import runtime, storage
    from spectrotune.bundle import load_bundle

    meta = load_bundle(bundle).meta
    bundle = storage.norm(bundle)
    if not storage.is_uri(bundle):
        bundle = Path(bundle).resolve()
    joined = bool(os.environ.get("RAY_ADDRESS"))
    if not joined:
        _check_port_free(options.host, options.port)
    runtime.init_ray()
    if not joined:
        cpus = ray.cluster_resources().get("CPU", 0)
        if options.replicas * options.num_cpus > cpus:
            raise ConfigError(f"--replicas {options.replicas} need {options.replicas * options.num_cpus:g} CPUs; "
                              f"this machine's Ray has {cpus:g}")
    serve.start(http_options={"host": options.host, "port": options.port})
    serve.run(build_app({"bundle": str(bundle), **options.to_args()}), name=APP_NAME, route_prefix="/")
    url = f"http://{options.host if ':' not in options.host else f'[{options.host}]'}:{options.port}/"
    log(f"serving {meta.model.name} ({len(meta.labels)} genres) from {bundle} at {url} with {options.replicas} "
        f"replica(s), batches of up to {options.max_batch_size}; Ctrl-C to stop")
    if not block:
        return url
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        log("stopping the server")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if joined:  # a shared cluster keeps Serve and its other applications; only ours goes
            serve.delete(APP_NAME)
    # A local Ray (Serve included) ends with runtime.shutdown_ray, which the command line calls when done.
    return url


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
