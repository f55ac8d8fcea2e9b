"""``rewardbench serve``: start a reward service (`rewardbench.service`) on a local Ray or an existing cluster, with
an optional HTTP endpoint (`rewardbench.http_service`); it serves until interrupted (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import json
import signal
import time

import click

from .common import command, json_option, parse_config, parse_weights, usage_exit, usage_phase

_EPILOG = """\b
Examples:
  # a local Ray, two replicas of an offline reward, an HTTP endpoint on port 8000
  rewardbench serve --rewards jpeg-compressibility --replicas 2 --http-port 8000
\b
  # on a running cluster (`ray start --head` on the judge machine): a 7B judge on a GPU of its own per replica
  rewardbench serve --rewards hpsv3,ocr --address auto --num-gpus hpsv3=1 --replicas hpsv3=2 --dtype bf16
\b
  # then, from the trainer (a recipe: `reward_kwargs: {remote: ray}`), or in Python:
  #   rewardbench.load_reward("hpsv3", remote="ray")          # a process of the same cluster
  #   rewardbench.load_reward("hpsv3", remote="http://judge:8000")
\b
  # rewards sharing a backbone (here the people detector of the fairness rewards), served together:
  # their replicas hold it once
  rewardbench serve --rewards skin-tone-parity+gender-parity+nsfw --replicas 2
