"""Rules of a rendering of overlays/data-residency/<region>: one region's cluster of a
deployment whose workspaces live in their region's database (HERALD_REGIONS). Each check takes
the rendered objects and returns its problems, one line each, as kube_policies' rules do.

The databases are told apart by the NetworkPolicies named for them (``herald-database-<region>``
and ``herald-database-<region>-engines``: that region's database; ``herald-directory``: the
directory); every other policy must leave the database port shut.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Network, ip_network
from itertools import combinations

from tests.deploy.kube_policies import Check, _containers, _environment, _selects
from tests.deploy.kube_render import Obj, config, name, of_kind, pod_spec, workloads

#: The regions of overlays/data-residency, each a directory of its own there.
REGIONS = ("eu-west-1", "us-east-1")
DIRECTORY = "directory"
DATABASE_PORT = 5432
#: The well-known node label of a node's cloud region.
REGION_LABEL = "topology.kubernetes.io/region"
#: What each role's pods reach: the API serves any region's keys and reads the directory, the
#: migration migrates them all; the engines reach their own region's database (None) only.
REACH: dict[str, set[str] | None] = {
    "api": {*REGIONS, DIRECTORY},
    "migrate": {*REGIONS, DIRECTORY},
    "dispatcher": None,
    "worker": None,
}
#: herald-secrets' keys of the settings a deployment in several regions needs.
SECRET_KEYS = {"HERALD_REGIONS": "regions", "HERALD_DIRECTORY_URL": "directory-url"}

Network = IPv4Network | IPv6Network


def _role(obj: Obj) -> str | None:
    role: str | None = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    return role


def _args(obj: Obj) -> list[str]:
    return [str(a) for a in _containers(obj)[0].get("args", [])]


def engines_in_region(objects: list[Obj]) -> list[str]:
    """The dispatcher and every worker are started with ``--region`` herald-config's
    HERALD_REGION (once), and every pod runs on that region's nodes, labelled with it."""
    home = config(objects)["HERALD_REGION"]
    problems = []
    if home not in REGIONS:
        problems.append(f"herald-config: HERALD_REGION {home}, not one of {REGIONS}")
    for obj in workloads(objects):
        args = _args(obj)
        if _role(obj) in ("dispatcher", "worker"):
            given = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--region"]
            if given != [home]:
                problems.append(f"{name(obj)}: started with {args}, not --region {home}")
        placed = pod_spec(obj).get("nodeSelector", {}).get(REGION_LABEL)
        labelled = obj["spec"]["template"]["metadata"].get("labels", {}).get("region")
        if placed != home or labelled != home:
            problems.append(f"{name(obj)}: on {REGION_LABEL}={placed}, labelled {labelled}")
    return problems


def _secret_key(container: Obj, variable: str) -> str | None:
    for item in container.get("env", []):
        if item["name"] == variable:
            ref = item.get("valueFrom", {}).get("secretKeyRef", {})
            return str(ref["key"]) if ref.get("name") == "herald-secrets" else None
    return None


def regions_from_secret(objects: list[Obj]) -> list[str]:
    """The API and the migration read HERALD_REGIONS and HERALD_DIRECTORY_URL from
    herald-secrets' ``regions`` and ``directory-url``, and no HERALD_DATABASE_URL (their
    database is their region's); the dispatcher and workers read only this region's database
    (``database-url``), never the regions: no other region's password is in their pods. The
    API serves the other region's keys (api.other_regions = serve)."""
    problems = []
    for obj in workloads(objects):
        engine = _role(obj) in ("dispatcher", "worker")
        for c in _containers(obj):
            for variable, key in SECRET_KEYS.items():
                found = _secret_key(c, variable)
                if engine and found is not None:
                    problems.append(f"{name(obj)}: {variable} in an engine's pod")
                elif not engine and found != key:
                    problems.append(f"{name(obj)}: {variable} not from herald-secrets' {key}")
            env = _environment(c, objects)
            if isinstance(env, str):
                problems.append(f"{name(obj)}: {env}")
                continue
            own = _secret_key(c, "HERALD_DATABASE_URL")
            if engine and own != "database-url":
                problems.append(f"{name(obj)}: its region's database not from database-url")
            if not engine and "HERALD_DATABASE_URL" in env:
                problems.append(f"{name(obj)}: HERALD_DATABASE_URL beside the regions")
            other_regions = env.get("HERALD_API__OTHER_REGIONS")
            if _role(obj) == "api" and other_regions != "serve":
                problems.append(f"{name(obj)}: the other region's keys: {other_regions}")
    return problems


def migration(objects: list[Obj]) -> list[str]:
    """The region's cluster has its own migration Job, ``herald migrate`` (every region's
    database and the directory, each under its advisory lock: the two regions' Jobs may run
    at once)."""
    jobs = [obj for obj in of_kind(objects, "Job") if _role(obj) == "migrate"]
    if [_args(job) for job in jobs] != [["migrate"]]:
        return [f"migration Jobs {[name(j) for j in jobs]}, not one running herald migrate"]
    return []


