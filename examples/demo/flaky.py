"""A demo service that works for a few seconds, then crashes."""

import random
import sys
import time

lifetime = random.uniform(3, 8)
print(f"flaky: up, will crash in {lifetime:.1f}s", flush=True)
time.sleep(lifetime)
print("flaky: something went wrong", file=sys.stderr, flush=True)
raise RuntimeError("simulated crash")
