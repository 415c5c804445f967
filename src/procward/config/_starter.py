"""The commented starter configuration ``procward init`` writes.

It must pass ``procward check`` as written and run on any machine with Python,
so the two example services are small ``python -c`` programs, and every key a
user commonly changes is shown, commented out, with its default.
"""

from __future__ import annotations

import json

__all__ = ["starter_config"]

_TEMPLATE = """\
# procward.toml: the programs procward keeps running.
#
#   procward check    report every mistake in this file (file, line and key)
#   procward run      start the services below and keep them running
#
# Durations: "250ms", "5s", "2m", "1h" or a number of seconds.
# Sizes: "50MB", "1GiB" or a number of bytes (KB, MB, GB count in 1024s).
# Strings may use ${VAR} or ${VAR:-default} from the environment; $$ is a literal $.
# Relative paths are relative to the folder of this file.
# A commented-out key shows its default.

[procward]
log_dir = "logs"              # each service's output, and procward.events.jsonl
state_dir = "state"           # runtime state, pids and the local API token
# log_level = "info"          # debug | info | warning | error

[api]
listen = "127.0.0.1:0"        # port 0: any free port, found by the CLI in state_dir;
                              # beyond loopback needs tls_cert and tls_key
# enabled = true
# tls_cert = "certs/server.pem"
# tls_key = "certs/server.key"
# client_ca = "certs/ca.pem"  # also require client certificates (mutual TLS)
# allow_insecure = false      # true: allow plain HTTP beyond loopback

# A tiny web server: open http://127.0.0.1:8000/ while procward runs.
[services.web]
command = [@PYTHON@, "-c", '''
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from procward\\n")

HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
''']
env = { PORT = "${PORT:-8000}" }
depends_on = ["worker"]       # start worker first, stop it last
# cwd = "."                   # default: the folder of this file
# env_file = ".env"           # KEY=VALUE lines; keys in env win
# autostart = true
# restart = "on-failure"      # always | on-failure | never
# success_exit_codes = [0]
# start_seconds = "1s"        # up this long (or READY reported) counts as started
# backoff = { initial = "1s", max = "60s", factor = 2.0, jitter = 0.1, reset_after = "60s" }
# start_limit = { burst = 5, interval = "60s" }  # more automatic restarts -> failed
#                             (every restart counts, also after a program had started)
# stop_signal = "TERM"        # TERM, INT, HUP, QUIT, KILL, USR1, USR2; Windows: CTRL_BREAK, CTRL_C
# stop_timeout = "10s"        # then the whole process tree is killed
# instances = 1               # N copies, web:0 .. web:N-1
# memory_max = "512MB"        # restart above this memory; default: no limit
# notify = false              # true: started only when the program reports READY

[services.web.logs]
max_size = "50MB"             # rotate when a log file grows past this
keep = 5                      # rotated files kept: web.out.log.1 .. .5
# rotate = "daily"            # also rotate daily or hourly; default: by size only
# compress = false            # gzip rotated files
# timestamps = false          # prefix each line with its arrival time
# merge_stderr = false        # one file for both streams

[services.web.health]
http = "http://127.0.0.1:${PORT:-8000}/"  # or tcp = "host:port", command = [...], heartbeat = "30s"
# expect_status = 200         # default: any 2xx
# interval = "5s"
# timeout = "2s"
# start_period = "10s"        # failures this soon after start do not count
# failures = 3                # consecutive failures before unhealthy
# on_unhealthy = "restart"    # restart | alert | none

# Watch the output: fire alert sinks when a pattern matches often enough.
# [[services.web.alerts]]
# pattern = "ERROR|Traceback"
# stream = "both"             # stdout | stderr | both
# threshold = 1               # matches within window
# window = "60s"
# cooldown = "5m"
# actions = ["ops"]           # sink names below, and/or "restart"

# A worker that reports every five seconds.
[services.worker]
command = [@PYTHON@, "-c", '''
import time
while True:
    print("working", flush=True)
    time.sleep(5)
''']
restart = "always"

# Where alerts go.
# [alerts.sinks.ops]
# type = "webhook"            # webhook | command | eventlog (Windows) | syslog
# url = "https://hooks.example/ops"

# Overlays chosen with --profile NAME or $PROCWARD_PROFILE.
# [profiles.dev.services.web.env]
# PORT = "8080"
"""


def starter_config(python: str = "python") -> str:
    """The starter procward.toml text, running its examples with the interpreter ``python``."""
    # json.dumps writes a valid TOML basic string, backslashes of Windows paths included.
    return _TEMPLATE.replace("@PYTHON@", json.dumps(python, ensure_ascii=False))
