"""Settings an admin edits in the browser (actions.py) and the endpoints a job may call, with
the key typed for one job (endpoints.py)."""