# -- who reaches which database -----------------------------------------------------------------


def _database_of(policy: Obj) -> str | None:
    policy_name = name(policy)
    if policy_name == "herald-directory":
        return DIRECTORY
    if policy_name.startswith("herald-database-"):
        return policy_name.removeprefix("herald-database-").removesuffix("-engines")
    return None


def _database_rules(policy: Obj) -> Iterator[Obj]:
    """The egress rules that open the database port (a rule naming no port opens them all)."""
    for rule in policy["spec"].get("egress", []):
        ports = [p.get("port") for p in rule.get("ports", [])]
        if not ports or DATABASE_PORT in ports:
            yield rule


def _blocks(rule: Obj) -> Iterator[tuple[Obj | None, Network | None, list[Network]]]:
    """Each peer of ``rule``, with its address range and exceptions if it is an ipBlock."""
    for peer in rule.get("to") or [None]:
        block = (peer or {}).get("ipBlock")
        if block is None:
            yield peer, None, []
        else:
            yield peer, ip_network(block["cidr"]), [ip_network(e) for e in block.get("except", [])]


def database_addresses(objects: list[Obj]) -> dict[str, dict[str, set[Network]]]:
    """database -> policy named for it -> the address ranges it opens the database port to."""
    out: dict[str, dict[str, set[Network]]] = defaultdict(dict)
    for policy in of_kind(objects, "NetworkPolicy"):
        database = _database_of(policy)
        if database is not None:
            out[database][name(policy)] = {
                network
                for rule in _database_rules(policy)
                for _, network, _ in _blocks(rule)
                if network is not None
            }
    return out


def _addresses_problems(by_database: dict[str, dict[str, set[Network]]]) -> list[str]:
    problems = []
    if set(by_database) != {*REGIONS, DIRECTORY}:
        problems.append(f"policies for the databases {sorted(by_database)}")
    for database, per_policy in by_database.items():
        if len({frozenset(n) for n in per_policy.values()}) != 1:
            problems.append(f"{database}: its policies disagree on its addresses: {per_policy}")
    merged = {db: set().union(*per.values()) for db, per in by_database.items()}
    for (a, nets_a), (b, nets_b) in combinations(sorted(merged.items()), 2):
        if any(x.version == y.version and x.overlaps(y) for x in nets_a for y in nets_b):
            problems.append(f"{a} and {b} share addresses: a policy of one opens the other")
    return problems


def _opens(network: Network, excepted: list[Network], target: Network) -> bool:
    if network.version != target.version or not network.overlaps(target):
        return False
    return not any(
        target.version == e.version and target.subnet_of(e)  # type: ignore[arg-type]
        for e in excepted
    )


def reached(objects: list[Obj], pod: dict[str, str]) -> tuple[set[str], list[str]]:
    """The databases a pod with labels ``pod`` may reach on the database port, and the rules
    that open that port beyond any database's addresses."""
    merged = {db: set().union(*per.values()) for db, per in database_addresses(objects).items()}
    found: set[str] = set()
    problems = []
    for policy in of_kind(objects, "NetworkPolicy"):
        if "Egress" not in policy["spec"].get("policyTypes", []):
            continue
        if not _selects(policy["spec"]["podSelector"], pod):
            continue
        for rule in _database_rules(policy):
            for peer, network, excepted in _blocks(rule):
                if network is None:
                    problems.append(f"{name(policy)}: the database port open to {peer or 'all'}")
                    continue
                hit = {
                    db
                    for db, nets in merged.items()
                    if any(_opens(network, excepted, target) for target in nets)
                }
                if not hit:
                    problems.append(f"{name(policy)}: {DATABASE_PORT} open to {network}")
                found |= hit
    return found, problems


def database_reach(objects: list[Obj]) -> list[str]:
    """Each role's pods reach, on the database port, the databases of :data:`REACH` and no
    other address: the API and the migration every region's and the directory, the
    dispatcher and the workers their own region's only. The databases' addresses (their
    policies') are disjoint."""
    home = config(objects)["HERALD_REGION"]
    problems = _addresses_problems(database_addresses(objects))
    for role, want in REACH.items():
        pods = [
            (name(obj), obj["spec"]["template"]["metadata"].get("labels", {}))
            for obj in workloads(objects)
            if _role(obj) == role
        ]
        if not pods:
            problems.append(f"no {role} pods")
        for owner, labels in pods:
            got, found = reached(objects, labels)
            problems += found
            expected = want if want is not None else {home}
            if got != expected:
                problems.append(f"{owner}: reaches {sorted(got)}, not {sorted(expected)}")
    return list(dict.fromkeys(problems))


ALL: dict[str, Check] = {
    "engines_in_region": engines_in_region,
    "regions_from_secret": regions_from_secret,
    "migration": migration,
    "database_reach": database_reach,
}
