#!/usr/bin/env python3
"""Prepares a local run of a Deployment's container, as a kubelet would run it.

The e2e control plane has no kubelet, so the harness runs kole-apiserver as a
local process. To keep that honest it runs exactly what the chart rendered:
this script reads the Deployment back from the cluster and writes a launcher
that starts the container's command and args, with its env, inside the image's
root filesystem (hack/run-in-rootfs.sh), as the pod's user, with every volume
mounted at the pod's paths:

  secret, configMap    the object's data as files (a directory per volume)
  emptyDir, PVC        a directory under --work that survives restarts
  service account      token, ca.crt and namespace at the standard path; the
                       token comes from the TokenRequest API and the harness
                       refreshes it (refresh_token below), like a kubelet

Usage:
  deployment_runner.py prepare --namespace NS --deployment NAME --work DIR
      --rootfs DIR --runner PATH --apiserver-port PORT --cluster-ca FILE
  deployment_runner.py refresh-token --work DIR

`prepare` writes DIR/launch.sh (the container), DIR/exec.sh (another command
in the same pod, like kubectl exec) and DIR/pod.json (what was resolved);
kubectl comes from $KUBECTL and $KUBECONFIG.
"""

import argparse
import base64
import json
import os
import shlex
import subprocess
import sys

SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 3600


def kubectl(*args, stdin=None):
    cmd = [os.environ.get("KUBECTL", "kubectl"), *args]
    result = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"deployment_runner: {' '.join(cmd)} failed: {result.stderr.strip()}")
    return result.stdout


def get_json(*args):
    return json.loads(kubectl("get", "-o", "json", *args))


def write_files(directory, files, mode, uid, gid):
    """Writes name -> bytes into directory, readable by the pod's user."""
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.chmod(path + ".tmp", mode)
        os.chown(path + ".tmp", 0, gid)
        os.replace(path + ".tmp", path)
    os.chown(directory, 0, gid)
    os.chmod(directory, 0o750)


def object_files(kind, name, namespace, items):
    obj = get_json(kind, name, "-n", namespace)
    if kind == "secret":
        data = {k: base64.b64decode(v) for k, v in obj.get("data", {}).items()}
    else:
        data = {k: v.encode() for k, v in obj.get("data", {}).items()}
        data.update({k: base64.b64decode(v) for k, v in obj.get("binaryData", {}).items()})
    if not items:
        return data
    return {item.get("path", item["key"]): data[item["key"]] for item in items}


def env_value(source, pod, container, namespace):
    """Resolves an env var's valueFrom the way the kubelet does."""
    if "fieldRef" in source:
        field = source["fieldRef"]["fieldPath"]
        known = {
            "metadata.name": pod["name"],
            "metadata.namespace": namespace,
            "spec.nodeName": "e2e-local",
            "spec.serviceAccountName": pod["serviceAccount"],
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
        }
        if field not in known:
            sys.exit(f"deployment_runner: env fieldRef {field} is not supported")
        return known[field]
    if "secretKeyRef" in source or "configMapKeyRef" in source:
        kind = "secret" if "secretKeyRef" in source else "configmap"
        ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
        return object_files(kind, ref["name"], namespace, None)[ref["key"]].decode()
    if "resourceFieldRef" in source:
        ref = source["resourceFieldRef"]
        resource = ref["resource"]
        section, _, name = resource.partition(".")
        value = container.get("resources", {}).get(section, {}).get(name)
        if value is None:
            sys.exit(f"deployment_runner: env resourceFieldRef {resource} has no value")
        return str(value)
    sys.exit(f"deployment_runner: unsupported env source {sorted(source)}")


