#!/usr/bin/env python3
"""Compares one node as kube-apiserver and KOLE serve it (bench/peer/run.sh).

    diff_nodes.py UPSTREAM.json KOLE.json

Drops what legitimately differs between two servers holding the same object
(uid, resourceVersion, creationTimestamp, managedFields, the API group in
apiVersion), then prints every remaining difference as a path with both
values, and the count. Exit status 0 either way: the differences are a
finding to record, not a failure.
"""

import json
import sys

DROPPED = ("uid", "resourceVersion", "creationTimestamp", "managedFields")


def normalise(node):
    node = json.loads(json.dumps(node))
    node["apiVersion"] = node.get("apiVersion", "").split("/")[-1]
    for key in DROPPED:
        node.get("metadata", {}).pop(key, None)
    return node


def walk(path, a, b, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            walk(f"{path}.{key}" if path else key, a.get(key, MISSING), b.get(key, MISSING), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            walk(f"{path}[{i}]", x, y, out)
    elif a != b:
        out.append((path, a, b))


class Missing:
    def __repr__(self):
        return "(absent)"


MISSING = Missing()


def main():
    upstream, kole = (normalise(json.load(open(p))) for p in sys.argv[1:3])
    differences = []
    walk("", upstream, kole, differences)
    print(f"like-for-like: {sys.argv[1]} vs {sys.argv[2]}, dropped: "
          f"metadata.{{{','.join(DROPPED)}}}, the group of apiVersion")
    for path, a, b in differences:
        print(f"  {path}: upstream {json.dumps(a) if a is not MISSING else a!r} | "
              f"kole {json.dumps(b) if b is not MISSING else b!r}")
    same = sum(1 for _ in leaves(upstream)) - len(differences)
    print(f"like-for-like: {len(differences)} fields differ, {same} are identical")


def leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    else:
        yield value


if __name__ == "__main__":
    main()
