"""The production recipe: nginx in front of uvicorn workers under systemd (see render.py)."""
