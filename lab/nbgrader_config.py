"""nbgrader settings for students running `make lab` (read because lab/ is JUPYTER_CONFIG_DIR).

The repository's own nbgrader_config.py (instructor settings) is read as well; this
file only adds what the student side needs: a local exchange folder, so the
Assignments tab works without the system-wide /srv/nbgrader/exchange.
"""
import os

c = get_config()  # noqa: F821  (nbgrader/traitlets provide get_config)

# build/exchange next to this folder; `make lab` creates it. An instructor who runs a
# shared exchange on a lab server sets this to that path instead.
c.Exchange.root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "build", "exchange"))
