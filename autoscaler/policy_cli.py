"""``rva policy check FILE…`` and ``rva policy schema``."""

from __future__ import annotations

import argparse
import json
import sys

from autoscaler.policy import PolicyError, load_policy_file, policy_json_schema


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate policy files (ConfigMap or bare policy YAML)")
    check.add_argument("files", nargs="+", metavar="FILE")
    sub.add_parser("schema", help="print the JSON Schema of policy.yaml")


def main(args: argparse.Namespace) -> int:
    if args.policy_command == "schema":
        print(json.dumps(policy_json_schema(), indent=2, sort_keys=True))
        return 0
    failed = False
    for path in args.files:
        try:
            load_policy_file(path)
        except PolicyError as e:
            failed = True
            print(f"{path}: invalid", file=sys.stderr)
            for line in e.errors:
                print(f"  {line}", file=sys.stderr)
        except OSError as e:
            failed = True
            print(f"{path}: {e.strerror or e}", file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 1 if failed else 0
