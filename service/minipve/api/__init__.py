"""The Proxmox VE API half of minipve: HTTP, auth, routing and the endpoints."""
