"""The Kubernetes overlays of deploy/kubernetes, rendered with ``kubectl kustomize``, and the
schemas their objects are checked against.

Kubernetes' own kinds are checked with kubernetes-validate (it ships the API's JSON schemas per
Kubernetes version) in strict mode, as ``kubectl apply`` does by default since 1.27: an unknown
field is an error. KEDA's kinds are checked against the ``openAPIV3Schema`` of KEDA's CRDs
(vendored in schemas/, see its README), made strict the same way.
"""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = KUBERNETES / "overlays"
SCHEMAS = Path(__file__).with_name("schemas")
#: The Kubernetes version the manifests are written for (a current one; the schemas are
#: kubernetes-validate's).
KUBERNETES_VERSION = "1.32.0"
#: The image every Herald container runs, at the package's version (set by kustomize images:).
IMAGE = "ghcr.io/herald/herald"

Obj = dict[str, Any]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# kubernetes-validate reads its schema files (the definitions are megabytes) for every object it
# validates; read each once. It only reads what this returns.
kubernetes_validate.utils.schema_contents = functools.cache(
    kubernetes_validate.utils.schema_contents
)


def kubectl() -> str | None:
    """kubectl on PATH, or the one scripts/tools.sh put beside this Python."""
    found = shutil.which("kubectl")
    if found is not None:
        return found
    beside = Path(sys.executable).with_name("kubectl")
    return str(beside) if beside.exists() else None


def overlay_names() -> list[str]:
    """Every overlay, by its path under overlays/: a directory with a Kustomization, or one
    level below (overlays/data-residency/<region>: one per region's cluster). Components
    beside them (data-residency/residency) are parts, not overlays."""
    found = [*OVERLAYS.glob("*/kustomization.yaml"), *OVERLAYS.glob("*/*/kustomization.yaml")]
    return sorted(
        p.parent.relative_to(OVERLAYS).as_posix()
        for p in found
        if yaml.safe_load(p.read_text()).get("kind") == "Kustomization"
    )


@functools.cache
def _rendered(path: str) -> tuple[Obj, ...]:
    binary = kubectl()
    if binary is None:
        raise FileNotFoundError("kubectl")
    done = subprocess.run(
        [binary, "kustomize", path], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{done.stderr}")
    return tuple(obj for obj in yaml.load_all(done.stdout, Loader=_LOADER) if obj)


def render(path: Path) -> list[Obj]:
    """The objects ``kubectl kustomize path`` renders (a fresh copy each call: tests mutate
    theirs)."""
    return copy.deepcopy(list(_rendered(str(path))))


def load(path: Path) -> list[Obj]:
    return [obj for obj in yaml.safe_load_all(path.read_text()) if obj]


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def workloads(objects: list[Obj]) -> Iterator[Obj]:
    """Deployments and Jobs: everything that runs a Herald container."""
    return (obj for obj in objects if obj["kind"] in ("Deployment", "Job"))


def workers(objects: list[Obj]) -> list[Obj]:
    return [
        obj
        for obj in of_kind(objects, "Deployment")
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
    ]


def config(objects: list[Obj]) -> dict[str, str]:
    """herald-config's data: the HERALD_* settings every pod gets."""
    [config_map] = [obj for obj in of_kind(objects, "ConfigMap") if name(obj) == "herald-config"]
    data: dict[str, str] = config_map["data"]
    return data


# -- schemas ----------------------------------------------------------------------------------

_KEDA_CRDS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}


def _strict(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` wherever an object lists its properties
    and neither allows others nor keeps unknown fields: what the API server's strict field
    validation refuses."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _keda_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load((SCHEMAS / _KEDA_CRDS[kind]).read_text())
    group = crd["spec"]["group"]
    versions = {f"{group}/{v['name']}": v for v in crd["spec"]["versions"]}
    if api_version not in versions:
        raise AssertionError(f"{kind}: KEDA serves no {api_version} (it serves {list(versions)})")
    schema = copy.deepcopy(versions[api_version]["schema"]["openAPIV3Schema"])
    # The API server checks metadata itself; the CRD only says it is an object.
    schema["properties"]["metadata"] = {"type": "object"}
    schema = _strict(schema)
    validator_class = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft7Validator
    )
    return validator_class(schema)


def schema_errors(obj: Obj) -> list[str]:
    """Why ``obj`` is not a valid object of its kind (none: it is)."""
    kind = obj.get("kind", "?")
    label = f"{kind} {obj.get('metadata', {}).get('name', '?')}"
    if kind in _KEDA_CRDS:
        validator = _keda_validator(kind, obj.get("apiVersion", ""))
        return [
            f"{label}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{label}: {'/'.join(map(str, exc.absolute_path))}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{label}: {exc.message}"]
    return []