\b
--replicas, --num-cpus, --num-gpus and --runtime-env take VALUE (every reward) or NAME=VALUE (one reward, or the
first of a NAME+NAME set); repeat them. --detach leaves the service running on the cluster and exits (stop it
with `ray stop`).
Exit codes: 0 stopped, 1 the service failed, 2 usage error (before anything loads; Ray missing:
pip install 'rewardbench[ray]').
"""


def per_reward(items: tuple[str, ...], flag: str, names: list[str], cast, default):
    """``VALUE`` (every reward) or ``NAME=VALUE`` options as ``{canonical name: value}``.

    >>> per_reward(("2", "b=3"), "--replicas", ["a", "b"], int, 1)
    {'a': 2, 'b': 3}
    >>> per_reward(('b={"pip": ["pkg==1.0"]}',), "--runtime-env", ["a", "b"], json.loads, None)
    {'a': None, 'b': {'pip': ['pkg==1.0']}}
    """
    from rewardbench.registry import REGISTRY

    out = dict.fromkeys(names, default)
    for it in items:
        try:  # VALUE for every reward (a JSON value may hold '=': {"pip": ["pkg==1.0"]})
            out = dict.fromkeys(names, cast(it))
            continue
        except (TypeError, ValueError):
            pass
        name, sep, value = it.partition("=")  # NAME=VALUE: names hold no '=', values may
        try:
            if not sep:
                raise ValueError(it)
            v = cast(value)
        except (TypeError, ValueError):
            usage_exit(f"{flag} {it!r}: expected VALUE or NAME=VALUE (e.g. {flag} {names[0]}=1)")
        with usage_phase():
            canon = REGISTRY.canonical(name.strip()) if name.strip() not in out else name.strip()
        if canon not in out:
            usage_exit(f"{flag} {it}: {name!r} is not among the served rewards ({', '.join(names)})")
        out[canon] = v
    return out


def _non_negative(cast):
    def conv(v: str):
        x = cast(v)
        if x < 0:
            raise ValueError(v)
        return x
    return conv


@command("serve", _EPILOG)
@click.option("--rewards", "-r", required=True, metavar="NAME[,NAME...]",
              help="Rewards to serve (`rewardbench list`); NAME+NAME: rewards sharing a backbone, served by the same "
                   "replicas (the backbone once in memory).")
@click.option("--address", default=None, metavar="ADDRESS",
              help="The Ray cluster: auto (the running one), ray://HOST:PORT, HOST:PORT (its GCS). "
                   "Default: $RAY_ADDRESS, else a local Ray started here.")
@click.option("--http-port", default=None, type=click.IntRange(0, 65535), metavar="PORT",
              help="Also answer HTTP on this port (0: a free one; the URL is printed).")
@click.option("--host", default="127.0.0.1", show_default=True, help="The HTTP endpoint's interface (0.0.0.0: all).")
@click.option("--name", "service", default="rewardbench-service", show_default=True,
              help="The service's name on the cluster (clients: load_reward(..., remote='ray') finds the default).")
@click.option("--replicas", multiple=True, metavar="[NAME=]N", help="Replicas (Ray actors) per reward. Default 1.")
@click.option("--num-cpus", multiple=True, metavar="[NAME=]X", help="CPUs per replica. Default 1.")
@click.option("--num-gpus", multiple=True, metavar="[NAME=]X", help="GPUs per replica (fractions share one). "
              "Default 0.")
@click.option("--no-resource-check", is_flag=True, help="Start even when the cluster cannot hold every replica now "
              "(a cluster an autoscaler will grow); without it such a plan exits 2, saying what it asked for.")
@click.option("--runtime-env", multiple=True, metavar="[NAME=]JSON",
              help='A Ray runtime environment for the replicas, e.g. \'hpsv3={"env_vars": {"HF_HOME": "/models"}}\'.')
@click.option("--device", default=None, help="Where replicas run their model (default: their GPU if they have one).")
@click.option("--dtype", default=None, type=click.Choice(["float32", "fp32", "bf16", "bfloat16", "fp16", "float16"]),
              help="Model precision.")
@click.option("--weights", "-w", multiple=True, metavar="NAME=PATH", help="Weights for one reward. Repeatable.")
@click.option("--config", "-c", "configs", multiple=True, metavar="NAME:KEY=VALUE",
              help="A constructor option for one reward (value read as YAML). Repeatable.")
@click.option("--random-weights", is_flag=True, help="Random weights (smoke tests: the provenance says so).")
@click.option("--max-batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Images per forward pass at most (requests of all callers are batched together).")
@click.option("--batch-wait-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="How long a replica waits for more requests before a forward pass.")
@click.option("--detach", is_flag=True, help="Leave the service on the cluster and exit (needs a running cluster).")
@json_option
def serve(rewards, address, http_port, host, service, replicas, num_cpus, num_gpus, no_resource_check, runtime_env,
          device, dtype, weights, configs, random_weights, max_batch_size, batch_wait_ms, detach, as_json):
    """Serve rewards as Ray actors (batched requests of many callers, per-call timeouts, restarted replicas,
    per-reward errors), used through rewardbench.load_reward(NAME, remote=...) or the HTTP endpoint."""
    from rewardbench.preflight import check_reward_options
    from rewardbench.wire import require_ray

    wmap, cfg = parse_weights(weights), parse_config(configs)
    sets = [[n.strip() for n in item.split("+") if n.strip()] for item in rewards.split(",") if item.strip()]
    with usage_phase(ValueError):
        flat = check_reward_options([n for group in sets for n in group], wmap, cfg)
        ray = require_ray()
    canon_sets, k = [], 0
    for group in sets:  # a+b: served by the same replicas, sharing their backbone
        canon_sets.append(flat[k:k + len(group)])
        k += len(group)
    names = [group[0] for group in canon_sets]
    if detach and http_port is not None:
        usage_exit("--detach leaves no process to answer HTTP: drop --http-port, or run without --detach")
    if detach and address is None:
        usage_exit("--detach needs a running cluster (--address auto): a local Ray stops when this command exits")
    reps = per_reward(replicas, "--replicas", names, _non_negative(int), 1)
    cpus = per_reward(num_cpus, "--num-cpus", names, _non_negative(float), 1.0)
    gpus = per_reward(num_gpus, "--num-gpus", names, _non_negative(float), 0.0)
    envs = per_reward(runtime_env, "--runtime-env", names, json.loads, None)
    if any(v < 1 for v in reps.values()):
        usage_exit("--replicas: every reward needs at least 1 replica")
    if any(e is not None and not isinstance(e, dict) for e in envs.values()):
        usage_exit("--runtime-env: expected a JSON object, e.g. '{\"env_vars\": {\"A\": \"1\"}}'")
    from rewardbench.registry import REGISTRY
    from rewardbench.service import RewardService, ServedReward

    w_canon = {REGISTRY.canonical(k): v for k, v in wmap.items()}
    c_canon = {REGISTRY.canonical(k): v for k, v in cfg.items()}
    if any(len(g) > 1 and any(m in w_canon or m in c_canon for m in g) for g in canon_sets):
        usage_exit("--weights/--config: not for rewards served together (a+b); serve them apart to set those")
    served = [ServedReward(n, replicas=reps[n], num_cpus=cpus[n], num_gpus=gpus[n], runtime_env=envs[n],
                           device=device, dtype=dtype, pretrained=not random_weights, weights=w_canon.get(n),
                           config=c_canon.get(n, {}), max_batch_size=max_batch_size,
                           batch_wait_s=batch_wait_ms / 1000, also=tuple(g[1:])) for n, g in zip(names, canon_sets)]
    if not ray.is_initialized():
        from rewardbench.wire import NAMESPACE

        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    svc = RewardService(served, name=service, detached=detach, check_resources=not no_resource_check).start()
    frontend = None
    try:
        if http_port is not None:
            from rewardbench.http_service import HttpFrontend

            frontend = HttpFrontend(service, host=host, port=http_port).start()
        _announce(svc, frontend, as_json)
        if detach:
            return
        signal.signal(signal.SIGTERM, _interrupt)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping the reward service", err=True)
    finally:
        if frontend is not None:
            frontend.stop()
        if not detach:
            svc.shutdown()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _announce(svc, frontend, as_json: bool) -> None:
    rows = svc.describe()
    url = frontend.url if frontend is not None else None
    if as_json:
        click.echo(json.dumps({"service": svc.name, "http": url, "rewards": rows}), nl=True)
        return
    from rewardbench.tables import render_table

    click.echo(render_table(rows, ["reward", "with", "replicas", "num_cpus", "num_gpus", "device", "weights"]))
    click.echo(f"\nservice {svc.name!r} is up. From a process of this cluster: "
               f"rewardbench.load_reward(NAME, remote='ray')" + (f"; over HTTP: {url}/v1/score" if url else ""))
    click.echo("Ctrl-C stops it." if not svc.detached else "detached: `ray stop` stops it.")
