"""Lifecycle jobs: each action on a template runs the project's playbooks through ansible-runner.

    runner.py     the one module that imports ansible_runner
    inventory.py  the job's inventory, from the staging CT's address as the Proxmox API gives it
    work.py       one job from start to end: the requests, the results, the status moves, cleanup
    pool.py       the worker threads of a process, the claim of queued jobs, heartbeats and reaping
"""
