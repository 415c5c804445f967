"""``python -m procward.config FILE [--profile NAME]``: validate, answer in JSON.

Prints ``{"config": …, "sha256": …, "cacheable": …}`` (exit 0: the file's
digest, and whether the answer may be kept, see ``_cache``) or
``{"problems": […]}`` (exit 2). The daemon
runs this to load its configuration, so that pydantic is imported here, in a
process that ends, and never in the long-lived daemon.
"""

from __future__ import annotations

import argparse
import json
import sys

from procward.config._loader import load_config_with_facts
from procward.config._validate import dump_json
from procward.errors import ConfigError


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m procward.config")
    parser.add_argument("file")
    parser.add_argument("--profile")
    args = parser.parse_args()
    try:
        config, facts = load_config_with_facts(args.file, profile=args.profile)
    except ConfigError as e:
        problems = [dict(p._asdict(), file=str(p.file)) for p in e.problems]
        print(json.dumps({"problems": problems}))
        return 2
    sys.stdout.write('{"config": ' + dump_json(config) + ', "sha256": ' + json.dumps(facts.sha256)
                     + ', "cacheable": ' + json.dumps(facts.cacheable) + "}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
