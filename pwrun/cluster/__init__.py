"""What a cluster needs, as the roles' modules and filters ask for it: the worker env's plan and
wheelhouse, Slurm facts, pinned host keys, tunnels. Ansible runs this code; it imports no Parsl."""
