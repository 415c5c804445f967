"""A demo worker: one line of made-up progress a second until it is stopped."""

import os
import signal
import sys
import time

instance = os.environ.get("PROCWARD_INSTANCE", "?")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
job = 0
while True:
    job += 1
    print(f"worker {instance}: processed job {job}")
    time.sleep(1)
