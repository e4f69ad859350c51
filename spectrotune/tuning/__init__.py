"""tuning room (see README "Code map")."""