def prepare(args):
    namespace = args.namespace
    deployment = get_json("deployment", args.deployment, "-n", namespace)
    spec = deployment["spec"]["template"]["spec"]
    containers = spec["containers"]
    if len(containers) != 1:
        sys.exit(f"deployment_runner: expected one container, found {len(containers)}")
    container = containers[0]
    pod_security = spec.get("securityContext", {})
    security = container.get("securityContext", {})
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    gid = security.get("runAsGroup", pod_security.get("runAsGroup", uid))
    fs_group = pod_security.get("fsGroup", gid)
    if uid is None:
        sys.exit("deployment_runner: the pod names no numeric runAsUser")
    read_only_root = security.get("readOnlyRootFilesystem", False)
    service_account = spec.get("serviceAccountName", "default")
    pod = {"name": args.deployment + "-e2e-local", "serviceAccount": service_account}

    work = os.path.abspath(args.work)
    volumes_dir = os.path.join(work, "volumes")
    os.makedirs(volumes_dir, exist_ok=True)
    volume_paths = {}
    for volume in spec.get("volumes", []):
        path = os.path.join(volumes_dir, volume["name"])
        if "secret" in volume or "configMap" in volume:
            kind = "secret" if "secret" in volume else "configmap"
            source = volume.get("secret") or volume.get("configMap")
            name = source.get("secretName") or source.get("name")
            mode = source.get("defaultMode", 0o644) & 0o640
            write_files(path, object_files(kind, name, namespace, source.get("items")),
                        mode, uid, fs_group)
        elif "emptyDir" in volume or "persistentVolumeClaim" in volume:
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, fs_group)
            os.chmod(path, 0o770)
        else:
            sys.exit(f"deployment_runner: volume {volume['name']} has an unsupported type")
        volume_paths[volume["name"]] = path

    binds = []
    for mount in container.get("volumeMounts", []):
        source = volume_paths[mount["name"]]
        if mount.get("subPath"):
            source = os.path.join(source, mount["subPath"])
        binds.append(f"{source}:{mount['mountPath']}" + (":ro" if mount.get("readOnly") else ""))

    # The service account's files, as the kubelet projects them for a pod
    # with automountServiceAccountToken.
    if spec.get("automountServiceAccountToken", True):
        account_dir = os.path.join(work, "serviceaccount")
        with open(args.cluster_ca, "rb") as f:
            ca = f.read()
        write_files(account_dir, {"ca.crt": ca, "namespace": namespace.encode()}, 0o640, uid,
                    fs_group)
        with open(os.path.join(work, "token-request.json"), "w") as f:
            json.dump({"namespace": namespace, "serviceAccount": service_account,
                       "directory": account_dir, "gid": fs_group}, f)
        refresh_token(argparse.Namespace(work=work))
        binds.append(f"{account_dir}:{SERVICE_ACCOUNT_PATH}:ro")

    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(args.apiserver_port),
    }
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = env_value(var["valueFrom"], pod, container, namespace)

    command = container.get("command", []) + container.get("args", [])
    if not command:
        sys.exit("deployment_runner: the container names no command (the image's entrypoint "
                 "is not known here)")

    # hack/run-in-rootfs.sh always mounts the root read-only, as the chart
    # asks; a Deployment that does not would be run differently from a pod.
    if not read_only_root:
        sys.exit("deployment_runner: the container does not set readOnlyRootFilesystem")
    runner = [args.runner, "--user", f"{uid}:{gid}"]
    for bind in binds:
        runner += ["--bind", bind]
    for name, value in sorted(env.items()):
        runner += ["--env", f"{name}={value}"]

    launch = os.path.join(work, "launch.sh")
    with open(launch, "w") as f:
        f.write("#!/bin/sh\n# Written by e2e/lib/deployment_runner.py from deployment/"
                f"{args.deployment} in {namespace}.\n"
                f"exec {shlex.join([*runner, args.rootfs, '--', *command])}\n")
    os.chmod(launch, 0o755)

    # exec.sh [RUNNER OPTIONS] -- COMMAND: another process in the pod's
    # root, user, env and volumes, as `kubectl exec` would start one.
    exec_path = os.path.join(work, "exec.sh")
    with open(exec_path, "w") as f:
        f.write("#!/usr/bin/env bash\n# Written by e2e/lib/deployment_runner.py: "
                "exec.sh [--bind SRC:DST] -- COMMAND...\n"
                "extra=()\n"
                'while [ $# -gt 0 ] && [ "$1" != -- ]; do extra+=("$1"); shift; done\n'
                "shift\n"
                f'exec {shlex.join(runner)} "${{extra[@]}}" {shlex.quote(args.rootfs)} -- "$@"\n')
    os.chmod(exec_path, 0o755)
    with open(os.path.join(work, "pod.json"), "w") as f:
        json.dump({"user": uid, "group": gid, "readOnlyRootFilesystem": read_only_root,
                   "binds": binds, "env": sorted(env), "command": command}, f, indent=1)


def refresh_token(args):
    """Writes a fresh service-account token, replacing the old one atomically."""
    with open(os.path.join(args.work, "token-request.json")) as f:
        request = json.load(f)
    token = kubectl("create", "token", request["serviceAccount"], "-n", request["namespace"],
                    f"--duration={TOKEN_SECONDS}s").strip()
    path = os.path.join(request["directory"], "token")
    with open(path + ".tmp", "w") as f:
        f.write(token)
    os.chmod(path + ".tmp", 0o640)
    os.chown(path + ".tmp", 0, request["gid"])
    os.replace(path + ".tmp", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare")
    p.add_argument("--namespace", required=True)
    p.add_argument("--deployment", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--rootfs", required=True)
    p.add_argument("--runner", required=True)
    p.add_argument("--apiserver-port", required=True, type=int)
    p.add_argument("--cluster-ca", required=True)
    r = commands.add_parser("refresh-token")
    r.add_argument("--work", required=True)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args)
    else:
        refresh_token(args)


if __name__ == "__main__":
    main()
