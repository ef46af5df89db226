"""JupyterHub configuration fragment for running this course with nbgrader (NOT tested here).

Read docs/instructor.md first. This file is a starting point to copy into your own
jupyterhub_config.py (plain JupyterHub or The Littlest JupyterHub), or into
``hub.extraConfig`` of a zero-to-jupyterhub deployment (see deploy/z2jh-values.yaml,
which already carries the same settings). Nothing here was run against a real hub:
the course's tests only play the nbgrader exchange on one machine
(tests/test_classroom.py). Check every setting against the JupyterHub, KubeSpawner,
ngshare or nbexchange documentation of the versions you install.

Choose ONE exchange with EXCHANGE below:

- "shared-volume": nbgrader's built-in exchange, a folder every user can write to
  (/srv/nbgrader/exchange). Works when every student is a separate Unix user on one
  machine (file permissions keep submissions apart). In containers where everyone is
  the same user (z2jh's "jovyan"), students can read each other's submissions: use it
  only for a workshop where that does not matter.
- "ngshare": a JupyterHub service that stores the exchange in a database; students
  only see their own files. Needs the ngshare service and ngshare_exchange installed in
  the user image.
- "nbexchange": the same idea from EDINA; needs the nbexchange service and its
  nbgrader plugin in the user image.
"""
import os

c = get_config()  # noqa: F821  (JupyterHub provides get_config)

COURSE_ID = "xfer101"                   # must match CourseDirectory.course_id everywhere
INSTRUCTORS = ["instructor1"]           # hub user names allowed to run formgrader
EXCHANGE = "ngshare"                    # "shared-volume", "ngshare" or "nbexchange"

# --- Who may grade ------------------------------------------------------------------
# nbgrader's formgrader and course list look at these group names.
c.JupyterHub.load_groups = {
    f"formgrade-{COURSE_ID}": {"users": INSTRUCTORS},
    f"nbgrader-{COURSE_ID}": {"users": []},   # students; fill from your roster or LMS
}

# --- The exchange service -------------------------------------------------------------
services = []
if EXCHANGE == "ngshare":
    # ngshare runs as its own service (the ngshare Helm chart on Kubernetes, or
    # `python -m ngshare` next to the hub). Keep the token secret: set it in the
    # environment, never in this file.
    services.append({
        "name": "ngshare",
        "url": os.environ.get("NGSHARE_URL", "http://ngshare:8080"),
        "api_token": os.environ["NGSHARE_API_TOKEN"],
    })
elif EXCHANGE == "nbexchange":
    services.append({
        "name": "nbexchange",
        "url": os.environ.get("NBEXCHANGE_URL", "http://nbexchange:9000"),
        "api_token": os.environ["NBEXCHANGE_API_TOKEN"],
    })
# "shared-volume" needs no service: create /srv/nbgrader/exchange once, mode 777
# (nbgrader's default Exchange.root is /usr/local/share/nbgrader/exchange; the
# nbgrader_config.py in the user environment must point Exchange.root at it).

# --- Per-student resources -------------------------------------------------------------
# Exercise kernels import PyTorch and TensorFlow: give each server room for two
# kernels at once (a lecture notebook and an exercise). Limits are enforced by
# spawners that support them (KubeSpawner, SystemdSpawner, DockerSpawner).
c.Spawner.mem_limit = "4G"
c.Spawner.mem_guarantee = "2G"
c.Spawner.cpu_limit = 2.0
c.Spawner.cpu_guarantee = 0.5
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    "XFER_PROFILE": "lite",     # small, CPU-friendly runs; "full" on GPU nodes
    "XFER_THREADS": "2",        # match cpu_limit so PyTorch/TensorFlow do not oversubscribe
}

# --- Idle servers ------------------------------------------------------------------------
# Stop servers idle for an hour so the cluster (or machine) is not full of forgotten
# kernels. Needs `pip install jupyterhub-idle-culler` on the hub.
services.append({
    "name": "idle-culler",
    "command": ["python3", "-m", "jupyterhub_idle_culler", "--timeout=3600"],
})
c.JupyterHub.services = services
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
