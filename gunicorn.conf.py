"""gunicorn reads this file from the working directory (scripts/serve.sh runs it from here): with
LOG_FORMAT=json its own lines (the master's, the access log) come out as the JSON lines of every other process
(project/logs.py); otherwise nothing changes."""

import os

from project.logs import JSON, log_format, logging_config

if log_format() == JSON:
    logconfig_dict = logging_config(level=os.environ.get("LOG_LEVEL", "INFO"))

# gunicorn's control socket lives with the installation (VAR_DIR), not in the user's home: two installations on
# one machine (tests/nodes.py) each have their own.
control_socket = os.path.join(os.environ.get("VAR_DIR", "var"), "gunicorn.ctl")
